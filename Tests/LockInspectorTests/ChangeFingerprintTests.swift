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
}
