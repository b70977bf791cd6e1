/// A key press, as the terminal edge decodes it.
public enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case enter, tab, backTab, escape, backspace, delete
    /// Ctrl-C (the terminal is in raw mode, so it arrives as a key, not as SIGINT).
    case interrupt
    case function(Int)
    /// The terminal changed size (curses KEY_RESIZE).
    case resize
    case unknown(Int32)
}

/// What a key asks for in the list view.
public enum Action: String, CaseIterable, Sendable {
    case up, down, pageUp, pageDown, home, end
    case toggleDetail, filter, sort, reverseSort, refresh
    case whyWrite, whyReadOnly, testAcquire, kill, audit, clearLocks, help, quit
}

/// One row of the key table: the keys, how the help screen names them, what they do.
public struct KeyBinding: Sendable {
    public var keys: [Key]
    /// The keys as the help screen shows them.
    public var names: String
    /// The short word in the key bar; nil keeps the binding out of the bar.
    public var bar: String?
    public var help: String
    public var action: Action
}

/// The one key table (htop's Action.c habit): key handling, the key bar and the help
/// screen all come from it.
public enum KeyTable {
    public static let bindings: [KeyBinding] = [
        KeyBinding(keys: [.up, .char("k")], names: "Up k", bar: nil, help: "move up", action: .up),
        KeyBinding(keys: [.down, .char("j")], names: "Down j", bar: nil, help: "move down", action: .down),
        KeyBinding(keys: [.pageUp, .char("b")], names: "PgUp b", bar: nil, help: "page up", action: .pageUp),
        KeyBinding(keys: [.pageDown, .char(" ")], names: "PgDn Space", bar: nil, help: "page down", action: .pageDown),
        KeyBinding(keys: [.home, .char("g")], names: "Home g", bar: nil, help: "first row", action: .home),
        KeyBinding(keys: [.end, .char("G")], names: "End G", bar: nil, help: "last row", action: .end),
        KeyBinding(keys: [.enter, .tab], names: "Enter Tab", bar: "Detail", help: "show / hide the detail pane", action: .toggleDetail),
        KeyBinding(keys: [.char("/")], names: "/", bar: "Filter",
                   help: "filter rows (path, command, VM, user, host); Enter keeps it, Esc clears it", action: .filter),
        KeyBinding(keys: [.char("s")], names: "s", bar: "Sort", help: "sort by the next column (then unsorted)", action: .sort),
        KeyBinding(keys: [.char("S")], names: "S", bar: nil, help: "reverse the sort order", action: .reverseSort),
        KeyBinding(keys: [.char("r"), .function(5)], names: "r F5", bar: nil, help: "refresh now", action: .refresh),
        KeyBinding(keys: [.char("w")], names: "w", bar: "Why-rw",
                   help: "why would the image not open read-write (why --write)", action: .whyWrite),
        KeyBinding(keys: [.char("o")], names: "o", bar: "Why-ro",
                   help: "why would the image not open read-only (why --read-only)", action: .whyReadOnly),
        KeyBinding(keys: [.char("t")], names: "t", bar: "Test",
                   help: "test-acquire the lock (asks: exclusive or shared), then release it", action: .testAcquire),
        KeyBinding(keys: [.char("K")], names: "K", bar: "Kill",
                   help: "send SIGTERM to the selected holder (asks first; y confirms)", action: .kill),
        KeyBinding(keys: [.char("a")], names: "a", bar: "Audit",
                   help: "the audit's findings, most severe first (rows marked ! are flagged)", action: .audit),
        KeyBinding(keys: [.char("C")], names: "C", bar: nil,
                   help: "gluster rows: clear the image's granted locks, only if every holder is proven stale (clear-locks; asks first)",
                   action: .clearLocks),
        KeyBinding(keys: [.char("?"), .function(1), .char("h")], names: "? F1 h", bar: "Help", help: "this help", action: .help),
        KeyBinding(keys: [.char("q"), .interrupt, .function(10)], names: "q Ctrl-C F10", bar: "Quit", help: "quit", action: .quit),
    ]

    private static let byKey: [Key: Action] = {
        var map: [Key: Action] = [:]
        for b in bindings { for k in b.keys { map[k] = b.action } }
        return map
    }()

    public static func action(for key: Key) -> Action? { byKey[key] }

    /// The name of the first key of an action, for the key bar.
    public static func keyName(_ b: KeyBinding) -> String {
        switch b.keys.first {
        case .char(let c)?: return String(c)
        case .enter?: return "Enter"
        default: return b.names.split(separator: " ").first.map(String.init) ?? ""
        }
    }
}
