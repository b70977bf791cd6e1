import Foundation
import ImageLock
import XCTest

/// Replacing and trimming on Unicode scalars (`TextScalars.swift`): as Foundation's literal
/// `replacingOccurrences(of:with:options: .literal)` and `trimmingCharacters(in:)`. Not as
/// its default search, nor a Character-wise replace, which both pass over a quote followed
/// by a combining mark (so the shell quoting of a cluster's remote command left that quote
/// unescaped), and a Character-wise one over the "\n" of "\r\n".
final class TextScalarsTests: XCTestCase {
    let samples = ["", "plain", "it's", "'\u{301}x'", "a\r\nb\nc", "\n\n", "''''", "caf\u{E9} 'e\u{301}'",
                   " \t a b \t ", "\u{A0}x\u{2003}", "\u{3000}y\u{3000}", "\n x \n", "\u{85}z\u{2028}", "\r\n", "\u{301}'"]

    func testReplacingMatchesFoundationScalarForScalar() {
        for s in samples {
            for (a, b) in [("'", "'\\''"), ("\n", "; "), ("ab", ""), ("'locksmith browse --help'", "'locksmith --help'")] {
                XCTAssertEqual(Array(s.replacingScalars(a, with: b).unicodeScalars),
                               Array(s.replacingOccurrences(of: a, with: b, options: .literal).unicodeScalars), "\(s.debugDescription) \(a)")
            }
        }
        XCTAssertEqual(Array("x '\u{301} y".replacingScalars("'", with: "Q").unicodeScalars), Array("x Q\u{301} y".unicodeScalars))
        XCTAssertEqual("a\r\nb".replacingScalars("\n", with: "; "), "a\r; b")
    }

    func testTrimmingMatchesFoundationsCharacterSets() {
        for s in samples {
            XCTAssertEqual(Array(s.trimmingBlanks.unicodeScalars),
                           Array(s.trimmingCharacters(in: .whitespaces).unicodeScalars), s.debugDescription)
            XCTAssertEqual(Array(s.trimmingBlanksAndNewlines.unicodeScalars),
                           Array(s.trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars), s.debugDescription)
            XCTAssertEqual(s[...].trimmingBlanks, s.trimmingBlanks)
        }
    }

    /// `hasLowercasedPrefix` / `hasLowercasedSuffix`: as `lowercased().hasPrefix` and
    /// `.hasSuffix` say, in every case, at every length, with marks and non-ASCII letters
    /// next to the bytes that decide (the Kelvin sign, dotless s, a combining acute, a
    /// prepended Arabic number sign).
    func testLowercasedPrefixAndSuffixAsTheLowercasedCopySays() {
        let prefixes = ["ab://", "ab+"], suffixes = [".x2", ".xyz"]
        let parts = ["", "a", "A", "b", "B", "ab", "AB", "aB", "://", ":/", "+", "x", ".", ".x2", ".X2", ".XyZ", "yz",
                     "\u{301}", "\u{212A}", "\u{17F}", "\u{600}", "\u{130}", "\u{0}", "2", "/"]
        for x in parts {
            for y in parts {
                for z in parts {
                    let s = x + y + z
                    let lower = s.lowercased()
                    XCTAssertEqual(s.hasLowercasedPrefix(prefixes), prefixes.contains { lower.hasPrefix($0) }, s.debugDescription)
                    XCTAssertEqual(s.hasLowercasedSuffix(suffixes), suffixes.contains { lower.hasSuffix($0) }, s.debugDescription)
                }
            }
        }
    }
}
