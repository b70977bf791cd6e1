import Foundation
import ImageLock
import LockInspector
import XCTest

/// `SnapshotDiff.events`: the changes between two snapshots, pure.
final class SnapshotDiffTests: XCTestCase {
    let t1 = Date(timeIntervalSince1970: 1_800_000_000)
    let t2 = Date(timeIntervalSince1970: 1_800_000_002)

    func snap(_ at: Date, _ images: [ImageLocks]) -> Snapshot {
        Snapshot(host: "h", generated: at, images: images, lockFiles: [], unseen: [])
    }

    func audited(_ at: Date, findings: [Finding]) -> AuditedSnapshot {
        AuditedSnapshot(snap(at, []), findings: findings)
    }

    func image(_ path: String, holders: [Holder] = [], waiters: [Holder] = []) -> ImageLocks {
        ImageLocks(id: path, path: path, schemes: [.lockfile], holders: holders, waiters: waiters)
    }

    func hold(_ pid: Int32, _ type: LockType = .write, fd: Int32? = 3) -> Holder {
        Holder(pid: pid, command: "p\(pid)", fd: fd, scheme: .lockfile, lockType: type)
    }

    func kinds(_ e: [WatchEvent]) -> [String] {
        e.map { "\($0.kind.rawValue) \($0.image ?? "-") \($0.holder.map { String($0.pid) } ?? $0.finding?.rule.rawValue ?? "")" }
    }

    func testNoChangeNoEvents() {
        let a = snap(t1, [image("/a", holders: [hold(1)], waiters: [hold(2, fd: nil)])])
        var b = a
        b.generated = t2
        XCTAssertEqual(SnapshotDiff.events(from: a, to: b), [])
    }

    func testTakeReleaseBlockUnblockInOrder() {
        let empty = snap(t1, [])
        let taken = snap(t2, [image("/a", holders: [hold(1)])])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: empty, to: taken)), ["lock-acquired /a 1"])
        XCTAssertEqual(SnapshotDiff.events(from: empty, to: taken).first?.time, t2)
        XCTAssertEqual(kinds(SnapshotDiff.events(from: taken, to: empty)), ["lock-released /a 1"])
        let blocked = snap(t2, [image("/a", holders: [hold(1)], waiters: [hold(2, fd: nil)])])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: taken, to: blocked)), ["waiter-blocked /a 2"])
        // The holder goes, the waiter gets it: released, unblocked, acquired — in that order.
        let handedOver = snap(t2, [image("/a", holders: [hold(2, fd: 4)])])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: blocked, to: handedOver)),
                       ["lock-released /a 1", "waiter-unblocked /a 2", "lock-acquired /a 2"])
    }

    func testHolderChangedKeepsTheBeforeAndAfter() {
        let a = snap(t1, [image("/a", holders: [Holder(pid: 1, command: "qemu", fd: 9, scheme: .qemu, qemu: .readOnly)])])
        let b = snap(t2, [image("/a", holders: [Holder(pid: 1, command: "qemu", fd: 9, scheme: .qemu, qemu: .readWrite)])])
        let e = SnapshotDiff.events(from: a, to: b)
        XCTAssertEqual(kinds(e), ["holder-changed /a 1"])
        XCTAssertEqual(e.first?.previous?.qemu, .readOnly)
        XCTAssertEqual(e.first?.holder?.qemu, .readWrite)
        // The same lock seen through another fd, or by pid only, is no change.
        let c = snap(t2, [image("/a", holders: [Holder(pid: 1, command: "qemu", fd: 10, scheme: .qemu, qemu: .readOnly)])])
        XCTAssertEqual(SnapshotDiff.events(from: a, to: c), [])
        let d = snap(t2, [image("/a", holders: [Holder(pid: 1, command: "qemu", fd: nil, scheme: .qemu, qemu: .readOnly)])])
        XCTAssertEqual(SnapshotDiff.events(from: a, to: d), [])
        // A second fd adding a write lock changes the holder.
        let twoFds = snap(t2, [image("/a", holders: [Holder(pid: 1, command: "qemu", fd: 9, scheme: .qemu, qemu: .readOnly),
                                                Holder(pid: 1, command: "qemu", fd: 11, scheme: .qemu, qemu: .readWrite)])])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: a, to: twoFds)), ["holder-changed /a 1"])
    }

    func testEventsAreOrderedByImageWithinAKind() {
        let a = snap(t1, [])
        let b = snap(t2, [image("/b", holders: [hold(5)]), image("/a", holders: [hold(7), hold(6)])])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: a, to: b)), ["lock-acquired /a 6", "lock-acquired /a 7", "lock-acquired /b 5"])
    }

    /// Two images whose names Unicode calls equal (é as one code point, and as e with a
    /// combining accent) are two files: one process taking both locks, or a finding on each,
    /// is two events.
    func testNFCAndNFDTwinsAreTwoImages() {
        let nfc = "/vm-\u{E9}.raw", nfd = "/vm-e\u{301}.raw"
        let taken = snap(t2, [image(nfd, holders: [hold(1)]), image(nfc, holders: [hold(1)])])
        XCTAssertEqual(Set(SnapshotDiff.events(from: snap(t1, []), to: taken).compactMap { $0.image.map { Array($0.utf8) } }),
                       [Array(nfd.utf8), Array(nfc.utf8)])
        let findings = [nfd, nfc].map { Finding(rule: .unlockedWriter, severity: .critical, image: $0, evidence: "e", remedy: "r") }
        XCTAssertEqual(SnapshotDiff.events(from: audited(t1, findings: []), to: audited(t2, findings: findings)).count, 2)
    }

    func testFindingsRaisedAndClearedAtOrAboveTheMinimum() {
        let crit = Finding(rule: .unlockedWriter, severity: .critical, image: "/a", evidence: "e", remedy: "r")
        let info = Finding(rule: .staleLockFile, severity: .info, image: "/b", files: ["/l"], evidence: "e", remedy: "r")
        let a = audited(t1, findings: [info])
        let b = audited(t2, findings: [crit])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: a, to: b)), ["finding-raised /a unlocked-writer"])
        XCTAssertEqual(kinds(SnapshotDiff.events(from: a, to: b, minimumSeverity: .info)),
                       ["finding-cleared /b stale-lock-file", "finding-raised /a unlocked-writer"])
        XCTAssertEqual(SnapshotDiff.events(from: a, to: b, minimumSeverity: nil), [])
        // The same hazard with other processes involved is the same finding.
        var moved = crit
        moved.holders = [InvolvedProcess(role: .writer, pid: 9, command: "dd")]
        XCTAssertEqual(SnapshotDiff.events(from: b, to: audited(t2, findings: [moved])), [])
    }

    func testDetailsOfAProcessThatEndedMidScanComeFromThePreviousSnapshot() {
        let a = snap(t1, [image("/a", waiters: [Holder(pid: 2, command: "python3", args: ["python3"], user: "root", scheme: .lockfile, lockType: .write)])])
        let b = snap(t2, [image("/a", waiters: [Holder(pid: 2, command: "?", scheme: .lockfile, lockType: .write)])])
        let filled = SnapshotDiff.fillingDetails(b, from: a)
        XCTAssertEqual(filled.images.first?.waiters.first?.command, "python3")
        XCTAssertEqual(filled.images.first?.waiters.first?.user, "root")
        XCTAssertEqual(SnapshotDiff.fillingDetails(b, from: snap(t1, [])), b)
    }
}

/// `SnapshotWatch`: `watch`'s state from snapshot to snapshot gives the events the pure diff
/// gives for each pair (with the details of ended processes filled in from the one before).
final class SnapshotWatchTests: XCTestCase {
    func testEachStepIsThePairsDiff() {
        let t = (0..<5).map { Date(timeIntervalSince1970: 1_800_000_000 + Double($0) * 2) }
        func snap(_ i: Int, _ images: [ImageLocks], findings: [Finding] = []) -> AuditedSnapshot {
            AuditedSnapshot(Snapshot(host: "h", generated: t[i], images: images, lockFiles: [], unseen: []), findings: findings)
        }
        func image(_ path: String, holders: [Holder] = [], waiters: [Holder] = []) -> ImageLocks {
            ImageLocks(id: path, path: path, schemes: [.lockfile], holders: holders, waiters: waiters)
        }
        let py = Holder(pid: 2, command: "python3", args: ["python3"], user: "root", scheme: .lockfile, lockType: .write)
        let gone = Holder(pid: 2, command: "?", scheme: .lockfile, lockType: .write)
        let qemu = Holder(pid: 1, command: "qemu", fd: 9, scheme: .qemu, qemu: .readOnly)
        let warn = Finding(rule: .foreignHolder, severity: .warning, image: "/a", evidence: "e", remedy: "r")
        let steps = [
            snap(0, [image("/a", holders: [qemu])]),
            snap(1, [image("/a", holders: [qemu], waiters: [py])], findings: [warn]),
            // The waiter got its lock and ended mid-scan: its details come from the step before.
            snap(2, [image("/a", holders: [gone])], findings: [warn]),
            snap(3, [image("/a", holders: [Holder(pid: 1, command: "qemu", fd: 9, scheme: .qemu, qemu: .readWrite)]),
                     image("/b", holders: [qemu])]),
            snap(4, []),
        ]
        var watch = SnapshotWatch(steps[0], minimumSeverity: .warning)
        var previous = steps[0]
        var kinds: [String] = []
        for next in steps.dropFirst() {
            let filled = AuditedSnapshot(SnapshotDiff.fillingDetails(next.snapshot, from: previous.snapshot), findings: next.findings)
            let expected = SnapshotDiff.events(from: previous, to: filled, minimumSeverity: .warning)
            let got = watch.advance(to: next)
            XCTAssertEqual(got, expected)
            XCTAssertEqual(watch.current, filled)
            kinds += got.map { "\($0.kind.rawValue) \($0.holder?.command ?? $0.finding?.rule.rawValue ?? "")" }
            previous = filled
        }
        XCTAssertEqual(kinds, ["waiter-blocked python3", "finding-raised foreign-holder",
                               "lock-released qemu", "waiter-unblocked python3", "lock-acquired python3",
                               "lock-released python3", "lock-acquired qemu", "lock-acquired qemu", "finding-cleared foreign-holder",
                               "lock-released qemu", "lock-released qemu"])
    }
}
