import FoundationEssentials
import ImageLock
import LockInspector

/// Identifies a row across snapshots: the image, and which of its holders.
public struct RowKey: Hashable, Sendable {
    public var imageID: String
    public var pid: Int32?
    public var fd: Int32?
    public var waiting: Bool

    public init(_ row: LockRow) {
        imageID = row.image.id
        pid = row.holder?.pid
        fd = row.holder?.fd
        waiting = row.waiting
    }
}

/// Something the state asks the runner to do: it has side effects, so the state only
/// describes it (as htop's Action.c: handlers return effects, the screen manager acts).
public enum Request: Equatable, Sendable {
    case why(ImageLocks, write: Bool)
    case testAcquire(ImageLocks, LockMode)
    case terminate(Holder, imageID: String)
    /// SIGTERM to a holder of another host of a cluster view, by that host's locksmith.
    case terminateRemote(Holder, imageID: String)
    /// `gluster volume clear-locks` on a gluster image (the `C` key, after a y).
    case clearLocks(ImageLocks)
}

/// What handling an event asks of the runner.
public struct Reaction: Equatable, Sendable {
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let redraw = Flags(rawValue: 1)
        public static let rescan = Flags(rawValue: 2)
        public static let quit = Flags(rawValue: 4)
    }
    public var flags: Flags
    public var requests: [Request]

    public init(_ flags: Flags = [], _ requests: [Request] = []) {
        self.flags = flags
        self.requests = requests
    }
}

/// Results of the actions on one image, shown in its detail pane.
public struct ImageResults: Equatable, Sendable {
    public var whyWrite: [String]?
    public var whyReadOnly: [String]?
    public var test: [String]?
    public init() {}
}

/// What the runner feeds the state.
public enum TUIEvent: Sendable {
    case key(Key)
    case resize(width: Int, height: Int)
    case scanStarted
    /// A scan's answer: the snapshot, the audit's findings, whether it repeats the last.
    case snapshot(PolledSnapshot)
    case scanFailed(String)
    case whyResult(imageID: String, write: Bool, lines: [String])
    case testResult(imageID: String, mode: LockMode, lines: [String])
    case terminateResult(String)
    case clearLocksResult(String)
    /// The clock moved (ages and "refreshed" times change).
    case tick(Date)
}

/// A question on the bottom line that takes the next key.
public enum Prompt: Equatable, Sendable {
    case kill(Holder, imageID: String)
    case testMode(ImageLocks)
    case clearLocks(ImageLocks)
}

/// Something drawn over the list until a key closes it.
public enum Overlay: Equatable, Sendable {
    case help
    case text(title: String, lines: [String])
}

/// The whole state of the TUI as plain values: no terminal, no clock, no threads.
/// `handle` is the only way it changes.
public struct TUIState: Sendable {
    public private(set) var snapshot: Snapshot?
    /// The audit's findings on `snapshot` (the `a` view, the header's count).
    public private(set) var findings: [Finding] = []
    /// The header's counts of `snapshot` (`Renderer.headline`), made when it arrives.
    public private(set) var headline = ""
    /// The image paths and files that findings name (rows marked `!`).
    private var flagged: Set<String> = []
    /// The rows shown: filtered and sorted.
    public private(set) var rows: [LockRow] = []
    /// Index into `rows`.
    public private(set) var selected = 0
    /// The first row shown in the list.
    public private(set) var top = 0
    public private(set) var width: Int
    public private(set) var height: Int
    public var showDetail = true
    public private(set) var filter = ""
    public private(set) var editingFilter = false
    public private(set) var sortColumn: Column?
    public private(set) var sortDescending = false
    public private(set) var overlay: Overlay?
    public private(set) var prompt: Prompt?
    /// A one-line message on the bottom line; cleared by the next key.
    public private(set) var message: String?
    public private(set) var results: [String: ImageResults] = [:]
    public private(set) var scanning = false
    public private(set) var scanError: String?
    public private(set) var lastRefresh: Date?
    public private(set) var refreshes = 0
    public private(set) var now: Date
    /// Whether a `why` source was given (else `w`/`o` say it is not available).
    public var whyAvailable: Bool
    /// Whether a test-acquire source was given.
    public var testAvailable: Bool
    /// Whether a clear-locks source was given (gluster).
    public var clearLocksAvailable = false
    /// `K` may signal a holder of another host of a cluster view (`TUISources.terminateRemote`).
    public var remoteSignalAvailable = false
    /// The columns `s` cycles through (the list's columns).
    public var sortable: [Column] = Column.defaults
    private var selectedKey: RowKey?

    public init(width: Int = 80, height: Int = 24, now: Date = Date(), whyAvailable: Bool = false, testAvailable: Bool = true,
                filter: String = "") {
        self.filter = filter
        self.width = width
        self.height = height
        self.now = now
        self.whyAvailable = whyAvailable
        self.testAvailable = testAvailable
    }

    /// The findings as text, most severe first: the `a` view.
    public static func auditLines(_ findings: [Finding]) -> [String] {
        guard !findings.isEmpty else { return ["No findings: every image user here plays by the locks."] }
        var out: [String] = []
        for f in findings.sorted(by: { ($0.severity, $1.rule.rawValue) > ($1.severity, $0.rule.rawValue) }) {
            out.append("\(f.severity.rawValue.uppercased()) \(f.rule.rawValue)  \(f.image ?? f.files.first ?? "-")")
            out.append("  \(f.evidence)")
            out.append("  remedy: \(f.remedy)")
        }
        return out
    }

    /// Whether a finding names this row's image (or one of its lock files).
    public func isFlagged(_ row: LockRow) -> Bool {
        guard !flagged.isEmpty else { return false }
        if let p = row.image.path, flagged.contains(p) { return true }
        return row.image.lockFiles.contains { flagged.contains($0) }
    }

    public var selectedRow: LockRow? { rows.indices.contains(selected) ? rows[selected] : nil }
    /// The list's columns before narrowing: HOST joins when a holder has one (gluster).
    /// Made with the rows, not at every redraw (it passes over every row).
    public private(set) var columns: [Column] = Column.defaults
    public var layout: Layout { Layout(width: width, height: height, showDetail: showDetail, rows: rows.count) }

    // MARK: - Events

    @discardableResult
    public mutating func handle(_ event: TUIEvent) -> Reaction {
        switch event {
        case .key(let k):
            return handleKey(k)
        case .resize(let w, let h):
            width = w
            height = h
            keepSelectionVisible()
            return Reaction(.redraw)
        case .scanStarted:
            scanning = true
            return Reaction(.redraw)
        case .snapshot(let polled):
            scanning = false
            scanError = nil
            let reused = polled.isRepeat && snapshot != nil
            snapshot = polled.audited.snapshot
            findings = polled.audited.findings
            lastRefresh = polled.refreshed
            refreshes += 1
            // The same scan again (nothing changed on the host): the rows stand as they are.
            if !reused {
                flagged = Set(findings.flatMap { f in (f.image.map { [$0] } ?? []) + f.files })
                headline = Renderer.headline(polled.audited.snapshot, findings: findings)
                rebuildRows()
            }
            return Reaction(.redraw)
        case .scanFailed(let why):
            scanning = false
            scanError = why
            refreshes += 1
            return Reaction(.redraw)
        case .whyResult(let id, let write, let lines):
            var r = results[id] ?? ImageResults()
            if write { r.whyWrite = lines } else { r.whyReadOnly = lines }
            results[id] = r
            showResultIfHidden(id: id, title: write ? "why --write" : "why --read-only", lines: lines)
            return Reaction(.redraw)
        case .testResult(let id, let mode, let lines):
            var r = results[id] ?? ImageResults()
            r.test = lines
            results[id] = r
            showResultIfHidden(id: id, title: "test-acquire \(mode.rawValue)", lines: lines)
            return Reaction(.redraw)
        case .terminateResult(let text), .clearLocksResult(let text):
            message = text
            return Reaction([.redraw, .rescan])
        case .tick(let date):
            now = date
            return Reaction(.redraw)
        }
    }

    /// When the detail pane is not on screen, a result opens as an overlay instead.
    private mutating func showResultIfHidden(id: String, title: String, lines: [String]) {
        guard selectedRow?.image.id == id, !layout.detailShown, !layout.tooSmall else { return }
        let name = selectedRow.map { Column.image.cell($0, now: now) } ?? id
        overlay = .text(title: "\(title): \(name)", lines: lines)
    }

    private mutating func handleKey(_ key: Key) -> Reaction {
        if key == .resize { return Reaction(.redraw) }
        message = nil
        if overlay != nil {
            overlay = nil
            return key == .interrupt ? Reaction(.quit) : Reaction(.redraw)
        }
        if let p = prompt {
            prompt = nil
            return answer(p, key)
        }
        if editingFilter {
            switch key {
            case .char(let c):
                filter.append(c)
                rebuildRows()
                return Reaction(.redraw)
            case .backspace, .delete:
                if !filter.isEmpty { filter.removeLast() }
                rebuildRows()
                return Reaction(.redraw)
            case .enter, .tab:
                editingFilter = false
                return Reaction(.redraw)
            case .escape:
                editingFilter = false
                filter = ""
                rebuildRows()
                return Reaction(.redraw)
            case .interrupt:
                return Reaction(.quit)
            default:
                break  // arrows etc. still move the selection
            }
        } else if key == .escape {
            if !filter.isEmpty {
                filter = ""
                rebuildRows()
            }
            return Reaction(.redraw)
        }
        guard let action = KeyTable.action(for: key) else { return Reaction() }
        return perform(action)
    }

    private mutating func answer(_ p: Prompt, _ key: Key) -> Reaction {
        switch p {
        case .kill(let h, let id):
            if key == .char("y") || key == .char("Y") {
                if let host = h.host, host != snapshot?.host {
                    return Reaction(.redraw, [.terminateRemote(h, imageID: id)])
                }
                return Reaction(.redraw, [.terminate(h, imageID: id)])
            }
            message = "Not sent: pid \(h.pid) left alone."
            return key == .interrupt ? Reaction(.quit) : Reaction(.redraw)
        case .clearLocks(let image):
            if key == .char("y") || key == .char("Y") {
                message = "Clearing the locks on \(image.path ?? image.id)..."
                return Reaction(.redraw, [.clearLocks(image)])
            }
            message = "Nothing cleared."
            return key == .interrupt ? Reaction(.quit) : Reaction(.redraw)
        case .testMode(let image):
            switch key {
            case .char("e"), .char("E"), .char("x"), .char("w"):
                return startTest(image, .exclusive)
            case .char("s"), .char("S"), .char("r"):
                return startTest(image, .shared)
            case .interrupt:
                return Reaction(.quit)
            default:
                message = "Test-acquire cancelled."
                return Reaction(.redraw)
            }
        }
    }

    private mutating func startTest(_ image: ImageLocks, _ mode: LockMode) -> Reaction {
        var r = results[image.id] ?? ImageResults()
        r.test = ["test-acquiring (\(mode.rawValue))..."]
        results[image.id] = r
        return Reaction(.redraw, [.testAcquire(image, mode)])
    }

    public mutating func perform(_ action: Action) -> Reaction {
        let page = max(1, layout.listHeight - 1)
        switch action {
        case .up: move(to: selected - 1)
        case .down: move(to: selected + 1)
        case .pageUp: move(to: selected - page)
        case .pageDown: move(to: selected + page)
        case .home: move(to: 0)
        case .end: move(to: rows.count - 1)
        case .toggleDetail:
            showDetail.toggle()
            keepSelectionVisible()
        case .filter:
            editingFilter = true
        case .sort:
            if let c = sortColumn, let i = sortable.firstIndex(of: c) {
                sortColumn = i + 1 < sortable.count ? sortable[i + 1] : nil
            } else {
                sortColumn = sortable.first
            }
            rebuildRows()
        case .reverseSort:
            if sortColumn == nil { sortColumn = sortable.first }
            sortDescending.toggle()
            rebuildRows()
        case .refresh:
            return Reaction([.redraw, .rescan])
        case .whyWrite, .whyReadOnly:
            let write = action == .whyWrite
            guard let row = selectedRow else { message = "No image selected."; break }
            guard whyAvailable else {
                message = "why is not available in this build."
                break
            }
            var r = results[row.image.id] ?? ImageResults()
            if write { r.whyWrite = ["checking..."] } else { r.whyReadOnly = ["checking..."] }
            results[row.image.id] = r
            return Reaction(.redraw, [.why(row.image, write: write)])
        case .testAcquire:
            guard let row = selectedRow else { message = "No image selected."; break }
            guard testAvailable else { message = "Test-acquire is not available."; break }
            guard row.image.path != nil else { message = "The image of this lock is unknown: nothing to test."; break }
            prompt = .testMode(row.image)
        case .kill:
            guard let row = selectedRow, let h = row.holder else { message = "No holder on this row."; break }
            if let host = h.host, host != snapshot?.host {
                guard remoteSignalAvailable, h.pid > 0 else {
                    message = "pid \(h.pid) runs on \(host), not here: cannot signal it."
                    break
                }
                // Its own host's locksmith checks it as K does here (over ssh).
                prompt = .kill(h, imageID: row.image.id)
                break
            }
            // A gluster holder's pid is its host's (F_GETLK's l_pid): never signal it blind here.
            if h.scheme == .gluster && h.host == nil || h.pid <= 0 {
                message = "The host of this holder is not known (\(Column.pid.cell(row))): not signalling anything here."
                break
            }
            prompt = .kill(h, imageID: row.image.id)
        case .audit:
            overlay = .text(title: "Audit", lines: TUIState.auditLines(findings))
        case .clearLocks:
            guard let row = selectedRow else { message = "No image selected."; break }
            guard row.image.schemes.contains(.gluster) else { message = "C clears the locks of gluster images only."; break }
            guard clearLocksAvailable else { message = "clear-locks is not available here."; break }
            prompt = .clearLocks(row.image)
        case .help:
            overlay = .help
        case .quit:
            return Reaction(.quit)
        }
        return Reaction(.redraw)
    }

    // MARK: - Rows

    private mutating func move(to index: Int) {
        guard !rows.isEmpty else { return }
        selected = min(max(0, index), rows.count - 1)
        selectedKey = RowKey(rows[selected])
        keepSelectionVisible()
    }

    /// Whether a row matches the filter: a case-insensitive substring of the image path
    /// (or lock file), command, VM, user or host.
    public static func matches(_ row: LockRow, filter: String) -> Bool {
        guard !filter.isEmpty else { return true }
        let fields = [Column.image.cell(row), Column.command.cell(row), Column.vm.cell(row), Column.user.cell(row),
                      Column.host.cell(row)] + row.image.lockFiles
        let wanted = filter.lowercased()
        return fields.contains { $0.lowercased().contains(wanted) }
    }

    /// Compares two rows by a column: numbers as numbers, ages by start time, text as text.
    public static func ordered(_ a: LockRow, _ b: LockRow, by column: Column) -> Bool? {
        switch column {
        case .pid, .fd:
            let x = column == .pid ? a.holder?.pid : a.holder?.fd
            let y = column == .pid ? b.holder?.pid : b.holder?.fd
            if x == y { return nil }
            return (x ?? -1) < (y ?? -1)
        case .age:
            // Oldest first: the longest-running holder has the largest age.
            // Rows without a start time go last.
            switch (a.holder?.started, b.holder?.started) {
            case (nil, nil): return nil
            case (nil, _): return false
            case (_, nil): return true
            case let (x?, y?): return x == y ? nil : x < y
            }
        default:
            let x = column.cell(a, now: .distantPast), y = column.cell(b, now: .distantPast)
            if x == y { return nil }
            let c = naturalOrder(x, y)
            return c == 0 ? x < y : c < 0
        }
    }

    /// Recomputes the visible rows, keeping the selection on the same row (same image and
    /// holder), else on the same image, else at the same position.
    private mutating func rebuildRows() {
        let all = snapshot.map(LockRow.rows(of:)) ?? []
        var visible = all.enumerated().filter { TUIState.matches($0.element, filter: filter) }
        if let c = sortColumn {
            let desc = sortDescending
            visible.sort { a, b in
                if let o = TUIState.ordered(a.element, b.element, by: c) { return desc ? !o : o }
                return a.offset < b.offset
            }
        }
        rows = visible.map(\.element)
        columns = Column.defaults(for: rows)
        if let key = selectedKey {
            if let i = rows.firstIndex(where: { RowKey($0) == key }) {
                selected = i
            } else if let i = rows.firstIndex(where: { $0.image.id == key.imageID }) {
                selected = i
            } else {
                selected = min(selected, max(0, rows.count - 1))
            }
        } else {
            selected = 0
        }
        if rows.indices.contains(selected) {
            // The remembered row changes only when its image left the snapshot: a filter
            // that hides it for a moment, or a holder that comes and goes, does not lose it.
            if selectedKey == nil || !all.contains(where: { $0.image.id == selectedKey?.imageID }) {
                selectedKey = RowKey(rows[selected])
            }
        }
        keepSelectionVisible()
    }

    private mutating func keepSelectionVisible() {
        let h = max(1, layout.listHeight)
        if selected < top { top = selected }
        if selected >= top + h { top = selected - h + 1 }
        top = max(0, min(top, max(0, rows.count - h)))
    }
}

/// Text in the order a person expects (as Foundation's `compare(_:options: [.caseInsensitive,
/// .numeric])`): case ignored, runs of digits compared by their value ("pid 9" before
/// "pid 10"). Negative, zero or positive.
func naturalOrder(_ x: String, _ y: String) -> Int {
    let a = Array(x.lowercased().unicodeScalars), b = Array(y.lowercased().unicodeScalars)
    func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
    var i = 0, j = 0
    while i < a.count && j < b.count {
        if isDigit(a[i]) && isDigit(b[j]) {
            var ie = i, je = j
            while ie < a.count && isDigit(a[ie]) { ie += 1 }
            while je < b.count && isDigit(b[je]) { je += 1 }
            // The values: without leading zeros, a longer run is larger; else digit by digit.
            var ia = i, jb = j
            while ia < ie - 1 && a[ia] == "0" { ia += 1 }
            while jb < je - 1 && b[jb] == "0" { jb += 1 }
            if ie - ia != je - jb { return ie - ia < je - jb ? -1 : 1 }
            for (p, q) in zip(a[ia..<ie], b[jb..<je]) where p != q { return p.value < q.value ? -1 : 1 }
            (i, j) = (ie, je)
        } else {
            if a[i] != b[j] { return a[i].value < b[j].value ? -1 : 1 }
            i += 1
            j += 1
        }
    }
    return i < a.count ? 1 : j < b.count ? -1 : 0
}
