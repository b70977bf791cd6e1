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
