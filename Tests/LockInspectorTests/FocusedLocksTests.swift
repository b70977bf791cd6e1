import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// A focused scan's locks from their holders' fdinfo (Scan/FocusedLocks.swift) against the
/// kernel's table, on real holders: the same locks and holders where fdinfo is the whole
/// answer, and the table read where it is not (a queued request, a lock held through no fd).
final class FocusedLocksTests: XCTestCase {
    private func focused(_ image: String, lockDir: String, source: FocusedLockSource) throws -> (ImageLocks?, SnapshotTimings) {
        var options = InspectorOptions(lockDirectories: [lockDir], libvirtDirectories: [], leaseDirectories: [])
        options.focus = [InspectorFocus(image: image, lockFiles: [lockDir + "/" + ImageLocker.lockFileName(realPath: image)])]
        options.focusedLocks = source
        var t = SnapshotTimings()
        let snap = try Inspector(options).snapshot(timings: &t)
        return (snap.images.first { $0.path == image }, t)
    }

    /// What the verdict rests on, in a comparable order: the locks by their identity and
    /// pid, the holders by pid, fd and what they hold, the waiters by pid.
    private func summary(_ i: ImageLocks?) -> [String] {
        guard let i else { return ["none"] }
        let locks = i.locks.map { "\($0.kind) \($0.type) \($0.pid.map(String.init) ?? "-") \($0.start)-\($0.end.map(String.init) ?? "EOF")" }
        let holders = i.holders.map { "holder \($0.pid) fd \($0.fd.map(String.init) ?? "-") \($0.modeSummary) \($0.scheme)" }
        return (locks + holders + i.waiters.map { "waiter \($0.pid)" }).sorted() + i.lockFiles
    }

    func testFdinfoGivesTheTablesLocksAndHoldersWithoutReadingIt() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        for image in [s.writable, s.base, s.held, s.pyImage] {
            let (fromTable, tableTimings) = try focused(image, lockDir: s.lockDir, source: .kernelTable)
            let (fromHolders, holdersTimings) = try focused(image, lockDir: s.lockDir, source: .holdersFirst)
            XCTAssertTrue(tableTimings.kernelTableRead)
            XCTAssertFalse(holdersTimings.kernelTableRead, "\(image): fdinfo was the whole answer")
            XCTAssertEqual(summary(fromHolders), summary(fromTable), image)
            XCTAssertFalse(fromHolders?.holders.isEmpty ?? true, image)
        }
        // The two readers' identical locks are two locks (two open file descriptions), as
        // in the table.
        XCTAssertEqual(try focused(s.base, lockDir: s.lockDir, source: .holdersFirst).0?.locks.count, 6)

        // One OFD lock whose description a fork shares: listed under two processes' fds,
        // one lock in the table, and here.
        let shared = s.dir.makeFile("forked.img")
        let script = """
            import fcntl, os, struct, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR)
            fcntl.fcntl(fd, 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 201, 1, 0))
            parent = os.getpid()
            if os.fork() == 0:
                while os.getppid() == parent:  # ends with its parent
                    time.sleep(0.05)
                os._exit(0)
            time.sleep(60)
            """
        let forker = try Background(try Run.tool("python3"), ["-c", script, shared])
        defer { forker.stop() }
        forker.waitForLocks(on: shared)
        let (fromTable, _) = try focused(shared, lockDir: s.lockDir, source: .kernelTable)
        let (fromHolders, t) = try focused(shared, lockDir: s.lockDir, source: .holdersFirst)
        XCTAssertFalse(t.kernelTableRead)
        XCTAssertEqual(fromHolders?.locks.map(\.identity), fromTable?.locks.map(\.identity))
        XCTAssertEqual(fromHolders?.locks.count, 1)
        // Both processes hold it, and both are named, as `list` names them.
        let holders = Set(fromHolders?.holders.map(\.pid) ?? [])
        XCTAssertEqual(holders.count, 2)
        XCTAssertTrue(holders.contains(forker.pid))
        XCTAssertTrue(holders.isSuperset(of: fromTable?.holders.map(\.pid) ?? []))
    }

    func testAQueuedRequestSendsTheScanToTheTable() throws {
        let dir = TempDir("focused-waiter")
        let lockDir = dir.file("locks")
        try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: false)
        let image = dir.makeFile("vm.img")
        let lockFile = lockDir + "/" + ImageLocker.lockFileName(realPath: image)
        FileManager.default.createFile(atPath: lockFile, contents: nil)
        let python = try Run.tool("python3")
        let take = "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(60)"
        let holder = try Background(python, ["-c", take, lockFile])
        defer { holder.stop() }
        holder.waitForLocks(on: lockFile)
        let waiter = try Background(python, ["-c", take, lockFile])
        defer { waiter.stop() }
        let deadline = Date().addingTimeInterval(10)
        while !ProcLocks.rows(for: lockFile).contains(where: \.isWaiter) && Date() < deadline { usleep(10_000) }

        let (entry, t) = try focused(image, lockDir: lockDir, source: .holdersFirst)
        XCTAssertTrue(t.kernelTableRead, "only the table lists a queued request")
        XCTAssertEqual(entry?.holders.map(\.pid), [holder.pid])
        XCTAssertEqual(entry?.waiters.map(\.pid), [waiter.pid])
    }

    func testALockHeldThroughNoFdSendsTheScanToTheTable() throws {
        let dir = TempDir("focused-in-flight")
        let lockDir = dir.file("locks")
        try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: false)
        let image = dir.makeFile("vm.img")
        // An OFD write lock on QEMU's byte 201 (write), its open file description then sent
        // over a unix socket nobody reads and its fd closed: the lock is held, and listed in
        // no process's fdinfo.
        let script = """
            import fcntl, os, socket, struct, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR)
            fcntl.fcntl(fd, 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 201, 1, 0))
            a, b = socket.socketpair()
            socket.send_fds(a, [b"x"], [fd])
            os.close(fd)
            time.sleep(60)
            """
        let inFlight = try Background(try Run.tool("python3"), ["-c", script, image])
        defer { inFlight.stop() }
        inFlight.waitForLocks(on: image)
        // Until its fd is closed: the lock is then listed under no fd.
        let fdDir = "/proc/\(inFlight.pid)/fd", inode = ProcLocks.inode(of: image)
        func hasImageOpen() -> Bool {
            ((try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []).contains {
                var st = stat()
                return stat(fdDir + "/" + $0, &st) == 0 && UInt64(st.st_ino) == inode
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while hasImageOpen() && Date() < deadline { usleep(10_000) }
        XCTAssertFalse(hasImageOpen())

        let (entry, t) = try focused(image, lockDir: lockDir, source: .holdersFirst)
        XCTAssertTrue(t.kernelTableRead, "the probe met a lock no fdinfo lists")
        XCTAssertEqual(entry?.locks.map(\.start), [201], "the table's row")
        XCTAssertEqual(entry?.holders.count, 0, "held through no fd")
    }

    /// An image that is a block device is never opened for a probe (a device whose paths
    /// are all dead can hold an open forever): the table answers for it.
    func testABlockDeviceImageIsNotProbedTheTableAnswers() throws {
        let dir = TempDir("focused-blockdev")
        let device = dir.file("vm-disk")
        // A node of a loop device (major 7): what an LVM or iSCSI disk of a VM looks like.
        XCTAssertEqual(mknod(device, S_IFBLK | 0o600, dev_t(7 << 8 | 7)), 0, String(cString: strerror(errno)))
        let (_, t) = try focused(device, lockDir: dir.path, source: .holdersFirst)
        XCTAssertTrue(t.kernelTableRead)
    }

    /// A file on a GlusterFS FUSE mount, locked through it: the lock lives on the bricks,
    /// and neither fdinfo nor the table lists it; the scan does not probe it (`why` asks
    /// the filesystem itself, with a timeout) and so does not fall back to the table.
    func testAGlusterFuseFileIsNotProbedAndNeedsNoTable() throws {
        let bed = try GlusterTestBed.require()
        let name = try bed.makeFile("focused-fuse")
        let path = try bed.mountPoint() + "/" + name
        let py = try Background.lockf(path, exclusive: false)
        defer { py.stop() }
        bed.waitUntil(bed.url(name), held: true)
        let dir = TempDir("focused-fuse")
        let (entry, t) = try focused(path, lockDir: dir.path, source: .holdersFirst)
        XCTAssertFalse(t.kernelTableRead)
        XCTAssertEqual(entry?.locks ?? [], [], "no host lists a lock on a FUSE file")
    }
}
