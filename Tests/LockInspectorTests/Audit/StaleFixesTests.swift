import Foundation
import ImageLock
import LockInspector
import XCTest

/// `Auditor.remaining`: what `--fail-on` judges after `audit --fix`.
final class StaleFixesTests: XCTestCase {
    func testOnlyStaleLockFilesWhollyRemovedAreSettled() {
        func stale(_ files: [String]) -> Finding {
            Finding(rule: .staleLockFile, severity: .info, image: nil, files: files, evidence: "e", remedy: "r")
        }
        let writer = Finding(rule: .unlockedWriter, severity: .critical, image: "/a", files: ["/l/1"], evidence: "e", remedy: "r")
        let findings = [stale(["/l/1"]), stale(["/l/2", "/l/3"]), stale(["/l/4"]), writer]
        let fixes = [StaleFix(path: "/l/1", removed: true, outcome: "removed"),
                     StaleFix(path: "/l/2", removed: true, outcome: "removed"),
                     StaleFix(path: "/l/3", removed: false, outcome: "kept: held"),
                     StaleFix(path: "/l/4", removed: false, outcome: "kept: changed")]
        XCTAssertEqual(Auditor.remaining(findings, after: fixes), [stale(["/l/2", "/l/3"]), stale(["/l/4"]), writer],
                       "a finding stays while one of its files stays; another rule naming a removed file stays")
        XCTAssertEqual(Auditor.remaining(findings, after: []), findings)
    }
}
