import FoundationEssentials
import ImageLock

/// One row of the lock table: an image and one of its holders (or none, for a lock file
/// nobody holds). `list`, `-o` and the TUI all show rows through `Column`.
public struct LockRow: Sendable, Equatable {
    public var image: ImageLocks
    public var holder: Holder?
    public var waiting: Bool

    public init(image: ImageLocks, holder: Holder?, waiting: Bool = false) {
        self.image = image
        self.holder = holder
        self.waiting = waiting
    }

    /// One row per holder and waiter of each image; an image with neither gets one row.
    public static func rows(of snapshot: Snapshot) -> [LockRow] {
        snapshot.images.flatMap { img -> [LockRow] in
            let rows = img.holders.map { LockRow(image: img, holder: $0) }
                + img.waiters.map { LockRow(image: img, holder: $0, waiting: true) }
            return rows.isEmpty ? [LockRow(image: img, holder: nil)] : rows
        }
    }
}

/// The columns of the lock table, declared once (lslocks' habit): name, header, width,
/// alignment, priority (which columns go first when the screen is narrow), help, and the
/// one function that makes every cell.
public enum Column: String, CaseIterable, Sendable {
    case image, scheme, mode, pid, command, vm, user, age, fd, open, held, unshared, lockfile, host, disk, stale

    public var header: String {
        switch self {
        case .lockfile: return "LOCKFILE"
        default: return rawValue.uppercased()
        }
    }

    public var help: String {
        switch self {
        case .image: return "image path (or <unknown> and the lock file)"
        case .scheme: return "lock scheme: lockfile, qemu, virtlockd, gluster"
        case .mode: return "write/read lock, or rw/ro for QEMU users; 'wait' for a blocked waiter; 'free' for a lock file nobody holds; 'held' when the holder cannot be seen"
        case .pid: return "holder's process id"
        case .command: return "holder's command name"
        case .vm: return "VM: the libvirt domain, else QEMU's -name (for virtlockd, the domain whose disk it locks)"
        case .user: return "holder's user"
        case .age: return "how long the holder has been running"
        case .fd: return "the holder's fd on the locked file"
        case .open: return "how the holder opened the file: ro, wo, rw"
        case .held: return "QEMU permissions held"
        case .unshared: return "QEMU permissions not shared"
        case .lockfile: return "lock file (lockfile scheme)"
        case .host: return "holder's host (gluster; every row in a cluster view)"
        case .disk: return "the VM's disk target (vda) on the image, from libvirt's domain XML"
        case .stale: return "a Gluster lock's holder checked on its host (cluster view): live; proven (its host has no such process); possible (its host was not seen)"
        }
    }

    /// Minimum useful width; IMAGE takes what is left.
    public var width: Int {
        switch self {
        case .image: return 24
        case .scheme: return 9
        case .mode: return 5
        case .pid: return 7
        case .command: return 12
        case .vm: return 10
        case .user: return 8
        case .age: return 6
        case .fd: return 4
        case .open: return 4
        case .held: return 22
        case .unshared: return 14
        case .lockfile: return 30
        case .host: return 12
        case .disk: return 4
        case .stale: return 8
        }
    }

    public var rightAligned: Bool { self == .pid || self == .fd || self == .age }

    /// Lower is more important: narrow screens drop the highest first.
    public var priority: Int {
        switch self {
        case .image: return 0
        case .pid: return 1
        case .mode: return 2
        case .command: return 3
        case .host: return 4
        case .scheme: return 5
        case .vm: return 6
        case .user: return 7
        case .age: return 8
        case .open: return 9
        case .fd: return 10
        case .held: return 11
        case .unshared: return 12
        case .lockfile: return 13
        case .disk: return 14
        case .stale: return 4
        }
    }

    /// What `list` shows without `-o`.
    public static let defaults: [Column] = [.image, .scheme, .mode, .pid, .command, .vm, .user, .age]

    /// The defaults for these rows: HOST after PID when any holder has a host (gluster) or
    /// more than one host is in view (a cluster view), DISK after VM when any has a libvirt
    /// disk target, STALE after HOST when a Gluster holder was checked on its host.
    public static func defaults(for rows: [LockRow], hostsInView: Int = 1) -> [Column] {
        let host = hostsInView > 1 || rows.contains { $0.holder?.host != nil }
        let disk = rows.contains { $0.holder?.diskTarget != nil }
        let stale = rows.contains { $0.holder?.liveness != nil }
        guard host || disk || stale else { return defaults }
        var cols = defaults
        if host { cols.insert(.host, at: cols.firstIndex(of: .pid).map { $0 + 1 } ?? cols.count) }
        if stale { cols.insert(.stale, at: cols.firstIndex(of: .host).map { $0 + 1 } ?? cols.count) }
        if disk { cols.insert(.disk, at: cols.firstIndex(of: .vm).map { $0 + 1 } ?? cols.count) }
        return cols
    }

    /// Parses `-o` text: comma-separated names, `+` prefix adds to the defaults.
    public static func parse(_ text: String) -> Result<[Column], ColumnError> {
        var base: [Column] = []
        var list = Substring(text)
        if list.hasPrefix("+") {
            base = defaults
            list = list.dropFirst()
        }
        var out = base
        for name in list.split(separator: ",") {
            guard let c = Column(rawValue: name.lowercased()) else { return .failure(ColumnError(name: String(name))) }
            if !out.contains(c) { out.append(c) }
        }
        return out.isEmpty ? .failure(ColumnError(name: text)) : .success(out)
    }

    /// The cell of this column for a row, as text. `now` makes AGE reproducible.
    public func cell(_ row: LockRow, now: Date = Date()) -> String {
        let h = row.holder
        switch self {
        case .image: return row.image.path ?? "<unknown> \(row.image.lockFiles.first ?? row.image.id)"
        case .scheme:
            if let s = h?.scheme { return s.rawValue }
            return row.image.schemes.map(\.rawValue).joined(separator: ",")
        case .mode:
            if row.waiting { return "wait" }
            if let h { return h.modeSummary }
            // Locked, but by no holder this scan could see (another user's fds): not free.
            return row.image.locks.contains { !$0.isWaiter } ? "held" : "free"
        case .pid: return h.flatMap { $0.pid > 0 ? String($0.pid) : nil } ?? "-"  // 0: a gluster holder that set no l_pid
        case .command: return h?.command ?? "-"
        case .vm: return h?.vm ?? "-"
        case .user: return h?.process.userText ?? "-"
        case .age: return h?.started.map { Column.age(from: $0, to: now) } ?? "-"
        case .fd: return h?.fd.map(String.init) ?? "-"
        case .open:
            switch h?.openMode {
            case .readOnly?: return "ro"
            case .writeOnly?: return "wo"
            case .readWrite?: return "rw"
            case nil: return "-"
            }
        case .held: return h?.qemu.map { $0.held.sorted().map(\.name).joined(separator: ",") } ?? "-"
        case .unshared: return h?.qemu.map { $0.unshared.sorted().map(\.name).joined(separator: ",") } ?? "-"
        case .lockfile: return row.image.lockFiles.first ?? "-"
        case .host: return h?.host ?? row.image.host ?? "-"
        case .disk: return h?.diskTarget ?? "-"
        case .stale:
            switch h?.liveness {
            case .live?: return "live"
            case .provenStale?: return "proven"
            case .possiblyStale?: return "possible"
            case nil: return "-"
            }
        }
    }

    /// `45s`, `12m`, `3h`, `2d`.
    public static func age(from start: Date, to now: Date) -> String {
        let s = max(0, Int(now.timeIntervalSince(start)))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86400 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }
}

public struct ColumnError: Error, CustomStringConvertible, Sendable {
    public var name: String
    public var description: String {
        "unknown column '\(name)'; columns: " + Column.allCases.map(\.rawValue).joined(separator: ", ")
    }
}
