import LocksmithStart
import XCTest

/// The executable's start (Sources/LocksmithStart/start.c): which arguments make it read the
/// kernel's lock table before main. (The read itself: ImageLockTests' SystemTests.)
final class StartRuleTests: XCTestCase {
    private func reads(_ args: [String]) -> Bool {
        var cArgs = (["locksmith"] + args).map { strdup($0) }
        defer { cArgs.forEach { free($0) } }
        return locksmith_start_reads_table(Int32(cArgs.count), &cArgs) != 0
    }

    func testListAndAuditReadTheTableEarlyUnlessAnotherSourceOrHelpIsAsked() {
        XCTAssertTrue(reads(["list"]))
        XCTAssertTrue(reads(["list", "--audit", "--json"]))
        XCTAssertTrue(reads(["audit"]))
        XCTAssertTrue(reads(["audit", "--json", "--fail-on", "warning", "--lock-dir", "/var/tmp"]))
        XCTAssertTrue(reads(["list", "--json", "--lock-dir", "/var/tmp", "--images", "/srv/images"]))
        XCTAssertFalse(reads(["why", "/srv/images/a.qcow2"]), "why reads the holders' fdinfo first (FocusedLockSource)")
        for other in ["--proc=/tmp/p", "--proc", "--host", "--hosts=a,b", "--list-columns", "--help", "-h"] {
            XCTAssertFalse(reads(["list", "--json", other]), other)
        }
        for other in ["--proc=/tmp/p", "--host", "--hosts=a,b", "--help", "-h"] {
            XCTAssertFalse(reads(["audit", "--json", other]), other)
        }
        XCTAssertFalse(reads([]))
        XCTAssertFalse(reads(["watch"]))
        XCTAssertFalse(reads(["tui"]))
        XCTAssertFalse(reads(["--version"]))
        XCTAssertFalse(reads(["lis"]))
        XCTAssertFalse(reads(["listing"]))
    }
}
