import _TestSupport
import Foundation
import XCTest

/// README.md's marked examples, run on a real state by scripts/readme-examples (real
/// qemu-nbd, qemu-io, `locksmith hold` holders, a real waiter and writer, the TUI in tmux)
/// and diffed against the README: an example that stops being true fails here.
final class ReadmeExamplesTests: XCTestCase {
    func testReadmeExamplesAreWhatTheCommandsPrint() throws {
        for tool in ["qemu-img", "qemu-io", "qemu-nbd", "tmux", "python3"] { _ = try Run.tool(tool) }
        let script = Run.repository + "/scripts/readme-examples"
        let r = try Run.capture(script, [Run.locksmith], timeout: 300)
        XCTAssertEqual(r.status, 0, "scripts/readme-examples: a README example is stale (scripts/readme-examples --update "
                       + "rewrites the blocks; check the result):\n\(r.stdout)\(r.stderr)")
        // Every example ran: the script names each one it checked.
        let checked = r.stdout.split(separator: "\n").filter { $0.hasSuffix(": ok") }
        XCTAssertGreaterThanOrEqual(checked.count, 8, r.stdout)
    }
}
