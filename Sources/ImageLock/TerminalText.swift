/// Text read from the system, made safe for a terminal.
///
/// File names, process names and arguments, lock-file contents and VM names are chosen by
/// whoever made them: an escape sequence in one (`ESC ] 0;...BEL`, `ESC [2J`, CR) would
/// reach root's terminal and rewrite the screen, a newline would forge a line of output.
/// Every line of human (non-JSON) output passes through `escaped`, which shows such
/// characters visibly, the way `ls -b` and systemd's cescape do: `\e` is `\x1b`, newline
/// `\n`, tab `\t`, CR `\r`, backslash `\\`, other C0 controls and DEL `\xHH`, a byte of
/// invalid UTF-8 (a `PathBytes` carrier) `\xHH`, C1 controls (U+0080-U+009F), format
/// characters (bidi overrides, zero-width), line and paragraph separators and unassigned
/// code points `\uHHHH`. The result holds no control character at all, so one escaped
/// line is one line on the terminal. The TUI shows the same characters (`needsEscape`) as `?`.
public enum TerminalText {
    /// Whether a scalar must not reach a terminal as it is.
    @inline(__always)
    public static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if v < 0x20 || v == 0x7F || v == 0x5C { return true }  // C0, DEL, backslash
        if v < 0x7F { return false }
        if v <= 0x9F { return true }  // C1
        if PathBytes.isCarrier(s) { return true }
        switch s.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator, .unassigned, .surrogate, .control: return true
        default: return false
        }
    }

    /// `text` with every character that `needsEscape` written visibly (see the type).
    public static func escaped(_ text: String) -> String {
        // The common case: printable ASCII only, nothing to do.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x5C }) { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for s in text.unicodeScalars {
            guard needsEscape(s) else {
                out.unicodeScalars.append(s)
                continue
            }
            switch s.value {
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x09: out += "\\t"
            case 0x0D: out += "\\r"
            case 0..<0x20, 0x7F: out += "\\x" + hex(s.value, digits: 2)
            default:
                if let b = PathBytes.carriedByte(s) {
                    out += "\\x" + hex(UInt32(b), digits: 2)
                } else {
                    out += "\\u" + hex(s.value, digits: s.value > 0xFFFF ? 6 : 4)
                }
            }
        }
        return out
    }

    /// Several lines, each escaped, each ended by a newline: what a text renderer writes.
    public static func lines<S: Sequence>(_ lines: S) -> String where S.Element == String {
        var out = ""
        for l in lines {
            out += escaped(l)
            out += "\n"
        }
        return out
    }

    private static func hex(_ v: UInt32, digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
