import _TestSupport
import Foundation
import ImageLock
import XCTest

final class ImageLockerTests: XCTestCase {
    func testLockFileNameIsSHA1OfRealpath() throws {
        let dir = TempDir("path")
        let image = dir.makeFile("disk.img")
        try FileManager.default.createSymbolicLink(atPath: dir.file("alias.img"), withDestinationPath: image)
        let r = try Run.capture("/bin/sh", ["-c", "printf %s \"$(realpath \"$1\")\" | sha1sum", "sh", dir.file("alias.img")])
        let expected = String(r.stdout.prefix(40))
        let resolved = try ImageLocker.resolveImage(dir.file("alias.img"))
        XCTAssertEqual(resolved.path, image)
        let locker = ImageLocker(lockDirectory: dir.path)
        XCTAssertEqual(locker.lockFilePath(realPath: resolved.path), "\(dir.path)/.qemu-\(expected).lock")
    }

    func testExclusiveBlocksSharedAndSharedCoexist() throws {
        let dir = TempDir("ofd")
        let image = dir.makeFile("disk.img")
        // OFD locks conflict between two open files even inside one process.
        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: .exclusive) else {
            return XCTFail("a free image could not be locked")
        }
        XCTAssertEqual(held.flavor, .ofd)
        XCTAssertTrue(held.createdLockFile)
        let probe = try locker.probe(image, scheme: .lockfile, mode: .shared)
        XCTAssertFalse(probe.acquired)
        XCTAssertEqual(probe.contention?.blocking.first?.type, .write)
        XCTAssertNil(probe.contention?.blocking.first?.pid, "OFD locks have no pid")
        held.release()
        XCTAssertTrue(try locker.probe(image, scheme: .lockfile, mode: .exclusive).acquired)

        guard case .acquired(let s1) = try locker.acquire(image, scheme: .lockfile, mode: .shared),
              case .acquired(let s2) = try locker.acquire(image, scheme: .lockfile, mode: .shared) else {
            return XCTFail("two shared locks must coexist")
        }
        XCTAssertFalse(try locker.probe(image, scheme: .lockfile, mode: .exclusive).acquired)
        s1.release()
        s2.release()
        XCTAssertTrue(ProcLocks.rows(for: locker.lockFilePath(realPath: image)).isEmpty)
    }

    func testCreatedLockFileHoldsRealpathAndMode0644() throws {
        let dir = TempDir("content")
        let image = dir.makeFile("disk.img")
        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: .exclusive) else {
            return XCTFail("not acquired")
        }
        let lf = try XCTUnwrap(held.lockFile)
        XCTAssertEqual(try String(contentsOfFile: lf, encoding: .utf8), image + "\n")
        let attrs = try FileManager.default.attributesOfItem(atPath: lf)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o644)
        held.release()
        XCTAssertTrue(FileManager.default.fileExists(atPath: lf), "the lock file is kept after release")
    }

    func testProbeNeverCreatesTheLockFile() throws {
        let dir = TempDir("probe")
        let image = dir.makeFile("disk.img")
        let locker = ImageLocker(lockDirectory: dir.path)
        let before = ProcLocks.table(of: [image])
        let r = try locker.probe(image, scheme: .lockfile, mode: .exclusive)
        XCTAssertTrue(r.acquired)
        XCTAssertFalse(r.lockFileExists)
        XCTAssertFalse(FileManager.default.fileExists(atPath: locker.lockFilePath(realPath: image)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["disk.img"])
        XCTAssertEqual(ProcLocks.table(of: [image]), before)
    }

    func testPosixFallbackNamesHolderPid() throws {
        let dir = TempDir("posix")
        let image = dir.makeFile("disk.img")
        let locker = ImageLocker(lockDirectory: dir.path, flavorPolicy: .posixOnly)
        // A POSIX lock never conflicts within one process: the holder is a child.
        let child = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "30"],
                                   environment: ["LOCKSMITH_LOCK_FLAVOR": "posix"])
        let lockFile = locker.lockFilePath(realPath: image)
        child.waitForLocks(on: dir.path.isEmpty ? image : lockFile)
        let rows = ProcLocks.rows(for: lockFile)
        XCTAssertEqual(rows.map(\.kind), [.posix])
        XCTAssertEqual(rows.first?.pid, child.pid)
        let r = try locker.probe(image, scheme: .lockfile, mode: .shared)
        XCTAssertFalse(r.acquired)
        XCTAssertEqual(r.flavor, .posix)
        XCTAssertEqual(r.contention?.blocking.first?.pid, child.pid)
        XCTAssertEqual(r.contention?.holders.map(\.pid), [child.pid])
        XCTAssertEqual(r.contention?.holders.first?.command, "locksmith")
        child.stop()
        XCTAssertTrue(try locker.probe(image, scheme: .lockfile, mode: .exclusive).acquired)
    }

    func testWaitGetsTheLockWhenTheHolderLetsGo() throws {
        let dir = TempDir("wait")
        let image = dir.makeFile("disk.img")
        let locker = ImageLocker(lockDirectory: dir.path)
        let child = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "3"])
        child.waitForLocks(on: locker.lockFilePath(realPath: image))
        guard case .busy = try locker.acquire(image, scheme: .lockfile, mode: .exclusive) else {
            return XCTFail("the lock should be busy")
        }
        guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: .exclusive, wait: 10) else {
            return XCTFail("waiting should have got the lock")
        }
        held.release()
    }

    func testOffModeTakesNothing() throws {
        let dir = TempDir("off")
        let image = dir.makeFile("disk.img")
        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: .off) else {
            return XCTFail("off must always succeed")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["disk.img"])
        XCTAssertTrue(ProcLocks.rows(for: image).isEmpty)
        held.release()
    }

    // MARK: - Refusals

    func testSymlinkAtLockPathIsNeverFollowed() throws {
        let dir = TempDir("symlink")
        let image = dir.makeFile("disk.img")
        let victim = dir.makeFile("victim", size: 5)
        let locker = ImageLocker(lockDirectory: dir.path)
        let lockPath = locker.lockFilePath(realPath: image)
        try FileManager.default.createSymbolicLink(atPath: lockPath, withDestinationPath: victim)
        for mode in [LockMode.exclusive, .shared] {
            XCTAssertThrowsError(try locker.acquire(image, scheme: .lockfile, mode: mode)) {
                XCTAssertEqual($0 as? ImageLockError, .lockFileIsSymlink(path: lockPath))
            }
            XCTAssertThrowsError(try locker.probe(image, scheme: .lockfile, mode: mode))
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: victim)), Data(count: 5))
        XCTAssertTrue(ProcLocks.rows(for: victim).isEmpty)
    }

    func testFIFOAtLockPathDoesNotHang() throws {
        let dir = TempDir("fifo")
        let image = dir.makeFile("disk.img")
        let locker = ImageLocker(lockDirectory: dir.path)
        let lockPath = locker.lockFilePath(realPath: image)
        XCTAssertEqual(mkfifo(lockPath, 0o644), 0)
        XCTAssertThrowsError(try locker.acquire(image, scheme: .lockfile, mode: .exclusive)) {
            XCTAssertEqual($0 as? ImageLockError, .lockFileNotRegular(path: lockPath, kind: .fifo))
        }
        XCTAssertThrowsError(try locker.probe(image, scheme: .lockfile, mode: .shared))
    }

    func testMissingImageDirectoryImageAndMissingLockDir() throws {
        let dir = TempDir("bad")
        let locker = ImageLocker(lockDirectory: dir.path)
        XCTAssertThrowsError(try locker.probe(dir.file("nope.img"), scheme: .lockfile, mode: .exclusive)) {
            XCTAssertEqual($0 as? ImageLockError, .imageMissing(path: dir.file("nope.img")))
        }
        XCTAssertThrowsError(try locker.acquire(dir.path, scheme: .qemu, mode: .exclusive)) {
            XCTAssertEqual($0 as? ImageLockError, .notAnImage(path: dir.path, kind: .directory))
        }
        let image = dir.makeFile("disk.img")
        let noDir = ImageLocker(lockDirectory: dir.file("missing"))
        XCTAssertThrowsError(try noDir.acquire(image, scheme: .lockfile, mode: .exclusive)) {
            XCTAssertEqual($0 as? ImageLockError, .lockDirectoryMissing(path: dir.file("missing")))
        }
    }

    // MARK: - qemu scheme against real QEMU

    func testQemuSchemeTakesTheBytesQemuNbdTakes() throws {
        let dir = TempDir("qbytes")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        func lockedBytes() -> [Int64] {
            ProcLocks.rows(for: image).flatMap { l in Array(l.start...(l.end ?? l.start)) }.sorted()
        }
        // Real qemu-nbd, read-write.
        let nbd = try Background(try Run.tool("qemu-nbd"), ["--persistent", "-k", dir.file("nbd.sock"), "-f", "qcow2", image])
        nbd.waitForLocks(on: image, count: 4)
        let qemuRW = lockedBytes()
        nbd.stop()
        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let rw) = try locker.acquire(image, scheme: .qemu, mode: .exclusive) else {
            return XCTFail("free image not locked")
        }
        XCTAssertEqual(lockedBytes(), qemuRW)
        XCTAssertEqual(qemuRW, [100, 101, 103, 201, 203])
        rw.release()
        // Real qemu-io -r, read-only.
        let reader = try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 30000", image])
        reader.waitForLocks(on: image, count: 3)
        let qemuRO = lockedBytes()
        reader.stop()
        guard case .acquired(let ro) = try locker.acquire(image, scheme: .qemu, mode: .shared) else {
            return XCTFail("free image not locked")
        }
        XCTAssertEqual(lockedBytes(), qemuRO)
        XCTAssertEqual(qemuRO, [100, 201, 203])
        ro.release()
    }

    func testQemuSchemeWithPosixFallbackStillConflictsWithQemu() throws {
        let dir = TempDir("qposix")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        let nbd = try Background(try Run.tool("qemu-nbd"), ["--persistent", "-k", dir.file("nbd.sock"), "-f", "qcow2", image])
        nbd.waitForLocks(on: image, count: 4)
        defer { nbd.stop() }
        let locker = ImageLocker(lockDirectory: dir.path, flavorPolicy: .posixOnly)
        guard case .busy(let c) = try locker.acquire(image, scheme: .qemu, mode: .shared) else {
            return XCTFail("a read-write qemu-nbd must block a read-only user")
        }
        XCTAssertEqual(c.qemuConflicts.first?.message, "Failed to get shared \"write\" lock")
        XCTAssertEqual(Set(c.holders.map(\.pid)), [nbd.pid])
        XCTAssertTrue(ProcLocks.rows(for: image).allSatisfy { $0.kind == .ofd }, "our locks were released")
    }
}
