import Foundation
@testable import ImageLock
import LockInspector
import XCTest

/// `try`'s text, rendered from results built in code (the command and the TUI print these).
final class TryTextTests: XCTestCase {
    let dev = DeviceID(major: 0xfe, minor: 1)

    func result(_ scheme: LockScheme, _ contention: Contention?, lockFile: String? = nil, exists: Bool = true) -> ProbeResult {
        ProbeResult(image: "/i/vm.qcow2", scheme: scheme, mode: .exclusive, lockFile: lockFile, lockFileExists: exists,
                    flavor: .ofd, contention: contention)
    }

    func testFreeNamesTheLockFileAndWhetherItExists() {
        XCTAssertEqual(TryText.lines(result(.lockfile, nil, lockFile: "/var/tmp/.qemu-x.lock", exists: false)),
                       ["/i/vm.qcow2: free: an exclusive lock (lockfile scheme) can be taken [lock file /var/tmp/.qemu-x.lock does not exist; not created]"])
        XCTAssertEqual(TryText.lines(result(.qemu, nil)), ["/i/vm.qcow2: free: an exclusive lock (qemu scheme) can be taken"])
    }

    func testHeldByQemuBytesSaysQemusWordsWithTheHintUnderTheMessage() {
        let row = kernelRow("3: OFDLCK ADVISORY  READ -1 fe:01:9 201 201")
        let c = Contention(blocking: [], holders: [LockHolder(pid: 4242, command: "qemu-io", fd: 7, lock: row)],
                           qemuConflicts: [QemuConflict(kind: .unshared, permission: .write)])
        let lines = TryText.lines(result(.qemu, c))
        XCTAssertEqual(lines[0], "/i/vm.qcow2: held: an exclusive lock (qemu scheme) cannot be taken")
        XCTAssertEqual(lines[1], "  QEMU would say: Failed to get \"write\" lock")
        // QEMU prints its hint on the next line; it starts where the message does.
        XCTAssertEqual(lines[2].firstIndex { $0 != " " }.map { lines[2].distance(from: lines[2].startIndex, to: $0) },
                       "  QEMU would say: ".count)
        XCTAssertEqual(lines[3], "  holder: pid 4242 (qemu-io) holds a READ OFD lock on bytes 201-201 through fd 7")
        XCTAssertEqual(lines.count, 4)
    }

    func testAnUnseenHolderIsExplainedByItsFilesystemOnlyWhenNoPidIsKnown() {
        let ofd = Contention(blocking: [BlockingLock(type: .write, range: .wholeFile, pid: nil)], holders: [])
        var asked: [String] = []
        let onFuse = TryText.lines(result(.lockfile, ofd)) { asked.append($0); return "fuse" }
        XCTAssertEqual(asked, ["/i/vm.qcow2"])
        XCTAssertTrue(onFuse[1].hasPrefix("  holder: not visible in this host's lock table (fuse keeps its locks on the server"), "\(onFuse)")
        let local = TryText.lines(result(.lockfile, ofd)) { _ in nil }
        XCTAssertEqual(local[1], "  holder: not visible from here (an OFD lock of a process whose fds cannot be read)")
        let posix = Contention(blocking: [BlockingLock(type: .write, range: .wholeFile, pid: 31)], holders: [])
        XCTAssertEqual(TryText.lines(result(.lockfile, posix)) { _ in XCTFail("not asked when a pid is known"); return nil }[1],
                       "  holder: pid 31")
    }

    func testGlusterHoldersAndTheNoteOnWhyTheyWereNotNamedFurther() {
        let h = GlusterLockHolder(type: .write, range: .wholeFile, pid: 88, host: "h1", clientPID: 90, source: .statedump)
        let lines = TryText.lines(result(.gluster, Contention(blocking: [], holders: [], glusterHolders: [h])), note: "no statedump")
        XCTAssertEqual(Array(lines.dropFirst()), ["  holder: pid 88 on host h1 holds a WRITE lock on bytes 0-EOF (client pid 90)",
                                                  "  (no statedump)"])
        XCTAssertEqual(TryText.lines(result(.gluster, Contention(blocking: [], holders: [])))[1],
                       "  holder: not known (F_GETLK did not say)")
    }

    /// The TUI's detail pane shows the same facts without the image (the pane names it).
    func testPartsAreTheLinesWithoutTheImageAndIndent() {
        let c = Contention(blocking: [BlockingLock(type: .write, range: .wholeFile, pid: 31)], holders: [],
                           qemuConflicts: [QemuConflict(kind: .held, permission: .write)])
        let p = TryText.parts(result(.qemu, c))
        XCTAssertEqual(TryText.lines(result(.qemu, c)), ["/i/vm.qcow2: " + p.headline] + p.details.map { "  " + $0 })
    }

    /// `hold`'s one line when the lock is taken names every holder it can, else says why not.
    func testBusyNamesTheHoldersOrWhyTheyCannotBeSeen() {
        let row = kernelRow("3: POSIX  ADVISORY  WRITE 31 fe:01:9 0 EOF")
        let seen = Contention(blocking: [], holders: [LockHolder(pid: 31, command: "qemu-img", fd: nil, lock: row)],
                              qemuConflicts: [QemuConflict(kind: .unshared, permission: .write)])
        XCTAssertEqual(TryText.busy("vm.qcow2", seen, waited: 2.5),
                       "vm.qcow2 is locked (QEMU would say: Failed to get \"write\" lock) by pid 31 (qemu-img) after waiting 2.5 s")
        let ofd = Contention(blocking: [BlockingLock(type: .write, range: .wholeFile, pid: nil)], holders: [])
        XCTAssertEqual(TryText.busy("vm.qcow2", ofd, waited: nil), "vm.qcow2 is locked by a process that cannot be seen from here")
        let gluster = Contention(blocking: [], holders: [], glusterHolders: [
            GlusterLockHolder(type: .write, range: .wholeFile, pid: 88, host: "h1", source: .statedump),
            GlusterLockHolder(type: .write, range: .wholeFile, pid: nil, source: .getlk),
        ])
        XCTAssertEqual(TryText.busy("gluster://g/v/vm", gluster, waited: nil), "gluster://g/v/vm is locked by pid 88 on h1, a process")
    }
}

/// A row of the kernel's lock table, from its text as /proc/locks prints it.
func kernelRow(_ line: String) -> KernelLock {
    KernelLock.parseTable(Array((line + "\n").utf8)).locks[0]
}
