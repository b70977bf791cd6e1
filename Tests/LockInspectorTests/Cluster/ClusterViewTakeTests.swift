import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// `ClusterView.take` with this host (`.`, scanned here) and a host whose ssh fails: the
/// merged snapshot, the findings beside it labelled by host, and the host not seen.
final class ClusterViewTakeTests: XCTestCase {
    func testThisHostAndAFailedHostMakeOneAuditedView() throws {
        let dir = TempDir("clusterview")
        // A stale lock file: no image found for it, nobody holds it.
        let stale = dir.file(".qemu-" + String(repeating: "ab", count: 20) + ".lock")
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data()))
        var query = ClusterQuery(hosts: [".", "nowhere.invalid"])
        query.ssh = ["/bin/false"]  // the second host is never reached
        query.timeout = 5
        let view = ClusterView(query: query, scan: ScanRequest(lockDirectories: [dir.path]), version: "9.9")

        let outcome = view.take(audit: true)
        XCTAssertEqual(outcome.hosts.map(\.name), [".", "nowhere.invalid"])
        XCTAssertEqual(outcome.hosts.map(\.reached), [true, false])
        XCTAssertEqual(outcome.hosts.first?.version, "9.9", "this very binary's version for .")
        XCTAssertTrue(outcome.hostFailed)
        let label = try XCTUnwrap(outcome.hosts.first?.label, "this host, by the name it reported")
        XCTAssertEqual(outcome.snapshot.lockFiles.filter { $0.path == stale }.map(\.host), [label])
        let mine = outcome.audited.findings.filter { $0.files.contains(stale) }
        XCTAssertFalse(mine.isEmpty, "the audit's findings ride beside the snapshot: \(outcome.audited.findings.map(\.rule))")
        XCTAssertEqual(Set(mine.map(\.host)), [label])
        XCTAssertFalse(outcome.snapshot.unseen.contains { $0.what.hasPrefix("host ") })

        let plain = view.take(audit: false, unreachedAsUnseen: true)
        XCTAssertEqual(plain.audited.findings, [], "not audited: no findings")
        XCTAssertEqual(plain.snapshot.unseen.filter { $0.what.hasPrefix("host ") }.map(\.what), ["host nowhere.invalid"])
    }
}
