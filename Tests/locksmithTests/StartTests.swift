import _TestSupport
import Foundation
import XCTest

/// What `locksmith` does at start: `--version` answered before ArgumentParser runs.
final class StartTests: XCTestCase {
    func testVersionIsTheManPagesAndAloneOnItsLine() throws {
        let man = try String(contentsOfFile: GlusterTestBed.repository + "/man/locksmith.1", encoding: .utf8)
        let th = try XCTUnwrap(man.split(separator: "\n").first { $0.hasPrefix(".TH ") }, "no .TH line")
        let named = try XCTUnwrap(th.range(of: "\"locksmith "), "\(th)")
        let version = th[named.upperBound...].prefix { $0 != "\"" }
        XCTAssertFalse(version.isEmpty, "\(th)")
        let r = try Run.locksmith(["--version"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stdout, version + "\n")
        XCTAssertEqual(r.stderr, "")
        // With another argument ArgumentParser answers (its --version wins over the rest): the same.
        let parsed = try Run.locksmith(["--no-headings", "--version"])
        XCTAssertEqual(parsed.status, 0, "\(parsed)")
        XCTAssertEqual(parsed.stdout, r.stdout)
    }
}
