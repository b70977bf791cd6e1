import FoundationEssentials
import ImageLock

/// One change between two snapshots (`locksmith watch`).
public struct WatchEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case lockReleased = "lock-released"
        case waiterUnblocked = "waiter-unblocked"
        case lockAcquired = "lock-acquired"
        case holderChanged = "holder-changed"
        case waiterBlocked = "waiter-blocked"
        case findingCleared = "finding-cleared"
        case findingRaised = "finding-raised"
    }

    public var kind: Kind
    /// When the change was seen: the later snapshot's time.
    public var time: Date
    /// The image's path (nil when unknown; then `imageID` names its lock file or dev:inode).
    public var image: String?
    public var imageID: String?
    /// The holder or waiter (lock and waiter events); for `holder-changed`, as it is now.
    public var holder: Holder?
    /// For `holder-changed`: the holder as it was.
    public var previous: Holder?
    /// For finding events.
    public var finding: Finding?

    public init(kind: Kind, time: Date, image: String?, imageID: String?, holder: Holder? = nil,
                previous: Holder? = nil, finding: Finding? = nil) {
        self.kind = kind
        self.time = time
        self.image = image
        self.imageID = imageID
        self.holder = holder
        self.previous = previous
        self.finding = finding
    }
}

/// The changes between two snapshots, as a pure function.
public enum SnapshotDiff {
    /// Every change from `old` to `new`, in this order: locks released, waiters unblocked,
    /// locks acquired, holders changed (same process and scheme, another lock type or other
    /// QEMU permissions), waiters blocked, findings cleared, findings raised; within each
    /// kind by image, then pid. A holder or a waiter is identified by image, pid and scheme
    /// (see `index`); a finding by `Finding.id`. Findings below
    /// `minimumSeverity` are ignored (nil: no finding events at all).
    public static func events(from old: AuditedSnapshot, to new: AuditedSnapshot,
                              minimumSeverity: Severity? = .warning) -> [WatchEvent] {
        var out = events(from: old.snapshot, to: new.snapshot)
        guard let min = minimumSeverity else { return out }
        let time = new.snapshot.generated
        let before = Dictionary(old.findings.filter { $0.severity >= min }.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.findings.filter { $0.severity >= min }.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for f in old.findings where f.severity >= min && after[f.id] == nil {
            out.append(WatchEvent(kind: .findingCleared, time: time, image: f.image, imageID: nil, finding: f))
        }
        for f in new.findings where f.severity >= min && before[f.id] == nil {
            out.append(WatchEvent(kind: .findingRaised, time: time, image: f.image, imageID: nil, finding: f))
        }
        return out
    }

    /// The holders' and waiters' changes alone, in the order above.
    public static func events(from old: Snapshot, to new: Snapshot) -> [WatchEvent] {
        let time = new.generated
        var out: [WatchEvent] = []

        let oldHolders = index(old, \.holders, waiter: false)
        let newHolders = index(new, \.holders, waiter: false)
        let oldWaiters = index(old, \.waiters, waiter: true)
        let newWaiters = index(new, \.waiters, waiter: true)

        func event(_ kind: WatchEvent.Kind, _ e: Entry, previous: Holder? = nil) -> WatchEvent {
            WatchEvent(kind: kind, time: time, image: e.image.path, imageID: e.image.id, holder: e.holder, previous: previous)
        }
        // Only the entries that changed are put in order (most scans change a few of 10k).
        for (_, e) in ordered(oldHolders.filter { newHolders[$0.key] == nil }) { out.append(event(.lockReleased, e)) }
        for (_, e) in ordered(oldWaiters.filter { newWaiters[$0.key] == nil }) { out.append(event(.waiterUnblocked, e)) }
        for (_, e) in ordered(newHolders.filter { oldHolders[$0.key] == nil }) { out.append(event(.lockAcquired, e)) }
        let changed = newHolders.filter { k, e in
            guard let before = oldHolders[k]?.holder else { return false }
            return before.lockType != e.holder.lockType || before.qemu != e.holder.qemu
        }
        for (k, e) in ordered(changed) { out.append(event(.holderChanged, e, previous: oldHolders[k]!.holder)) }
        for (_, e) in ordered(newWaiters.filter { oldWaiters[$0.key] == nil }) { out.append(event(.waiterBlocked, e)) }
        return out
    }

    /// `new` with the details of holders and waiters that ended while it was taken
    /// (command `?`: /proc had no status for them any more) taken from `old`, matched by
    /// pid. A waiter that gets its lock and exits at once is then still named when it goes.
    public static func fillingDetails(_ new: Snapshot, from old: Snapshot) -> Snapshot {
        var known: [Int32: Holder] = [:]
        for i in old.images { for h in i.holders + i.waiters where h.command != "?" { known[h.pid] = h } }
        guard !known.isEmpty else { return new }
        func fill(_ h: Holder) -> Holder {
            guard h.command == "?", let k = known[h.pid] else { return h }
            var f = h
            f.command = k.command
            f.args = k.args
            f.user = k.user
            f.uid = k.uid
            f.started = k.started
            f.vm = k.vm
            return f
        }
        var out = new
        for i in out.images.indices {
            out.images[i].holders = out.images[i].holders.map(fill)
            out.images[i].waiters = out.images[i].waiters.map(fill)
        }
        return out
    }

    struct Entry {
        var image: ImageLocks
        var holder: Holder
    }

    /// One entry per image, process and scheme: the fd is not part of the identity (a
    /// classic POSIX lock is found through fdinfo in one scan and only by its pid in the
    /// next, when the process's fds change meanwhile). Several fds of one process merge:
    /// the strongest lock type, the union of QEMU permissions, the first fd.
    static func index(_ s: Snapshot, _ list: KeyPath<ImageLocks, [Holder]>, waiter: Bool) -> [String: Entry] {
        var out: [String: Entry] = [:]
        for i in s.images where !i[keyPath: list].isEmpty {
            for h in i[keyPath: list] {
                let key = entryKey(i, h)
                guard var e = out[key] else {
                    out[key] = Entry(image: i, holder: h)
                    continue
                }
                if e.holder.fd == nil, h.fd != nil {
                    e.holder.fd = h.fd
                    e.holder.openMode = h.openMode
                }
                if h.lockType == .write || e.holder.lockType == nil { e.holder.lockType = h.lockType ?? e.holder.lockType }
                if let q = h.qemu {
                    let p = e.holder.qemu
                    e.holder.qemu = QemuPermissions(held: q.held.union(p?.held ?? []), unshared: q.unshared.union(p?.unshared ?? []))
                }
                out[key] = e
            }
        }
        return out
    }

    /// A cluster view's hosts apart: one local path on two hosts, one pid on two hosts; a
    /// shared image by its storage (its `host` changes as hosts join it).
    static func entryKey(_ i: ImageLocks, _ h: Holder) -> String {
        let place = i.storage.map { "storage\u{0}" + $0 } ?? "\(i.host ?? "")\u{0}\(i.id)"
        return "\(place)\u{0}\(h.host ?? "")\u{0}\(h.pid)\u{0}\(h.scheme.rawValue)"
    }

    /// The entries by image (known paths first, in order, then unknown ones by id), pid, fd
    /// and scheme; each entry's sort key made once.
    static func ordered(_ entries: [String: Entry]) -> [(key: String, value: Entry)] {
        let list = Array(entries)
        let keys = list.map { k, e in
            (e.image.path ?? "\u{10FFFF}" + e.image.id, e.holder.pid, e.holder.fd ?? -1, e.holder.scheme.rawValue)
        }
        return keys.indices.sorted { keys[$0] < keys[$1] }.map { list[$0] }
    }
}
