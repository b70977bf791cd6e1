// Foundation's String replacing and trimming, on Unicode scalars as NSString does (not on
// Characters: a quote followed by a combining mark is still a quote, "\r\n" still holds a
// "\n"), without Foundation (the binary links FoundationEssentials only).

extension StringProtocol {
    /// Every occurrence of `target` replaced by `replacement`, matched scalar by scalar
    /// (as `replacingOccurrences(of:with:)` did).
    package func replacingScalars(_ target: String, with replacement: String) -> String {
        let t = Array(target.unicodeScalars)
        guard !t.isEmpty else { return String(self) }
        let s = Array(unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            if s[i] == t[0] && i + t.count <= s.count && s[i..<i + t.count].elementsEqual(t) {
                out.append(contentsOf: replacement.unicodeScalars)
                i += t.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(out)
    }

    /// Without leading and trailing blanks: tabs and space separators (as
    /// `trimmingCharacters(in: .whitespaces)` did).
    package var trimmingBlanks: String {
        trimmingScalars { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator }
    }

    /// Without leading and trailing blanks and line ends (as
    /// `trimmingCharacters(in: .whitespacesAndNewlines)` did).
    package var trimmingBlanksAndNewlines: String {
        trimmingScalars {
            $0 == "\t" || $0.properties.generalCategory == .spaceSeparator
                || ("\n"..."\r").contains($0) || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}"
        }
    }

    private func trimmingScalars(_ drop: (Unicode.Scalar) -> Bool) -> String {
        let v = unicodeScalars
        guard let a = v.firstIndex(where: { !drop($0) }) else { return "" }
        let b = v.lastIndex(where: { !drop($0) })!
        var out = String.UnicodeScalarView()
        out.append(contentsOf: v[a...b])
        return String(out)
    }
}

extension String {
    /// Whether the string, lowercased, starts with one of `prefixes` (lowercase ASCII), as
    /// `lowercased().hasPrefix` says, without the copy when the bytes that decide are ASCII:
    /// the longest prefix's and one more (a combining mark after a prefix joins its last
    /// character). Otherwise (a Kelvin sign lowercases to "k"), the copy.
    package func hasLowercasedPrefix(_ prefixes: [String]) -> Bool {
        hasLowercasedEnd(prefixes, atStart: true)
    }

    /// Whether the string, lowercased, ends with one of `suffixes` (lowercase ASCII), as
    /// `lowercased().hasSuffix` says, without the copy when the bytes that decide are ASCII:
    /// the longest suffix's and one before it (a prepended mark joins the next character).
    /// Otherwise, the copy.
    package func hasLowercasedSuffix(_ suffixes: [String]) -> Bool {
        hasLowercasedEnd(suffixes, atStart: false)
    }

    /// `hasLowercasedPrefix` (`atStart`) or `hasLowercasedSuffix`: the window of deciding
    /// bytes at that end, compared folded when ASCII, else the lowercased copy.
    private func hasLowercasedEnd(_ patterns: [String], atStart: Bool) -> Bool {
        let width = patterns.reduce(0) { max($0, $1.utf8.count) } + 1
        let window = Array(atStart ? utf8.prefix(width) : utf8.suffix(width))
        guard window.allSatisfy({ $0 < 0x80 }) else {
            let lower = lowercased()
            return patterns.contains { atStart ? lower.hasPrefix($0) : lower.hasSuffix($0) }
        }
        return patterns.contains { p in
            let n = p.utf8.count
            return n <= window.count && Self.asciiEqualFolded(atStart ? window.prefix(n) : window.suffix(n), p)
        }
    }

    /// ASCII bytes against a lowercase ASCII pattern: a letter matches in either case
    /// (ORing 0x20 lowercases an ASCII letter and makes no other byte one), the rest exactly.
    private static func asciiEqualFolded(_ bytes: ArraySlice<UInt8>, _ pattern: String) -> Bool {
        zip(bytes, pattern.utf8).allSatisfy { b, c in
            c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") ? b | 0x20 == c : b == c
        }
    }
}
