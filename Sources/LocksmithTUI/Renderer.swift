import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector

/// Draws a `TUIState` into a `ScreenBuffer`. Pure: the same state gives the same screen.
public enum Renderer {
    public static func render(_ state: TUIState, unicode: Bool = true) -> ScreenBuffer {
        var buf = ScreenBuffer(width: state.width, height: state.height, unicode: unicode)
        let layout = state.layout
        if layout.tooSmall {
            tooSmall(&buf)
            return buf
        }
        header(&buf, state)
        if state.overlay == .help {
            help(&buf, state, layout)
        } else if case .text(let title, let lines)? = state.overlay {
            textOverlay(&buf, title: title, lines: lines, layout: layout)
        } else {
            list(&buf, state, layout)
            if layout.detailShown { detail(&buf, state, layout) }
        }
        bottomLine(&buf, state, layout)
        return buf
    }

    // MARK: - Parts

    static func tooSmall(_ buf: inout ScreenBuffer) {
        let lines = ["terminal too small: \(buf.width)x\(buf.height)",
                     "need \(Layout.minWidth)x\(Layout.minHeight); q quits"]
        let y0 = max(0, buf.height / 2 - 1)
        for (i, l) in lines.enumerated() {
            let x = max(0, (buf.width - l.count) / 2)
            buf.put(l, x: x, y: y0 + i, style: Style(.warn))
        }
    }

    static func header(_ buf: inout ScreenBuffer, _ s: TUIState) {
        let st = Style(.title)
        buf.fill(y: 0, style: st)
        let left = "locksmith" + s.headline
        var right = ""
        // The position in a list longer than the screen: here, never over a row of the list.
        let layout = s.layout
        if s.overlay == nil && s.rows.count > layout.listHeight && layout.listHeight > 0 {
            right += "\(s.selected + 1)/\(s.rows.count)  "
        }
        if !s.filter.isEmpty && !s.editingFilter { right += "filter \"\(s.filter)\"  " }
        if let e = s.scanError {
            right += "scan failed: \(e)"
        } else if let t = s.lastRefresh {
            right += (buf.width >= 100 ? "refreshed " : "") + clock(t)
        }
        // The last refresh time stays while the next scan runs: no flicker between the two.
        if s.scanning { right += right.isEmpty ? "scanning" : " *" }
        let rw = min(DisplayText.width(right, unicode: buf.unicode), max(0, buf.width - 12))
        let lw = buf.put(left, x: 0, y: 0, width: buf.width - rw - (rw > 0 ? 1 : 0), style: st)
        if rw > 0 && lw + rw < buf.width {
            buf.put(right, x: buf.width - rw, y: 0, width: rw, style: Style(s.scanError != nil ? .bad : .title),
                    truncation: .start)
        }
    }

    /// The header's counts of a snapshot (` host  N images  N holders...`): made by
    /// `TUIState` once per snapshot, not at every redraw (they pass over every image).
    static func headline(_ snap: Snapshot, findings: [Finding]) -> String {
        var holders = 0, waiters = 0
        for n in snap.images.indices {
            holders += snap.images[n].holders.count
            waiters += snap.images[n].waiters.count
        }
        var left = " \(snap.host)  \(snap.images.count) images  \(holders) holders"
        if waiters > 0 { left += "  \(waiters) waiting" }
        if !snap.unseen.isEmpty { left += "  \(snap.unseen.count) unseen" }
        left += hostCounts(snap)
        if !findings.isEmpty { left += "  \(findings.count) findings" }
        return left
    }

    /// A cluster view's holders per host (`  h1:3 h2:1`), and its hosts not seen; empty
    /// when the holders are of one host only.
    static func hostCounts(_ snap: Snapshot) -> String {
        var counts: [String: Int] = [:]
        for n in snap.images.indices {
            let host = snap.images[n].host
            for h in snap.images[n].holders { if let host = h.host ?? host { counts[host, default: 0] += 1 } }
        }
        let down = snap.unseen.filter { $0.what.hasPrefix("host ") }.count
        guard counts.count > 1 || down > 0 else { return "" }
        return "  " + counts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
            + (down > 0 ? "  \(down) host\(down == 1 ? "" : "s") down" : "")
    }

    static func clock(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970)
        var tmv = tm()
        localtime_r(&t, &tmv)
        return Sys.format("%02d:%02d:%02d", tmv.tm_hour, tmv.tm_min, tmv.tm_sec)
    }

    static func list(_ buf: inout ScreenBuffer, _ s: TUIState, _ layout: Layout) {
        let cols = Layout.columns(s.columns, width: buf.width)
        // Column headers, with the sort mark on the sorted column.
        buf.fill(y: 1, style: Style(.columnHeader))
        var x = 1
        for (c, w) in cols {
            var name = c.header
            if c == s.sortColumn { name += s.sortDescending ? (buf.unicode ? "▼" : "v") : (buf.unicode ? "▲" : "^") }
            buf.put(name, x: x, y: 1, width: w, style: Style(.columnHeader), rightAligned: c.rightAligned)
            x += w + 1
        }
        guard s.snapshot != nil else {
            buf.put(s.scanError.map { "scan failed: \($0)" } ?? "scanning...", x: 1, y: layout.listTop, style: Style(.dim))
            return
        }
        if s.rows.isEmpty {
            let text = s.filter.isEmpty ? "no image locks found" : "no rows match \"\(s.filter)\" (Esc clears the filter)"
            buf.put(text, x: 1, y: layout.listTop, style: Style(.dim))
            return
        }
        let end = min(s.rows.count, s.top + layout.listHeight)
        for i in s.top..<end {
            let row = s.rows[i]
            let y = layout.listTop + i - s.top
            let sel = i == s.selected
            buf.fill(y: y, style: Style(.plain, selected: sel))
            let flagged = s.isFlagged(row)
            buf.put(sel ? ">" : flagged ? "!" : " ", x: 0, y: y, width: 1,
                    style: Style(flagged && !sel ? .bad : .plain, selected: sel))
            var x = 1
            for (c, w) in cols {
                let text = c.cell(row, now: s.now)
                var role: Role = .plain
                if c == .mode { role = DetailText.role(forMode: text) }
                if row.waiting && c != .mode { role = .wait }
                buf.put(text, x: x, y: y, width: w, style: Style(role, selected: sel),
                        truncation: c == .image || c == .lockfile ? .start : .end, rightAligned: c.rightAligned)
                x += w + 1
            }
        }
    }

    static func detail(_ buf: inout ScreenBuffer, _ s: TUIState, _ layout: Layout) {
        let y0 = layout.detailTop
        let line = buf.unicode ? "─" : "-"
        buf.fill(y: y0, char: line, style: Style(.border))
        guard let row = s.selectedRow else { return }
        let title = " \(row.image.path ?? row.image.id) "
        buf.put(title, x: 2, y: y0, width: buf.width - 4, style: Style(.border), truncation: .start)
        let body = DetailText.lines(for: row.image, selectedHolder: row.holder, results: s.results[row.image.id],
                                    whyAvailable: s.whyAvailable, now: s.now)
        let room = layout.detailHeight - 1
        let shown = body.count > room ? room - 1 : body.count
        for (i, l) in body.prefix(shown).enumerated() { spans(&buf, l, y: y0 + 1 + i) }
        if body.count > room {
            spans(&buf, [Span("  ... \(body.count - shown) more lines (Enter hides this pane; resize for more)", .dim)],
                  y: y0 + 1 + shown)
        }
    }

    static func spans(_ buf: inout ScreenBuffer, _ line: StyledLine, y: Int, x x0: Int = 1) {
        var x = x0
        for sp in line where x < buf.width {
            x += buf.put(sp.text, x: x, y: y, style: Style(sp.role))
        }
    }

    static func help(_ buf: inout ScreenBuffer, _ s: TUIState, _ layout: Layout) {
        var y = 1
        buf.put("Keys", x: 1, y: y, style: Style(.columnHeader))
        y += 1
        let nameWidth = (KeyTable.bindings.map { $0.names.count }.max() ?? 10) + 2
        for b in KeyTable.bindings where y < layout.barY - 1 {
            buf.put(b.names, x: 2, y: y, width: nameWidth, style: Style(.keyName))
            buf.put(b.help, x: 2 + nameWidth, y: y)
            y += 1
        }
        let legend: StyledLine = [Span("Modes: "), Span("write/rw", .write), Span(" writer  "), Span("read/ro", .read),
                                  Span(" reader  "), Span("wait", .wait), Span(" blocked waiter  "), Span("free", .dim),
                                  Span(" lock file nobody holds")]
        if y < layout.barY { spans(&buf, legend, y: y, x: 1) }
    }

    static func textOverlay(_ buf: inout ScreenBuffer, title: String, lines: [String], layout: Layout) {
        buf.put(title, x: 1, y: 1, style: Style(.columnHeader), truncation: .start)
        for (i, l) in lines.prefix(max(0, layout.barY - 2)).enumerated() {
            buf.put(l, x: 2, y: 2 + i, style: Style(DetailText.verdictRole(l)))
        }
    }

    static func bottomLine(_ buf: inout ScreenBuffer, _ s: TUIState, _ layout: Layout) {
        let y = layout.barY
        if let p = s.prompt {
            buf.fill(y: y, style: Style(.prompt))
            buf.put(promptText(p), x: 0, y: y, style: Style(.prompt))
            return
        }
        if s.editingFilter {
            buf.fill(y: y, style: Style(.prompt))
            buf.put("Filter: \(s.filter)_   Enter keeps, Esc clears", x: 0, y: y, style: Style(.prompt))
            return
        }
        if s.overlay != nil {
            buf.fill(y: y, style: Style(.keyBar))
            buf.put("any key closes", x: 0, y: y, style: Style(.keyBar))
            return
        }
        if let m = s.message {
            buf.fill(y: y, style: Style(.warn))
            buf.put(m, x: 0, y: y, style: Style(.warn))
            return
        }
        buf.fill(y: y, style: Style(.keyBar))
        // Help and Quit always stay; the others drop from the right when the line is short.
        var items = KeyTable.bindings.compactMap { b in b.bar.map { (key: KeyTable.keyName(b), word: $0, action: b.action) } }
        func need(_ i: [(key: String, word: String, action: Action)]) -> Int {
            i.reduce(0) { $0 + $1.key.count + $1.word.count + 3 } - 2
        }
        while need(items) > buf.width,
              let drop = items.lastIndex(where: { $0.action != .help && $0.action != .quit }) {
            items.remove(at: drop)
        }
        var x = 0
        for item in items {
            x += buf.put(item.key, x: x, y: y, style: Style(.keyName))
            x += buf.put(" " + item.word + "  ", x: x, y: y, style: Style(.keyBar))
        }
    }

    public static func promptText(_ p: Prompt) -> String {
        switch p {
        case .kill(let h, _):
            return "SIGTERM pid \(h.pid) (\(h.command), VM \(h.vm ?? "none"))\(h.host.map { " on \($0)" } ?? "")? y sends it, any other key cancels"
        case .clearLocks(let image):
            return "Clear the granted locks on \(image.path ?? image.id) if every holder is proven stale? y clears, any other key cancels"
        case .testMode(let image):
            return "Test-acquire \(image.path ?? image.id) as: e exclusive, s shared (scheme \(TestAcquireText.scheme(for: image).rawValue)); Esc cancels"
        }
    }
}
