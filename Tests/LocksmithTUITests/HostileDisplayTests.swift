import ImageLock
@testable import LocksmithTUI
import XCTest

/// The TUI shows as `?` exactly what text output escapes (`TerminalText.needsEscape`),
/// bytes that are not UTF-8 included; a backslash stays a backslash on the screen.
final class HostileDisplayTests: XCTestCase {
    func testScreenAndTextOutputAgreeOnWhatIsUnsafe() {
        let name = "a\u{1b}[2J\u{9b}\u{202e}\\" + PathBytes.string([0xFF]) + "\u{4e2d}"
        XCTAssertEqual(DisplayText.glyphs(name).map(\.text).joined(), "a?[2J??\\?\u{4e2d}")
        for v in UInt32(0)..<0x3000 {
            guard let s = Unicode.Scalar(v), v != 0x5C else { continue }
            XCTAssertEqual(DisplayText.kind(of: s) == .replace, TerminalText.needsEscape(s), "U+\(String(v, radix: 16))")
        }
    }
}
