import _TestSupport
import Foundation
import ImageLock
import XCTest

/// The holder engine (Sources/ImageLock/Holders): real processes holding real locks, named
/// exactly as every fdinfo of theirs says.
final class HolderSearchTests: XCTestCase {
    /// Takes an OFD write lock on argv[1], dups the fd, forks (the child shares the open file
    /// description), opens the file again without locking it, then writes argv[2] and sleeps.
    static let script = """
        import fcntl, os, struct, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOFOLLOW)
        fcntl.fcntl(fd, 37, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, 0, 0, 0, 0))
        os.dup(fd)
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
        os.open(sys.argv[1], os.O_RDONLY)
        open(sys.argv[2], "w").close()
        time.sleep(120)
        """

    /// Every (pid, fd) whose fdinfo lists a lock on `inode`: read the slow way, every fdinfo
    /// of `pids`.
    func truth(pids: [Int32], inode: UInt64) -> Set<String> {
        var out = Set<String>()
        for pid in pids {
            for name in ProcFS.list("/proc/\(pid)/fdinfo") ?? [] {
                guard let text = ProcFS.read("/proc/\(pid)/fdinfo/\(name)"), let info = FDInfo(text: Substring(text)),
                      info.locks.contains(where: { $0.inode == inode }) else { continue }
                out.insert("\(pid)/\(name)")
            }
        }
        return out
    }

    func testTryNamesEveryFDThatSharesTheOpenFileDescriptionAndNoOther() throws {
        let dir = TempDir("holders")
        let image = dir.makeFile("disk.img", size: 4096)
        let ready = dir.file("ready")
        let holder = try Background(try Run.tool("python3"), ["-c", Self.script, image, ready])
        defer {
            // The forked child is the holder's: end it too.
            for pid in ProcFS.pids(procRoot: "/proc") where (ProcFS.read("/proc/\(pid)/stat")?.contains(") S \(holder.pid) ") ?? false)
                || (ProcFS.read("/proc/\(pid)/stat")?.contains(") Z \(holder.pid) ") ?? false) { kill(pid, SIGKILL) }
            holder.stop()
        }
        holder.waitForLocks(on: image)
        var waited = 0
        while !FileManager.default.fileExists(atPath: ready) && waited < 1500 { usleep(10_000); waited += 1 }
        let st = try Sys.stat(image).get()
        let found = LockHolderFinder.holders(of: st, conflictingWith: .read, range: .wholeFile)
        let pids = Array(Set(found.map(\.pid)))
        XCTAssertEqual(pids.count, 2, "the holder and its forked child: \(found)")
        XCTAssertTrue(found.allSatisfy { $0.fd != nil && $0.lock.kind == .ofd })
        XCTAssertEqual(Set(found.map { "\($0.pid)/\($0.fd!)" }), truth(pids: pids, inode: st.inode))
        XCTAssertEqual(found.count, 4, "two fds in each process (the dup), not the unlocked open: \(found)")
        XCTAssertEqual(Set(found.filter { $0.pid == holder.pid }.map(\.command)), ["python3"])
    }
}
