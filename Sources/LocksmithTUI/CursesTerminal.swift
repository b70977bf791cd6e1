import CCurses
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The real terminal through ncursesw: the only file that calls curses. It copies a
/// `ScreenBuffer` to the screen (curses sends only what changed, so there is no
/// flicker) and decodes keys.
public final class CursesTerminal: TerminalDevice {
    public private(set) var unicode = true
    private var started = false
    private var colors = false
    private var escDelaySet = false

    public init() {}

    public enum StartError: Error, CustomStringConvertible {
        case notATerminal
        /// libncursesw could not be loaded (dlerror's text).
        case noCurses(String)
        public var description: String {
            switch self {
            case .notATerminal:
                return "the TUI needs a terminal (TERM set, stdin and stdout a tty); try `locksmith list`"
            case .noCurses(let why):
                return "the TUI needs ncursesw (libncursesw.so.6): \(why); try `locksmith list`"
            }
        }
    }

    public func start(color: Bool) throws {
        guard isatty(0) == 1, isatty(1) == 1 else { throw StartError.notATerminal }
        if let why = ccurses_unavailable() { throw StartError.noCurses(String(cString: why)) }
        unicode = ccurses_setlocale_utf8() != 0
        // Esc arrives alone after this many ms instead of curses' default second.
        setenv("ESCDELAY", "25", 0)
        // newterm, unlike initscr, returns NULL for an unknown TERM instead of exiting.
        guard ccurses_newterm() != nil else { throw StartError.notATerminal }
        started = true
        _ = ccurses_raw()
        _ = ccurses_noecho()
        _ = ccurses_nonl()
        _ = ccurses_keypad(true)
        _ = ccurses_curs_set(0)
        colors = color && ccurses_has_colors()
        if colors {
            _ = ccurses_start_color()
            _ = ccurses_use_default_colors()
            let pairs: [(Role, Int16, Int16)] = [
                (.title, Int16(COLOR_BLACK), Int16(COLOR_CYAN)),
                (.columnHeader, Int16(COLOR_BLACK), Int16(COLOR_GREEN)),
                (.write, Int16(COLOR_RED), -1),
                (.read, Int16(COLOR_GREEN), -1),
                (.wait, Int16(COLOR_YELLOW), -1),
                (.ok, Int16(COLOR_GREEN), -1),
                (.bad, Int16(COLOR_RED), -1),
                (.warn, Int16(COLOR_BLACK), Int16(COLOR_YELLOW)),
                (.keyName, Int16(COLOR_WHITE), Int16(COLOR_BLACK)),
                (.keyBar, Int16(COLOR_BLACK), Int16(COLOR_CYAN)),
                (.prompt, Int16(COLOR_BLACK), Int16(COLOR_YELLOW)),
                (.border, Int16(COLOR_CYAN), -1),
            ]
            for (role, fg, bg) in pairs { _ = ccurses_init_pair(Int16(role.rawValue), fg, bg) }
        }
        _ = ccurses_erase()
    }

    public func stop() {
        guard started else { return }
        started = false
        _ = ccurses_curs_set(1)
        _ = ccurses_endwin()
    }

    public var size: (width: Int, height: Int) {
        var rows: Int32 = 0, cols: Int32 = 0
        ccurses_size(&rows, &cols)
        return (Int(cols), Int(rows))
    }

    public func readKey(timeoutMilliseconds: Int32) -> Key? {
        ccurses_timeout(timeoutMilliseconds)
        var ch: wint_t = 0
        let rc = ccurses_get_wch(&ch)
        if rc == ERR { return nil }
        let code = Int32(bitPattern: ch)
        if rc == KEY_CODE_YES {
            switch code {
            case KEY_UP: return .up
            case KEY_DOWN: return .down
            case KEY_LEFT: return .left
            case KEY_RIGHT: return .right
            case KEY_PPAGE: return .pageUp
            case KEY_NPAGE: return .pageDown
            case KEY_HOME: return .home
            case KEY_END: return .end
            case KEY_ENTER: return .enter
            case KEY_BTAB: return .backTab
            case KEY_BACKSPACE: return .backspace
            case KEY_DC: return .delete
            case KEY_RESIZE: return .resize
            default:
                for n in 1...12 where code == ccurses_key_f(Int32(n)) { return .function(n) }
                return .unknown(code)
            }
        }
        switch code {
        case 3: return .interrupt
        case 9: return .tab
        case 10, 13: return .enter
        case 27: return .escape
        case 8, 127: return .backspace
        default:
            guard code >= 32, let scalar = Unicode.Scalar(UInt32(code)) else { return .unknown(code) }
            return .char(Character(scalar))
        }
    }

    public func draw(_ buffer: ScreenBuffer) {
        _ = ccurses_erase()
        let (w, h) = size
        for y in 0..<min(buffer.height, h) {
            for run in buffer.runs(y) where run.x < w {
                _ = ccurses_attrset(attributes(run.style))
                _ = ccurses_mvaddstr(Int32(y), Int32(run.x), run.text)
            }
        }
        _ = ccurses_attrset(ccurses_a_normal())
        _ = ccurses_refresh()
    }

    /// A role's look: a colour pair, or without colour bold / reverse / underline so that
    /// the screen stays readable (headers and the key bar reversed, writers bold).
    private func attributes(_ style: Style) -> attr_t {
        var a = ccurses_a_normal()
        if style.selected { a |= ccurses_a_reverse() }
        if colors {
            if style.role != .plain { a |= ccurses_color_pair(Int16(style.role.rawValue)) }
            switch style.role {
            case .title, .columnHeader, .write, .bad, .keyName, .prompt: a |= ccurses_a_bold()
            case .dim: a |= ccurses_a_dim()
            default: break
            }
        } else {
            switch style.role {
            case .title, .columnHeader, .keyBar, .prompt, .warn:
                a |= style.selected ? 0 : ccurses_a_reverse()
            case .write, .bad, .keyName: a |= ccurses_a_bold()
            case .wait: a |= ccurses_a_underline()
            case .dim: a |= ccurses_a_dim()
            default: break
            }
        }
        return a
    }
}
