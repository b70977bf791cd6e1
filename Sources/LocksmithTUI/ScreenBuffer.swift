/// What a cell is for; the terminal maps each role to colours and attributes (or, without
/// colour, to bold / reverse / underline only), so the buffer stays free of curses.
public enum Role: UInt8, CaseIterable, Sendable {
    case plain, title, columnHeader, dim, write, read, wait, ok, bad, warn, keyName, keyBar, prompt, border
}

public struct Style: Hashable, Sendable {
    public var role: Role
    /// The selected row (reverse video).
    public var selected: Bool

    public init(_ role: Role = .plain, selected: Bool = false) {
        self.role = role
        self.selected = selected
    }

    public static let plain = Style()
}

public struct Cell: Equatable, Sendable {
    public var text: String
    public var style: Style
    /// The right half of a wide glyph: the terminal draws nothing for it.
    public var isContinuation: Bool

    public static let blank = Cell(text: " ", style: .plain, isContinuation: false)
}

/// A screen's worth of cells, drawn by the renderer and then copied to the terminal.
/// Tests read it as text.
public struct ScreenBuffer: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// Whether non-ASCII text may be shown (the terminal's charset is UTF-8).
    public let unicode: Bool
    private var cells: [Cell]

    public init(width: Int, height: Int, unicode: Bool = true) {
        self.width = max(0, width)
        self.height = max(0, height)
        self.unicode = unicode
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        cells[y * width + x]
    }

    /// Writes `text` at (x, y) in at most `width` columns (default: to the right edge),
    /// truncated with an ellipsis; `pad` fills the rest of the field with blanks of the
    /// same style. Returns the columns written.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, width w: Int? = nil, style: Style = .plain,
                             truncation: Truncation = .end, rightAligned: Bool = false, pad: Bool = false) -> Int {
        guard y >= 0, y < height, x < width else { return 0 }
        let field = min(w ?? (width - x), width - x)
        guard field > 0 else { return 0 }
        let glyphs = DisplayText.fit(text, width: field, truncation: truncation, unicode: unicode)
        let used = glyphs.reduce(0) { $0 + $1.width }
        var col = x
        if rightAligned || pad {
            let lead = rightAligned ? field - used : 0
            for _ in 0..<lead { set(col, y, Cell(text: " ", style: style, isContinuation: false)); col += 1 }
        }
        for g in glyphs {
            set(col, y, Cell(text: g.text, style: style, isContinuation: false))
            if g.width == 2 { set(col + 1, y, Cell(text: "", style: style, isContinuation: true)) }
            col += g.width
        }
        if pad {
            while col < x + field { set(col, y, Cell(text: " ", style: style, isContinuation: false)); col += 1 }
        }
        return col - x
    }

    /// Fills part of a row with blanks (or `char`) of a style.
    public mutating func fill(y: Int, x: Int = 0, width w: Int? = nil, char: String = " ", style: Style) {
        guard y >= 0, y < height else { return }
        let end = min(width, x + (w ?? width))
        var col = max(0, x)
        while col < end { set(col, y, Cell(text: char, style: style, isContinuation: false)); col += 1 }
    }

    /// Sets one cell, keeping wide glyphs whole: a half-overwritten wide glyph becomes a blank.
    private mutating func set(_ x: Int, _ y: Int, _ cell: Cell) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let i = y * width + x
        if cells[i].isContinuation && !cell.isContinuation && x > 0 {
            cells[i - 1] = Cell(text: " ", style: cells[i - 1].style, isContinuation: false)
        }
        if !cell.isContinuation && x + 1 < width && cells[i + 1].isContinuation {
            cells[i + 1] = Cell(text: " ", style: cells[i + 1].style, isContinuation: false)
        }
        if cell.isContinuation && x == 0 { return }
        cells[i] = cell
        // A wide glyph whose right half would fall off the screen becomes a blank.
        if !cell.isContinuation && x == width - 1 && DisplayText.width(cell.text, unicode: unicode) == 2 {
            cells[i] = Cell(text: " ", style: cell.style, isContinuation: false)
        }
    }

    /// Row `y` as text, trailing blanks removed.
    public func line(_ y: Int) -> String {
        var s = ""
        for x in 0..<width where !self[x, y].isContinuation { s += self[x, y].text }
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }

    /// The whole screen as text, one line per row.
    public var text: String { (0..<height).map(line).joined(separator: "\n") }

    /// Row `y` as runs of one style, each starting at a column: what the terminal draws.
    public func runs(_ y: Int) -> [(x: Int, text: String, style: Style)] {
        var out: [(x: Int, text: String, style: Style)] = []
        for x in 0..<width {
            let c = self[x, y]
            if c.isContinuation { continue }
            if let last = out.last, last.style == c.style {
                out[out.count - 1].text += c.text
            } else {
                out.append((x, c.text, c.style))
            }
        }
        return out
    }
}
