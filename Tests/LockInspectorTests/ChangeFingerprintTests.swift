import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

final class ChangeFingerprintTests: XCTestCase {
    func testChangesWithLocksAndLockDirEntriesOnly() throws {
        let dir = TempDir("fingerprint")
        let image = dir.makeFile("disk.img")
        let options = InspectorOptions(lockDirectories: [dir.path])
        // Quiet the rest of the host's lock table as far as this test can: compare twice.
        var before = ChangeFingerprint.read(options)
        if before != ChangeFingerprint.read(options) { before = ChangeFingerprint.read(options) }

        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let held) = try locker.acquire(image, scheme: .qemu, mode: .shared) else {
            return XCTFail("not acquired")
        }
        XCTAssertNotEqual(ChangeFingerprint.read(options), before, "a lock taken changes it")
        held.release()

        let lockFile = locker.lockFilePath(realPath: image)
        XCTAssertTrue(FileManager.default.createFile(atPath: lockFile, contents: Data()))
        let withFile = ChangeFingerprint.read(options)
        XCTAssertNotEqual(withFile, before, "a lock file created changes it")
    }

    func testCacheReusesOnlyWhileUnchangedAndYoung() throws {
        let dir = TempDir("cache")
        let options = InspectorOptions(procRoot: dir.path, lockDirectories: [dir.path])
        // A /proc of our own making: its `locks` file is all the fingerprint reads.
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.file("locks"), contents: Data()))
        let snap = AuditedSnapshot(Snapshot(host: "h", generated: Date(timeIntervalSince1970: 0), images: [], lockFiles: [], unseen: []))
        let cache = SnapshotCache(maxAge: 30)
        let fp = ChangeFingerprint.read(options)
        XCTAssertNil(cache.reusable(fp))
        cache.store(snap, fp)
        XCTAssertEqual(cache.reusable(ChangeFingerprint.read(options))?.audited, snap, "the snapshot stored, unchanged")
        XCTAssertNotEqual(cache.reusable(fp)?.refreshed, snap.snapshot.generated, "a reused snapshot is refreshed now")
        XCTAssertEqual(cache.reusable(fp)?.isRepeat, true)
        XCTAssertFalse(PolledSnapshot(snap).isRepeat)
        try "1: POSIX  ADVISORY  WRITE 1 fe:00:1 0 EOF\n".write(toFile: dir.file("locks"), atomically: false, encoding: .utf8)
        XCTAssertNil(cache.reusable(ChangeFingerprint.read(options)), "the lock table changed")
        cache.invalidate()
        XCTAssertNil(cache.reusable(fp))
        let young = SnapshotCache(maxAge: 0)
        young.store(snap, fp)
        XCTAssertNil(young.reusable(fp), "too old: a full scan is due")
    }

    /// A /proc of our own making whose `locks` holds `rows` (with IDs in table order).
    func writeTable(_ rows: [String], in dir: TempDir) throws {
        let text = rows.enumerated().map { "\($0.offset + 1): \($0.element)\n" }.joined()
        try text.write(toFile: dir.file("locks"), atomically: false, encoding: .utf8)
    }

    /// With a watch made from a snapshot, only rows a snapshot can show count: rows on its
    /// lock files and images (by inode), and QEMU's bytes or virtlockd's byte 0 on any file.
    /// Another program's locks (a database's high bytes, a build tool's whole-file lock on
    /// its own file) and the rows' IDs (positions in the table) change nothing.
    func testOnlyRowsASnapshotCanShowCount() throws {
        let dir = TempDir("watch")
        let locks = dir.file("locks.d")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        let options = InspectorOptions(procRoot: dir.path, lockDirectories: [locks])
        let lockFile = LockFileEntry(path: locks + "/" + ImageLocker.lockFileName(realPath: "/i/a"), kind: .regular,
                                     device: nil, inode: 4242, held: true)
        let image = ImageLocks(id: "/i/b", path: "/i/b", device: nil, inode: 777, schemes: [.qemu])
        let snap = Snapshot(host: "h", generated: Date(), images: [image], lockFiles: [lockFile], unseen: [])
        let watch = ChangeWatch.of(snap, options: options)

        let held = ["POSIX  ADVISORY  WRITE 10 fe:00:4242 0 EOF", "OFDLCK ADVISORY  READ  -1 fe:00:777 100 101"]
        try writeTable(held, in: dir)
        let base = ChangeFingerprint.read(options, watching: watch)
        let everything = ChangeFingerprint.read(options)

        // Rows of other programs before and after, shifting every ID.
        try writeTable(["POSIX  ADVISORY  WRITE 9 fe:00:99 1073741824 1073742335", "FLOCK  ADVISORY  WRITE 8 00:1a:55 0 EOF"]
                       + held + ["-> FLOCK  ADVISORY  WRITE 7 00:1a:55 0 EOF"], in: dir)
        XCTAssertEqual(ChangeFingerprint.read(options, watching: watch), base, "other programs' locks count")
        XCTAssertNotEqual(ChangeFingerprint.read(options), everything, "without a watch every row counts")

        let changes: [(String, [String])] = [
            ("a lock on a watched lock file released", [held[1]]),
            ("a lock on a watched image changed", [held[0], "OFDLCK ADVISORY  READ  -1 fe:00:777 100 100"]),
            ("a waiter on a watched lock file", held + ["-> POSIX  ADVISORY  WRITE 11 fe:00:4242 0 EOF"]),
            ("QEMU's bytes on another file", held + ["OFDLCK ADVISORY  READ  -1 fe:00:31337 201 201"]),
            ("virtlockd's byte 0 on another file", held + ["POSIX  ADVISORY  WRITE 12 fe:00:31337 0 0"]),
            ("a high byte on a watched lock file", held + ["POSIX  ADVISORY  WRITE 13 fe:00:4242 4096 4096"]),
            ("a row not in the kernel's format", held + ["something else"]),
        ]
        for (what, rows) in changes {
            try writeTable(rows, in: dir)
            XCTAssertNotEqual(ChangeFingerprint.read(options, watching: watch), base, what)
        }
    }

    /// `snapshot(_:scan:)` scans when nothing is cached, when a row a snapshot can show
    /// changed (confirmed by a second reading), when a lock file came, and when the last
    /// scan is too old; it reuses the last snapshot while only other programs' locks change.
    func testCacheScansOnlyForChangesItsSnapshotCanShow() throws {
        let dir = TempDir("cache-scan")
        let locks = dir.file("locks.d")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        let options = InspectorOptions(procRoot: dir.path, lockDirectories: [locks])
        let name = ImageLocker.lockFileName(realPath: "/i/a")
        XCTAssertTrue(FileManager.default.createFile(atPath: locks + "/" + name, contents: Data()))
        let inode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: locks + "/" + name)[.systemFileNumber] as? UInt64)
        let held = "POSIX  ADVISORY  WRITE 10 fe:00:\(inode) 0 EOF"
        try writeTable([held], in: dir)
        var scans = 0
        let snap = AuditedSnapshot(Snapshot(host: "h", generated: Date(timeIntervalSince1970: 0), images: [],
                                            lockFiles: [LockFileEntry(path: locks + "/" + name, kind: .regular, device: nil,
                                                                      inode: inode, held: true)],
                                            unseen: []))
        let cache = SnapshotCache(maxAge: 3600)
        func look() -> PolledSnapshot { cache.snapshot(options) { scans += 1; return snap } }

        XCTAssertFalse(look().isRepeat)
        XCTAssertEqual(scans, 1)
        XCTAssertTrue(look().isRepeat)
        try writeTable(["POSIX  ADVISORY  WRITE 9 fe:00:99 1073741824 1073742335", held], in: dir)
        XCTAssertTrue(look().isRepeat, "another program's lock")
        XCTAssertEqual(scans, 1)
        try writeTable([], in: dir)
        XCTAssertFalse(look().isRepeat, "the lock file's lock released")
        XCTAssertEqual(scans, 2)
        XCTAssertTrue(look().isRepeat)
        XCTAssertTrue(FileManager.default.createFile(atPath: locks + "/" + ImageLocker.lockFileName(realPath: "/i/b"), contents: Data()))
        _ = look()
        XCTAssertEqual(scans, 3, "a lock file created")
        cache.invalidate()
        _ = look()
        XCTAssertEqual(scans, 4, "invalidated")
        let old = SnapshotCache(maxAge: 0)
        _ = old.snapshot(options) { scans += 1; return snap }
        _ = old.snapshot(options) { scans += 1; return snap }
        XCTAssertEqual(scans, 6, "too old: a full scan each time")
    }

    /// A file under an --images dir is watched by inode (a flock on an image makes it one),
    /// and a file added to one of its subdirs changes the fingerprint.
    func testImagesDirFilesAndSubdirsAreWatched() throws {
        let dir = TempDir("watch-images")
        let images = dir.file("images")
        try FileManager.default.createDirectory(atPath: images + "/sub", withIntermediateDirectories: true)
        let disk = dir.makeFile("images/sub/disk.img", size: 0)
        let inode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: disk)[.systemFileNumber] as? UInt64)
        var options = InspectorOptions(procRoot: dir.path, lockDirectories: [dir.file("none")])
        options.imageDirectories = [images]
        try writeTable([], in: dir)
        let snap = Snapshot(host: "h", generated: Date(), images: [], lockFiles: [], unseen: [])
        let watch = ChangeWatch.of(snap, options: options)
        let base = ChangeFingerprint.read(options, watching: watch)
        try writeTable(["FLOCK  ADVISORY  WRITE 8 fe:00:\(inode) 0 EOF"], in: dir)
        XCTAssertNotEqual(ChangeFingerprint.read(options, watching: watch), base, "a flock on an image")
        try writeTable([], in: dir)
        XCTAssertEqual(ChangeFingerprint.read(options, watching: watch), base)
        _ = dir.makeFile("images/sub/new.img", size: 0)
        XCTAssertNotEqual(ChangeFingerprint.read(options, watching: watch), base, "an image added in a subdir")
    }
}
