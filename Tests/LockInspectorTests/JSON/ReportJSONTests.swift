import _TestSupport
import Foundation
@testable import ImageLock
@testable import LockInspector
import XCTest

/// Each concept has one JSON writer: a holder, a kernel lock row and a finding read the same
/// in every report that carries them, and every report matches its schema (docs/schema),
/// rendered by the library alone (no encoder of the executable's).
final class ReportJSONTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_700_000_000)
    let dev = DeviceID(major: 0xfe, minor: 1)

    var row: KernelLock {
        kernelRow("4: OFDLCK ADVISORY  READ -1 fe:01:77 100 100")
    }
    var holder: Holder {
        Holder(pid: 4242, command: "qemu-io", args: ["qemu-io", "vm \"1\".qcow2"], uid: 107, started: now.addingTimeInterval(-60),
               fd: 9, openMode: .readWrite, scheme: .qemu, lockType: .read, qemu: .readWrite)
    }
    var finding: Finding {
        Finding(rule: .blockedWaiter, severity: .warning, image: "/i/vm.qcow2",
                holders: [InvolvedProcess(holder: holder, role: .waiter, waitedSeconds: 30)],
                evidence: "pid 4242 waits", remedy: "look at the holder")
    }
    var snapshot: Snapshot {
        Snapshot(host: "h", generated: now, images: [
            ImageLocks(id: "/i/vm.qcow2", path: "/i/vm.qcow2", device: dev, inode: 77, schemes: [.qemu], holders: [holder], locks: [row]),
        ], lockFiles: [], unseen: [Unseen(what: "pid 1", why: "gone")])
    }

    func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    /// `audit --json` with many findings (written in chunks on every core, streamed): the
    /// findings in order, each as it is alone, the same bytes streamed or whole, and the
    /// findings array as list --audit writes it.
    func testManyFindingsAreWrittenInOrderWholeOrStreamed() throws {
        let findings = (0..<9_000).map { i in
            Finding(rule: i % 3 == 0 ? .unmappedLockFile : .staleLockFile, severity: .info, image: i % 2 == 0 ? nil : "/i/\(i).qcow2",
                    holders: i % 5 == 0 ? [InvolvedProcess(holder: holder)] : [], files: ["/var/tmp/.qemu-\(i).lock"],
                    evidence: "lock file \(i) \"quoted\"", remedy: "r")
        }
        let audited = AuditedSnapshot(snapshot, findings: findings)
        let whole = ReportJSON.audit(audited, failOn: .critical, fixes: nil, hosts: nil, host: "h")
        var streamed: [UInt8] = []
        ReportJSON.audit(audited, failOn: .critical, fixes: nil, hosts: nil, host: "h") { streamed += $0 }
        XCTAssertEqual(streamed, whole)
        JSONSchema.check(String(decoding: whole, as: UTF8.self), command: "audit")
        let written = try XCTUnwrap(try object(whole)["findings"] as? [[String: Any]])
        XCTAssertEqual(written.map { $0["evidence"] as? String }, findings.map(\.evidence))
        let one = try object(ReportJSON.audit(AuditedSnapshot(snapshot, findings: [findings[4_500]]), failOn: .critical, fixes: nil,
                                              hosts: nil, host: "h"))
        XCTAssertEqual(written[4_500] as NSDictionary, (one["findings"] as? [[String: Any]])?.first as NSDictionary?)
        let list = try object(SnapshotJSON.render(snapshot, host: "h", extras: .init(findings: findings)))
        XCTAssertEqual(list["findings"] as? NSArray, written as NSArray)
    }

    func testAHolderAFindingAndAKernelRowAreOneObjectInEveryReport() throws {
        let listBytes = SnapshotJSON.render(snapshot, host: "h", extras: .init(findings: [finding]))
        let auditBytes = ReportJSON.audit(AuditedSnapshot(snapshot, findings: [finding]), failOn: .critical, fixes: nil, hosts: nil, host: "h")
        let watchBytes = ReportJSON.watchEvent(WatchEvent(kind: .findingRaised, time: now, image: "/i/vm.qcow2", imageID: "/i/vm.qcow2",
                                                          holder: holder, finding: finding), host: "h")
        let result = ProbeResult(image: "/i/vm.qcow2", scheme: .qemu, mode: .exclusive, lockFile: nil, lockFileExists: false,
                                 flavor: .ofd, contention: Contention(blocking: [], holders: [LockHolder(pid: 4242, command: "qemu-io", fd: 9, lock: row)],
                                                                      qemuConflicts: [QemuConflict(kind: .held, permission: .consistentRead)]))
        let tryBytes = ReportJSON.tryResult(result, note: nil, host: "h", generated: now)
        for (command, bytes) in [("list", listBytes), ("audit", auditBytes), ("watch", watchBytes), ("try", tryBytes)] {
            JSONSchema.check(String(decoding: bytes, as: UTF8.self), command: command)
            XCTAssertTrue(String(decoding: bytes, as: UTF8.self).hasPrefix(#"{"schema":1,"host":"h","generated":"2023-11-14T22:13:20Z","#), command)
        }
        let list = try object(listBytes), audit = try object(auditBytes), watch = try object(watchBytes), tried = try object(tryBytes)
        let image = try XCTUnwrap((list["images"] as? [[String: Any]])?.first)
        let listHolder = try XCTUnwrap((image["holders"] as? [[String: Any]])?.first)
        XCTAssertEqual(listHolder as NSDictionary, watch["holder"] as? NSDictionary)
        XCTAssertEqual(listHolder["user"] as? String, "107", "no user name: the uid")
        let listFinding = try XCTUnwrap((list["findings"] as? [[String: Any]])?.first)
        XCTAssertEqual(listFinding as NSDictionary, (audit["findings"] as? [[String: Any]])?.first as NSDictionary?)
        XCTAssertEqual(listFinding as NSDictionary, watch["finding"] as? NSDictionary)
        XCTAssertTrue(String(decoding: auditBytes, as: UTF8.self).contains(#""waited_seconds":30}"#), "a whole number as JSONEncoder wrote it")
        let tryHolder = try XCTUnwrap((tried["holders"] as? [[String: Any]])?.first)
        XCTAssertEqual(tryHolder["lock"] as? NSDictionary, (image["locks"] as? [[String: Any]])?.first as NSDictionary?)
        XCTAssertEqual((tryHolder["lock"] as? [String: Any])?["pid"] as? Int, -1, "an OFD lock's pid, as /proc/locks shows it")
        XCTAssertEqual(audit["counts"] as? [String: Int], ["critical": 0, "warning": 1, "info": 0])
        XCTAssertTrue(audit["fixes"] is NSNull, "null without --fix")
        XCTAssertNil(audit["hosts"], "left out outside a cluster view")
    }

    func testVerdictIsSnakeCaseWithExplicitNullsWithoutAnEncoder() throws {
        let file = FileFacts(path: "/i/vm.qcow2", kind: .regular, device: dev, inode: 77, readable: true, writable: true)
        let v = Diagnosis.verdict(WhyInput(imageAsGiven: "vm.qcow2", intent: .write,
                                           chain: [ChainLink(name: "vm.qcow2", file: file, format: "qcow2")],
                                           images: [snapshot.images[0]]))
        let bytes = VerdictJSON.render(v, host: "h", generated: now)
        JSONSchema.check(String(decoding: bytes, as: UTF8.self), command: "why")
        let o = try object(bytes)
        XCTAssertEqual(o["qemu_message"] as? String, "Failed to get \"write\" lock\nIs another process using the image [vm.qcow2]?")
        let blocker = try XCTUnwrap((o["blockers"] as? [[String: Any]])?.first)
        XCTAssertEqual(blocker["open_mode"] as? String, "read-write")
        XCTAssertTrue(blocker["vm"] is NSNull, "an unknown value is null, not left out")
        XCTAssertEqual(try XCTUnwrap((o["chain"] as? [[String: Any]])?.first)["backing_name"] as? NSNull, NSNull())
        XCTAssertNil(o["cluster"])
        let cluster = try object(VerdictJSON.render(v, host: "h", generated: now, cluster: .init(storage: nil, hosts: [], holders: [])))
        XCTAssertTrue((cluster["cluster"] as? [String: Any])?["storage"] is NSNull)
    }
}
