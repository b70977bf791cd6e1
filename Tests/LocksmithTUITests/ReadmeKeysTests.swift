import _TestSupport
import Foundation
@testable import LocksmithTUI
import XCTest

/// README.md's key table comes from the same key table the TUI runs on: every binding's
/// keys, as the help screen names them, are in it, and it names no key the TUI lacks.
final class ReadmeKeysTests: XCTestCase {
    func testReadmeKeyTableNamesEveryBinding() throws {
        let readme = try String(contentsOfFile: Run.repository + "/README.md", encoding: .utf8)
        let lines = readme.components(separatedBy: "\n")
        let start = try XCTUnwrap(lines.firstIndex(of: "| keys | |"), "README.md has no TUI key table")
        let rows = lines[(start + 2)...].prefix { $0.hasPrefix("|") }
        // The first cell of each row: `names` in backticks.
        let named = Set(rows.flatMap { row in
            row.split(separator: "|", omittingEmptySubsequences: true).first.map { cell in
                cell.matches(of: #/`([^`]+)`/#).map { String($0.output.1) }
            } ?? []
        })
        let bindings = Set(KeyTable.bindings.map(\.names))
        XCTAssertEqual(bindings.subtracting(named).sorted(), [], "keys the TUI has that README's key table leaves out")
        XCTAssertEqual(named.subtracting(bindings).sorted(), [], "keys README's key table names that the TUI lacks")
    }
}
