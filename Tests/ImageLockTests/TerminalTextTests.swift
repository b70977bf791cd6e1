import ImageLock
import XCTest

/// What a line of text output may hold once made safe for a terminal.
final class TerminalTextTests: XCTestCase {
    func testEscapesEveryControlAndInvalidByteVisibly() {
        let hostile = "vm\u{1b}]0;OWNED\u{07}\u{1b}[2J\u{1b}[2K\rCRITICAL\nFAKE\t\\x\u{7f}\u{9b}31m\u{202e}gpj.exe\u{2028}"
            + PathBytes.string([0xFF, 0x41])
        XCTAssertEqual(TerminalText.escaped(hostile),
                       "vm\\x1b]0;OWNED\\x07\\x1b[2J\\x1b[2K\\rCRITICAL\\nFAKE\\t\\\\x\\x7f\\u009b31m\\u202egpj.exe\\u2028\\xffA")
        // Printable text, wide characters and combining marks pass unchanged.
        for plain in ["/var/lib/libvirt/images/web01.qcow2", "vm-\u{4e2d}\u{6587}-e\u{301}", "\u{1F600} ok", ""] {
            XCTAssertEqual(TerminalText.escaped(plain), plain)
        }
    }

    /// Whatever goes in, nothing a terminal acts on comes out, and the escaping is one-to-one
    /// (a backslash is escaped too, so `\x1b` in a name stays apart from an escaped ESC).
    func testNoControlCharacterSurvivesAndDistinctTextsStayDistinct() {
        var seen: [String: String] = [:]
        for v in Array(0..<0x300) + [0x061C, 0x200B, 0x200E, 0x2066, 0xFEFF, 0xE0001, 0x10FE80, 0x10FEFF] {
            guard let s = Unicode.Scalar(UInt32(v)) else { continue }
            let text = "a" + String(Character(s)) + "\\"
            let out = TerminalText.escaped(text)
            for u in out.unicodeScalars {
                XCTAssertFalse(u.value < 0x20 || (0x7F...0x9F).contains(u.value), "U+\(String(v, radix: 16)) -> \(out.debugDescription)")
                XCTAssertFalse(u.properties.generalCategory == .format, "U+\(String(v, radix: 16)) -> \(out.debugDescription)")
                XCTAssertFalse(PathBytes.isCarrier(u))
            }
            if let other = seen[out] { XCTFail("\(text.debugDescription) and \(other.debugDescription) both print \(out)") }
            seen[out] = text
        }
        XCTAssertEqual(TerminalText.lines(["a\nb", "c"]), "a\\nb\nc\n")
    }
}
