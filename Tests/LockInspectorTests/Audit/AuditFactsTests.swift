@testable import LockInspector
import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `AuditFacts.gather` reads the same facts however the snapshot came to know its lock files:
/// from the scan's lstat of each entry relative to its dir (`LockDirectories.statuses`, with
/// `InspectorOptions.lockFileStatus`: the audit's scan) or by an lstat of each path here; and the images' facts with one statfs
/// per mount are those of a statfs per image.
final class AuditFactsTests: XCTestCase {
    func testLockFileFactsFromTheScanAreTheLstatFacts() throws {
        let dir = TempDir("auditfacts")
        let name = { (c: Character) in ".qemu-" + String(repeating: c, count: 40) + ".lock" }
        let plain = dir.file(name("a")), open = dir.file(name("b")), linked = dir.file(name("c"))
        let symlink = dir.file(name("d")), fifo = dir.file(name("e")), foreign = dir.file(name("f"))
        for p in [plain, open, linked, foreign] { XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data())) }
        XCTAssertEqual(chmod(open, 0o666), 0)
        try FileManager.default.linkItem(atPath: linked, toPath: dir.file("other-name"))
        try FileManager.default.createSymbolicLink(atPath: symlink, withDestinationPath: "/etc/passwd")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertEqual(chown(foreign, 65534, 65534), 0)
        let dirs = [dir.path]

        let bare = LockDirectories.read(lockDirectories: dirs, leaseDirectories: []).lockFiles
        XCTAssertEqual(bare.map(\.path), [plain, open, linked, symlink, fifo, foreign])
        var stated = bare
        LockDirectories.apply(LockDirectories.statuses(of: bare), to: &stated)
        // The audit's scan puts the same into its entries.
        var o = InspectorOptions(lockDirectories: dirs, libvirtDirectories: [], leaseDirectories: [])
        o.lockFileStatus = true
        XCTAssertEqual(try Inspector(o).snapshot().lockFiles.map { [$0.uid, $0.gid, $0.mode] }, stated.map { [$0.uid, $0.gid, $0.mode] })
        XCTAssertTrue(stated.allSatisfy { $0.mode != nil && $0.uid != nil && $0.gid != nil && $0.links != nil })
        XCTAssertTrue(bare.allSatisfy { $0.mode == nil && $0.uid == nil && $0.gid == nil && $0.links == nil })

        let now = Date()
        func facts(_ files: [LockFileEntry]) -> AuditFacts {
            AuditFacts.gather(for: Snapshot(host: "h", generated: now, images: [], lockFiles: files, unseen: []),
                              lockDirectories: dirs, now: now)
        }
        let fromScan = facts(stated), fromLstat = facts(bare)
        XCTAssertEqual(fromScan, fromLstat)
        XCTAssertEqual(fromScan.lockFiles.count, 6)
        XCTAssertEqual(fromScan.lockFiles[symlink]?.kind, .symlink)
        XCTAssertEqual(fromScan.lockFiles[symlink]?.linkTarget, "/etc/passwd")
        XCTAssertEqual(fromScan.lockFiles[fifo]?.kind, .fifo)
        XCTAssertEqual(fromScan.lockFiles[open]?.mode, 0o666)
        XCTAssertEqual(fromScan.lockFiles[linked]?.links, 2)
        XCTAssertEqual(fromScan.lockFiles[foreign]?.uid, 65534)
        XCTAssertEqual(fromScan.lockFiles[foreign]?.gid, 65534)
        let snapshot = Snapshot(host: "h", generated: now, images: [], lockFiles: stated, unseen: [])
        XCTAssertEqual(AuditRules.all(snapshot, fromScan), AuditRules.all(snapshot, fromLstat))
        XCTAssertEqual(Set(AuditRules.all(snapshot, fromScan).filter { $0.rule == .unsafeLockFile }.flatMap(\.files)),
                       [open, linked, symlink, fifo])
    }

    func testImageFactsWithAStatfsPerMountAreThoseOfAStatfsPerImage() throws {
        let dir = TempDir("auditimages")
        let a = dir.makeFile("a.qcow2", size: 0), b = dir.makeFile("b.raw", size: 0)
        XCTAssertEqual(chmod(b, 0o600), 0)
        let link = dir.file("link.img")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/dev/shm")
        let dangling = dir.file("dangling.img")
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: dir.file("nowhere"))
        // Files on several mounts (the temp dir's, tmpfs, procfs, the root), in mixed order.
        let paths = [a, "/dev/shm", b, "/proc/self/status", "/", link, dir.file("missing.qcow2"), dangling, a + "/x", "/proc/version"]
        let once = AuditReads.imageFacts(paths)
        let each = paths.map { AuditReads.facts($0, follow: true) }
        XCTAssertEqual(once, each)
        XCTAssertEqual(once.filter { if case .success = $0 { return true } else { return false } }.count, 7)
        XCTAssertEqual(try once[1].get().kind, .directory)
        XCTAssertEqual(try once[2].get().mode, 0o600)
        // With the audit's scan's stats of some of them (`ImageStatuses`, taken as the
        // --images dirs were walked): the same facts, the others stat'ed here.
        let known = ImageStatuses([a, b, link, dangling, dir.file("missing.qcow2")]).wait()
        XCTAssertEqual(known.count, 5)
        XCTAssertEqual(AuditReads.imageFacts(paths, known: known), each)
        var told = known
        told[PathKey(a)] = .failure(Errno(EACCES))
        XCTAssertEqual(AuditReads.imageFacts([a, b], known: told), [.failure(Errno(EACCES)), each[2]], "what it was told is used")
    }

    /// The audit's scan stats every file under --images as it is walked, and the audit's
    /// facts taken from those stats are those of a stat of each image after the scan.
    func testTheAuditsScanStatsTheImagesItWalks() throws {
        let dir = TempDir("auditwalk")
        let images = dir.file("images"), locks = dir.file("locks")
        for d in [images, locks] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let a = images + "/a.qcow2", b = images + "/b.qcow2"
        for p in [a, b] { XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data())) }
        XCTAssertEqual(chmod(b, 0o640), 0)
        for p in [a, b] {
            XCTAssertTrue(FileManager.default.createFile(atPath: locks + "/" + ImageLocker.lockFileName(realPath: p), contents: Data()))
        }
        var o = InspectorOptions(lockDirectories: [locks], imageDirectories: [images], libvirtDirectories: [], leaseDirectories: [])
        o.lockFileStatus = true
        var t = SnapshotTimings()
        let (snapshot, statuses) = try Inspector(o).scan(timings: &t)
        let known = try XCTUnwrap(statuses).wait()
        XCTAssertEqual(Set(known.keys), [PathKey(a), PathKey(b)])
        let now = Date()
        let fromScan = AuditFacts.gather(for: snapshot, lockDirectories: [locks], waitThreshold: 30, procRoot: "/proc",
                                         now: now, imageStatuses: known)
        let afterScan = AuditFacts.gather(for: snapshot, lockDirectories: [locks], now: now)
        XCTAssertEqual(fromScan, afterScan)
        XCTAssertEqual(fromScan.images[PathKey(b)]?.mode, 0o640)
        o.lockFileStatus = false
        XCTAssertNil(try Inspector(o).scan(timings: &t).imageStatuses, "only the audit's scan stats the images")
    }
}
