import CLinux
@testable import ImageLock
import _TestSupport
import Foundation
import XCTest

/// The tasks asleep in a blocking lock call (System/LockWaits.swift): the syscall line's
/// reading, and real waiters queued behind real holders.
final class LockWaitsTests: XCTestCase {
    private func fd(_ line: String) -> Int32? { LockWait.waitingFD(syscallLine: Array(line.utf8)) }

    func testOnlyBlockingLockCallsAreWaits() {
        let fcntl = clinux_SYS_fcntl, flock = clinux_SYS_flock
        // fcntl(4, F_OFD_SETLKW (0x26), ...), as /proc shows a queued OFD request.
        XCTAssertEqual(fd("\(fcntl) 0x4 0x26 0x7ffc2ec57ef0 0x0 0x0 0x0 0x7ffc2ec57e60 0x7f7f6f2b4810\n"), 4)
        XCTAssertEqual(fd("\(fcntl) 0x1f 0x7 0x7ffc2ec57ef0 0x0 0x0 0x0 0x7ffc2ec57e60 0x7f7f6f2b4810\n"), 31, "F_SETLKW")
        XCTAssertEqual(fd("\(fcntl) 0x5 0xe 0x7ffc 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), 5, "F_SETLKW64")
        XCTAssertNil(fd("\(fcntl) 0x4 0x25 0x7ffc2ec57ef0 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), "F_OFD_SETLK does not wait")
        XCTAssertNil(fd("\(fcntl) 0x4 0x6 0x7ffc 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), "F_SETLK does not wait")
        XCTAssertEqual(fd("\(flock) 0x3 0x2 0x0 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), 3, "LOCK_EX")
        XCTAssertEqual(fd("\(flock) 0x3 0x1 0x0 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), 3, "LOCK_SH")
        XCTAssertNil(fd("\(flock) 0x3 0x6 0x0 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), "LOCK_EX | LOCK_NB")
        XCTAssertNil(fd("\(flock) 0x3 0x8 0x0 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), "LOCK_UN")
        XCTAssertNil(fd("0 0x3 0x7 0x0 0x0 0x0 0x0 0x7ffc 0x7f7f\n"), "another call with the same arguments")
        XCTAssertNil(fd("running\n"))
        XCTAssertNil(fd("-1 0x7ffc2ec57ef0 0x7f7f6f2b4810\n"), "blocked outside a call")
        XCTAssertNil(fd("\(fcntl) 0x1ffffffff 0x26 0x0\n"), "an fd out of range")
        XCTAssertNil(fd("\(fcntl) 0xfffffffffffffffff 0x26 0x0\n"), "overflow")
        XCTAssertNil(fd("\(fcntl) 0x4\n"), "cut short")
        XCTAssertNil(fd(""))
        XCTAssertNil(fd("\(fcntl) 0x4 0x2\u{1b}[2J6\n"), "not the kernel's format")
        XCTAssertNil(fd("\(fcntl) 4 0x26 0x0\n"), "arguments in decimal: not the kernel's format")
    }

    func testARealWaiterIsFoundWithTheFileItWaitsOn() throws {
        let dir = TempDir("lockwaits")
        let file = dir.makeFile("queued.lock", size: 0)
        let other = dir.makeFile("other.lock", size: 0)
        let python = try Run.tool("python3")
        let holder = try Background(python, ["-c", "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(60)", file])
        defer { holder.stop() }
        holder.waitForLocks(on: file)
        // One waiter through fcntl (lockf: F_SETLKW), one through flock, on another file.
        let waiter = try Background(python, ["-c", "import fcntl, sys; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX)", file])
        defer { waiter.stop() }
        let flocker = try Background(python, ["-c", "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(60)", other])
        defer { flocker.stop() }
        let flockWaiter = try Background(python, ["-c", "import fcntl, sys, time; time.sleep(0.3); f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_SH)", other])
        defer { flockWaiter.stop() }
        let deadline = Date().addingTimeInterval(10)
        var waits: [LockWait] = [], flockWaits: [LockWait] = []
        repeat {
            usleep(20_000)
            waits = (try? Sys.lockWaits(procRoot: "/proc", pid: waiter.pid).get()) ?? []
            flockWaits = (try? Sys.lockWaits(procRoot: "/proc", pid: flockWaiter.pid).get()) ?? []
        } while (waits.isEmpty || flockWaits.isEmpty) && Date() < deadline
        XCTAssertEqual(waits.count, 1, "\(waits)")
        XCTAssertEqual(waits.first?.pid, waiter.pid)
        XCTAssertEqual(waits.first?.tid, waiter.pid)
        XCTAssertEqual(waits.first?.inode, ProcLocks.inode(of: file))
        XCTAssertEqual(flockWaits.first?.inode, ProcLocks.inode(of: other))
        // The holders sleep too, but not in a lock call.
        XCTAssertEqual(try Sys.lockWaits(procRoot: "/proc", pid: holder.pid).get(), [])
        XCTAssertEqual(try Sys.lockWaits(procRoot: "/proc", pid: flocker.pid).get(), [])
        // A process that is gone: an error, not an empty answer.
        XCTAssertThrowsError(try Sys.lockWaits(procRoot: "/proc", pid: Int32.max).get())
    }
}
