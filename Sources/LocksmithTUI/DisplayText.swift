import ImageLock

/// What a piece of text takes on a terminal, one glyph per cell (or two, for wide ones).
///
/// Paths come from the file system and may hold anything but `/` and NUL: escape bytes,
/// newlines, bidi overrides, invalid UTF-8 (bytes carried as `PathBytes` describes). None of
/// that may move the cursor or reorder the line, so control and format characters are
/// shown as `?` and every glyph has a known width (what glibc's wcwidth gives for it).
public struct Glyph: Equatable, Sendable {
    /// One base character and the combining marks that follow it.
    public var text: String
    /// 1, or 2 for East Asian wide characters and emoji.
    public var width: Int

    public init(_ text: String, width: Int) {
        self.text = text
        self.width = width
    }
}

/// Which end of a too-long text is kept.
public enum Truncation: Sendable {
    /// Keep the start, mark the cut with an ellipsis at the end.
    case end
    /// Keep the end (the file name of a path), ellipsis at the start.
    case start
}

public enum DisplayText {
    /// The glyphs of `text`. With `unicode` false (a terminal whose charset is not UTF-8)
    /// every non-ASCII character is shown as `?`.
    public static func glyphs(_ text: String, unicode: Bool = true) -> [Glyph] {
        var out: [Glyph] = []
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch kind(of: scalar) {
            case .replace:
                out.append(Glyph("?", width: 1))
            case .combining:
                if !unicode { continue }
                if let last = out.popLast() {
                    out.append(Glyph(last.text + String(scalar), width: last.width))
                } else {
                    out.append(Glyph(" " + String(scalar), width: 1))
                }
            case .narrow:
                out.append(scalar.isASCII || unicode ? Glyph(String(scalar), width: 1) : Glyph("?", width: 1))
            case .wide:
                out.append(unicode ? Glyph(String(scalar), width: 2) : Glyph("?", width: 1))
            }
        }
        return out
    }

    /// The number of terminal columns `text` takes once made safe.
    public static func width(_ text: String, unicode: Bool = true) -> Int {
        glyphs(text, unicode: unicode).reduce(0) { $0 + $1.width }
    }

    /// The glyphs of `text` cut to at most `width` columns, the cut marked with an ellipsis.
    public static func fit(_ text: String, width: Int, truncation: Truncation = .end, unicode: Bool = true) -> [Glyph] {
        guard width > 0 else { return [] }
        let all = glyphs(text, unicode: unicode)
        let total = all.reduce(0) { $0 + $1.width }
        if total <= width { return all }
        let mark = Glyph(unicode ? "…" : "~", width: 1)
        var room = width - 1
        var kept: [Glyph] = []
        switch truncation {
        case .end:
            for g in all {
                if g.width > room { break }
                kept.append(g)
                room -= g.width
            }
            return kept + [mark]
        case .start:
            for g in all.reversed() {
                if g.width > room { break }
                kept.append(g)
                room -= g.width
            }
            return [mark] + kept.reversed()
        }
    }

    /// `fit` joined back into a string (for tests and one-line messages).
    public static func fitted(_ text: String, width: Int, truncation: Truncation = .end, unicode: Bool = true) -> String {
        fit(text, width: width, truncation: truncation, unicode: unicode).map(\.text).joined()
    }

    enum Kind { case replace, combining, narrow, wide }

    static func kind(of s: Unicode.Scalar) -> Kind {
        let v = s.value
        // What text output escapes (controls, format characters, bytes of invalid UTF-8)
        // the screen shows as `?`; a backslash is only escaped there to keep `\x1b` apart.
        if v != 0x5C && TerminalText.needsEscape(s) { return .replace }
        if v < 0x7F { return .narrow }
        switch s.properties.generalCategory {
        case .nonspacingMark, .enclosingMark:
            return .combining
        default:
            break
        }
        if (0x1160...0x11FF).contains(v) { return .combining }  // Hangul medial vowels, final consonants
        if isWide(v) || (s.properties.isEmojiPresentation && !(0x1F1E6...0x1F1FF).contains(v)) { return .wide }
        return .narrow
    }

    /// East Asian Wide and Fullwidth ranges (Unicode EastAsianWidth.txt, W and F) outside
    /// the emoji, which `isEmojiPresentation` covers.
    static func isWide(_ v: UInt32) -> Bool {
        switch v {
        case 0x1100...0x115F, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF,
             0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3, 0xF900...0xFAFF,
             0xFE10...0xFE19, 0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x16FE0...0x16FE4,
             0x17000...0x18CFF, 0x1B000...0x1B2FF, 0x1F200...0x1F202, 0x1F210...0x1F23B, 0x1F240...0x1F248,
             0x1F250...0x1F251, 0x20000...0x2FFFD, 0x30000...0x3FFFD:
            return true
        default:
            return false
        }
    }
}
