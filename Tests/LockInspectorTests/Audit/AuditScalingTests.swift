import Foundation
import ImageLock
import LockInspector
import XCTest

/// Issue 15, item 4: the audit rules and the watch diff on 10k and 20k planted lock files
/// (plus writers and held ones, so every index is used) find what they must. That their
/// time stays linear in what others can plant (a pass over every image per lock file made
/// the 20k/10k ratio ~4) is timed by `scripts/bench --states planted`: no timed tests.
final class AuditScalingTests: XCTestCase {
    let dev = DeviceID(major: 0xfe, minor: 0)

    /// `n` lock files of unknown images, world-writable (unsafe-lock-file fires on each),
    /// every tenth held by a process, and a writer on every tenth image of n/10 qemu images.
    func planted(_ n: Int, at t: Date) -> (Snapshot, AuditFacts) {
        var images: [ImageLocks] = [], files: [LockFileEntry] = [], writers: [ImageWriter] = []
        var facts = AuditFacts(now: t)
        for i in 0..<n {
            let path = "/var/tmp/" + ImageLocker.lockFileName(realPath: "/planted/\(i)")
            let held = i % 10 == 0
            files.append(LockFileEntry(path: path, kind: .regular, device: dev, inode: UInt64(i), held: held))
            let holders = held ? [Holder(pid: Int32(1000 + i), command: "sleep", uid: 65534, scheme: .lockfile, lockType: .write)] : []
            images.append(ImageLocks(id: path, path: nil, schemes: [.lockfile], lockFiles: [path], holders: holders))
            facts.lockFiles[path] = AuditFileFacts(kind: .regular, mode: 0o666, uid: 65534)
        }
        for i in 0..<(n / 10) {
            let path = "/images/vm\(i).qcow2"
            images.append(ImageLocks(id: path, path: path, device: dev, inode: UInt64(1_000_000 + i), schemes: [.qemu]))
            if i % 10 == 0 {
                writers.append(ImageWriter(path: path, device: dev, inode: UInt64(1_000_000 + i), pid: Int32(500_000 + i), fd: 5,
                                           command: "dd"))
            }
        }
        return (Snapshot(host: "h", generated: t, images: images, lockFiles: files, unseen: [], writers: writers), facts)
    }

    func testAuditRulesAndWatchDiffOnPlantedLockFiles() {
        let t = Date(timeIntervalSince1970: 1_800_000_000)
        for n in [10_000, 20_000] {
            let (s, f) = planted(n, at: t)
            let found = AuditRules.all(s, f)
            XCTAssertEqual(found.filter { $0.rule == .unsafeLockFile }.count, n)
            XCTAssertEqual(found.filter { $0.rule == .unsafeLockFile && !$0.holders.isEmpty }.count, n / 10)
            XCTAssertEqual(found.filter { $0.rule == .unlockedWriter }.count, n / 100)
            var new = s
            new.generated = t.addingTimeInterval(2)
            // Half the holders went away, half the findings cleared.
            for i in new.images.indices where i % 20 == 0 { new.images[i].holders = [] }
            let old = AuditedSnapshot(s, findings: found)
            let newFindings = Array(found.dropFirst(n / 2))
            let next = AuditedSnapshot(SnapshotDiff.fillingDetails(new, from: s), findings: newFindings)
            let events = SnapshotDiff.events(from: old, to: next, minimumSeverity: .info)
            XCTAssertEqual(events.filter { $0.kind == .lockReleased }.count, n / 20)
            XCTAssertEqual(events.filter { $0.kind == .findingCleared }.count, n / 2)
        }
    }
}
