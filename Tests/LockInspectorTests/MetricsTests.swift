import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// `Metrics.render`: the Prometheus text of a snapshot built by hand, checked by the real
/// promtool (package prometheus) and by reading the samples back.
final class MetricsTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func snapshot() -> AuditedSnapshot {
        let odd = "/vm/we\"ird\\name\nline2.qcow2"
        let holder = Holder(pid: 42, command: "qemu-system-x86", user: "libvirt-qemu", started: t0, fd: 5,
                            openMode: .readWrite, vm: "web01", scheme: .qemu,
                            qemu: QemuPermissions(held: [.consistentRead, .write], unshared: [.write]))
        var second = holder
        second.fd = 6  // the same process through a second fd: the same series
        let waiter = Holder(pid: 43, command: "python3", user: "root", started: t0, scheme: .lockfile, lockType: .write)
        let images = [
            ImageLocks(id: odd, path: odd, schemes: [.qemu], holders: [holder, second], waiters: [waiter]),
            ImageLocks(id: "/var/tmp/.qemu-ab.lock", path: nil, schemes: [.lockfile], lockFiles: ["/var/tmp/.qemu-ab.lock"]),
        ]
        func entry(_ name: String, kind: FileKind = .regular, held: Bool, image: String?) -> LockFileEntry {
            LockFileEntry(path: "/var/tmp/" + name, kind: kind, device: nil, inode: 1, held: held, image: image)
        }
        let files = [entry("a", held: true, image: odd), entry("b", held: false, image: odd),
                     entry("c", held: false, image: nil), entry("d", kind: .fifo, held: false, image: nil),
                     entry("e", held: false, image: odd)]
        let findings = [
            Finding(rule: .unsafeLockFile, severity: .warning, image: odd, files: ["/var/tmp/e"], evidence: "", remedy: ""),
            Finding(rule: .unsafeLockFile, severity: .critical, image: nil, files: ["/var/tmp/d"], evidence: "", remedy: ""),
            Finding(rule: .staleLockFile, severity: .info, image: odd, files: ["/var/tmp/b"], evidence: "", remedy: ""),
        ]
        return AuditedSnapshot(Snapshot(host: "h1", generated: t0, images: images, lockFiles: files,
                                        unseen: [Unseen(what: "open files of pid 7", why: "EACCES"),
                                                 Unseen(what: "open files of pid 8 (x)", why: "EACCES"),
                                                 Unseen(what: "lock dir /nope", why: "ENOENT")]),
                               findings: findings)
    }

    /// name{labels} → value, for every sample line.
    func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            XCTAssertNil(out[String(line[..<space])], "a series twice: \(line)")
            out[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return out
    }

    func testSeriesPerHolderEscapedAndCounted() throws {
        let text = Metrics.render(snapshot(), .init(scanSeconds: 0.25, waitedSeconds: [43: 12.5],
                                                    now: t0.addingTimeInterval(90)))
        let s = samples(text)
        let id = #"{host="h1",image="/vm/we\"ird\\name\nline2.qcow2",scheme="qemu",mode="rw",pid="42",command="qemu-system-x86",vm="web01",user="libvirt-qemu"}"#
        XCTAssertEqual(s["locksmith_image_lock_info" + id], 1, text)
        XCTAssertEqual(s["locksmith_image_lock_held_seconds" + id], 90, text)
        XCTAssertEqual(text.components(separatedBy: "locksmith_image_lock_info{").count - 1, 1, "one series per holder: \(text)")
        let img = #"{host="h1",image="/vm/we\"ird\\name\nline2.qcow2"}"#
        XCTAssertEqual(s["locksmith_blocked_waiters" + img], 1)
        XCTAssertEqual(s["locksmith_blocked_longest_wait_seconds" + img], 12.5)
        XCTAssertEqual(s[#"locksmith_audit_findings{host="h1",rule="unsafe-lock-file",severity="critical"}"#], 1)
        XCTAssertEqual(s[#"locksmith_audit_findings{host="h1",rule="unsafe-lock-file",severity="warning"}"#], 1)
        XCTAssertEqual(s[#"locksmith_audit_findings{host="h1",rule="stale-lock-file",severity="info"}"#], 1)
        XCTAssertEqual(s[#"locksmith_audit_findings{host="h1",rule="unlocked-writer",severity="critical"}"#], 0)
        XCTAssertEqual(s.keys.filter { $0.hasPrefix("locksmith_audit_findings{") }.count,
                       AuditRule.allCases.count * Severity.allCases.count)
        for (state, n) in [("held", 1.0), ("free", 1), ("unmapped", 1), ("unsafe", 2)] {
            XCTAssertEqual(s[#"locksmith_lock_files{host="h1",state="\#(state)"}"#], n, state)
        }
        XCTAssertEqual(s[#"locksmith_unseen{host="h1",what="process fds"}"#], 2)
        XCTAssertEqual(s[#"locksmith_unseen{host="h1",what="lock dir"}"#], 1)
        XCTAssertEqual(s["locksmith_hosts_unreachable"], 0)
        XCTAssertEqual(s["locksmith_scan_duration_seconds"], 0.25)
        // No raw newline inside a sample: every line is a comment or a sample.
        for line in text.split(separator: "\n") {
            XCTAssertTrue(line.hasPrefix("# HELP locksmith_") || line.hasPrefix("# TYPE locksmith_") || line.hasPrefix("locksmith_"),
                          String(line))
        }
    }

    func testPromtoolAcceptsIt() throws {
        let text = Metrics.render(snapshot(), .init(scanSeconds: 0.25, waitedSeconds: [43: 12.5], now: t0))
        try Promtool.check(text)
        let empty = Metrics.render(AuditedSnapshot(Snapshot(host: "h", generated: t0, images: [], lockFiles: [], unseen: [])),
                                   .init(scanSeconds: 0.001))
        try Promtool.check(empty)
    }

    func testEscapingOfLabelValues() {
        XCTAssertEqual(Metrics.escapeLabel("a\\b\"c\nd\te\u{1b}"), "a\\\\b\\\"c\\nd\te\u{1b}")
    }
}
