import LockInspector

/// Where everything goes on a screen of a given size. Rows from the top: the header,
/// the column headers, the list, the detail pane (title line and body), the key bar.
public struct Layout: Equatable, Sendable {
    public static let minWidth = 40
    public static let minHeight = 10
    /// Below this height the detail pane is hidden, whatever the toggle says.
    public static let detailMinHeight = 16

    public var width: Int
    public var height: Int
    public var tooSmall: Bool
    public var listTop: Int
    public var listHeight: Int
    public var detailShown: Bool
    /// The detail pane's title line; its body follows.
    public var detailTop: Int
    public var detailHeight: Int
    public var barY: Int

    /// `rows`: how many list rows there are; a short list leaves the rest to the detail pane.
    public init(width: Int, height: Int, showDetail: Bool, rows: Int = .max) {
        self.width = width
        self.height = height
        tooSmall = width < Layout.minWidth || height < Layout.minHeight
        barY = height - 1
        listTop = 2
        let room = max(0, height - 3)
        detailShown = showDetail && !tooSmall && height >= Layout.detailMinHeight
        if detailShown {
            let usual = min(max(7, room * 2 / 5), room - 5)
            let listNeeds = max(5, rows == .max ? room : rows + 1)
            detailHeight = max(usual, room - listNeeds)
        } else {
            detailHeight = 0
        }
        listHeight = tooSmall ? 0 : room - detailHeight
        detailTop = listTop + listHeight
    }

    /// The list's columns at this width: `wanted` in order, dropping the least important
    /// (highest `Column.priority`) until they fit; IMAGE takes the columns left over.
    /// One column is kept for the selection mark, one blank between columns.
    public static func columns(_ wanted: [Column] = Column.defaults, width: Int) -> [(column: Column, width: Int)] {
        var cols = wanted
        let avail = width - 1
        func need(_ cs: [Column]) -> Int { cs.reduce(0) { $0 + $1.width } + max(0, cs.count - 1) }
        while cols.count > 1 && need(cols) > avail {
            guard let drop = cols.filter({ $0 != .image }).max(by: { $0.priority < $1.priority }) else { break }
            cols.removeAll { $0 == drop }
        }
        let spare = max(0, avail - need(cols))
        let hasImage = cols.contains(.image)
        return cols.map { c in
            (c, c == .image ? c.width + spare : c.width)
        }.map { pair in
            // Without IMAGE (never, by priority) the last column takes the spare room.
            hasImage || pair.column != cols.last ? pair : (pair.column, pair.width + spare)
        }
    }
}
