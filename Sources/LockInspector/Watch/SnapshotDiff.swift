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
        events(from: Indexed(old, minimumSeverity: minimumSeverity), to: Indexed(new, minimumSeverity: minimumSeverity))
    }

    /// The holders' and waiters' changes alone, in the order above.
    public static func events(from old: Snapshot, to new: Snapshot) -> [WatchEvent] {
        events(from: Indexed(AuditedSnapshot(old), minimumSeverity: nil), to: Indexed(AuditedSnapshot(new), minimumSeverity: nil))
    }

    /// An audited snapshot with what the diff looks up in it: its holders and waiters by
    /// entry (`index`), and its findings at or above the minimum severity by id. `watch`
    /// makes one per snapshot and diffs it twice (as the newer side, then the older).
    struct Indexed: Sendable {
        let audited: AuditedSnapshot
        let holders: [EntryKey: Entry]
        let waiters: [EntryKey: Entry]
        /// nil: no finding events.
        let minimumSeverity: Severity?
        /// By id, compared by bytes (`PathKey`: an id names its image and files).
        let findings: [PathKey: Finding]

        init(_ a: AuditedSnapshot, minimumSeverity: Severity?) {
            audited = a
            holders = index(a.snapshot, waiters: false)
            waiters = index(a.snapshot, waiters: true)
            self.minimumSeverity = minimumSeverity
            findings = minimumSeverity.map { min in
                Dictionary(a.findings.filter { $0.severity >= min }.map { (PathKey($0.id), $0) }, uniquingKeysWith: { a, _ in a })
            } ?? [:]
        }
    }

    /// The events from `old` to `new` (indexed with the same minimum severity).
    static func events(from old: Indexed, to new: Indexed) -> [WatchEvent] {
        let time = new.audited.snapshot.generated
        var out: [WatchEvent] = []
        let (oldHolders, newHolders, oldWaiters, newWaiters) = (old.holders, new.holders, old.waiters, new.waiters)

        func event(_ kind: WatchEvent.Kind, _ e: Entry, previous: Holder? = nil) -> WatchEvent {
            WatchEvent(kind: kind, time: time, image: e.path, imageID: e.id, holder: e.holder, previous: previous)
        }
        // One pass over the new holders finds those acquired and changed; when every one of
        // them was there before and there are as many, none was released (most scans change
        // a few of 10k: no second pass). Only the entries that changed are put in order.
        var acquired: [EntryKey: Entry] = [:], changed: [EntryKey: Entry] = [:]
        for (k, e) in newHolders {
            guard let before = oldHolders[k]?.holder else {
                acquired[k] = e
                continue
            }
            if before.lockType != e.holder.lockType || before.qemu != e.holder.qemu { changed[k] = e }
        }
        let released = newHolders.count - acquired.count == oldHolders.count ? [:] : oldHolders.filter { newHolders[$0.key] == nil }
        for (_, e) in ordered(released) { out.append(event(.lockReleased, e)) }
        for (_, e) in ordered(oldWaiters.filter { newWaiters[$0.key] == nil }) { out.append(event(.waiterUnblocked, e)) }
        for (_, e) in ordered(acquired) { out.append(event(.lockAcquired, e)) }
        for (k, e) in ordered(changed) { out.append(event(.holderChanged, e, previous: oldHolders[k]!.holder)) }
        for (_, e) in ordered(newWaiters.filter { oldWaiters[$0.key] == nil }) { out.append(event(.waiterBlocked, e)) }

        guard let min = new.minimumSeverity else { return out }
        // (A finding is copied only when it makes an event: 5k stale lock files are below the default minimum.)
        let (before, after) = (old.audited.findings, new.audited.findings)
        for n in before.indices where before[n].severity >= min && new.findings[PathKey(before[n].id)] == nil {
            out.append(WatchEvent(kind: .findingCleared, time: time, image: before[n].image, imageID: nil, finding: before[n]))
        }
        for n in after.indices where after[n].severity >= min && old.findings[PathKey(after[n].id)] == nil {
            out.append(WatchEvent(kind: .findingRaised, time: time, image: after[n].image, imageID: nil, finding: after[n]))
        }
        return out
    }

    /// `new` with the details of holders and waiters that ended while it was taken
    /// (command `?`: /proc had no status for them any more) taken from `old`, matched by
    /// pid. A waiter that gets its lock and exits at once is then still named when it goes.
    public static func fillingDetails(_ new: Snapshot, from old: Snapshot) -> Snapshot {
        // Most snapshots name every process: then nothing is looked up or copied.
        guard new.images.contains(where: { i in i.holders.contains { $0.command == "?" } || i.waiters.contains { $0.command == "?" } })
        else { return new }
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

    /// A holder or waiter as the diff knows it: its image's path and id, and itself.
    struct Entry: Sendable {
        var path: String?
        var id: String
        var holder: Holder
    }

    /// One entry per image, process and scheme: the fd is not part of the identity (a
    /// classic POSIX lock is found through fdinfo in one scan and only by its pid in the
    /// next, when the process's fds change meanwhile). Several fds of one process merge:
    /// the strongest lock type, the union of QEMU permissions, the first fd.
    static func index(_ s: Snapshot, waiters: Bool) -> [EntryKey: Entry] {
        var out: [EntryKey: Entry] = [:]
        out.reserveCapacity(s.images.indices.reduce(0) { $0 + (waiters ? s.images[$1].waiters.count : s.images[$1].holders.count) })
        // Each image's fields read in place (a copy of an image retains its dozen references).
        for n in s.images.indices where !(waiters ? s.images[n].waiters.isEmpty : s.images[n].holders.isEmpty) {
            let (path, id, host, storage) = (s.images[n].path, s.images[n].id, s.images[n].host, s.images[n].storage)
            for h in waiters ? s.images[n].waiters : s.images[n].holders {
                let key = entryKey(storage: storage, host: host, id: id, h)
                guard var e = out[key] else {
                    out[key] = Entry(path: path, id: id, holder: h)
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

    /// An entry's identity: its image (by its storage when it has one: a shared image, whose
    /// `host` changes as hosts join it; else by host and id: one local path on two hosts
    /// apart), the holder's host (one pid on two hosts apart), pid and scheme. Compared and
    /// hashed as fields, not as a string made of them (10k of those a snapshot).
    struct EntryKey: Hashable, Sendable {
        var storage: String?
        var host: String
        /// The image's id by its bytes (`PathKey`: an NFC name and its NFD twin are two).
        var id: PathKey
        var holderHost: String
        var pid: Int32
        var scheme: LockScheme
    }

    static func entryKey(storage: String?, host: String?, id: String, _ h: Holder) -> EntryKey {
        if let storage {
            return EntryKey(storage: storage, host: "", id: PathKey(""), holderHost: h.host ?? "", pid: h.pid, scheme: h.scheme)
        }
        return EntryKey(storage: nil, host: host ?? "", id: PathKey(id), holderHost: h.host ?? "", pid: h.pid, scheme: h.scheme)
    }

    /// The entries by image (known paths first, in order, then unknown ones by id), pid, fd
    /// and scheme; each entry's sort key made once.
    static func ordered(_ entries: [EntryKey: Entry]) -> [(key: EntryKey, value: Entry)] {
        let list = Array(entries)
        let keys = list.map { k, e in
            (e.path ?? "\u{10FFFF}" + e.id, e.holder.pid, e.holder.fd ?? -1, e.holder.scheme.rawValue)
        }
        return keys.indices.sorted { keys[$0] < keys[$1] }.map { list[$0] }
    }
}

/// `watch`'s state from one snapshot to the next: the last audited snapshot, indexed once
/// (as the newer side of one diff, then reused as the older side of the next), and the
/// snapshot it replaces freed on another thread, not in the way of the next scan.
public struct SnapshotWatch: Sendable {
    private var last: SnapshotDiff.Indexed

    /// Finding events for findings at or above `minimumSeverity` (nil: none).
    public init(_ first: AuditedSnapshot, minimumSeverity: Severity?) {
        last = SnapshotDiff.Indexed(first, minimumSeverity: minimumSeverity)
    }

    /// The snapshot the next events are counted from.
    public var current: AuditedSnapshot { last.audited }

    /// The events from the current snapshot to `taken` (`SnapshotDiff.events`, with the details
    /// of processes that ended while it was taken filled in from the current one:
    /// `SnapshotDiff.fillingDetails`); `taken` becomes the current snapshot.
    public mutating func advance(to taken: AuditedSnapshot) -> [WatchEvent] {
        let next = SnapshotDiff.Indexed(AuditedSnapshot(SnapshotDiff.fillingDetails(taken.snapshot, from: last.audited.snapshot),
                                                        findings: taken.findings),
                                        minimumSeverity: last.minimumSeverity)
        let events = SnapshotDiff.events(from: last, to: next)
        let old = last
        last = next
        let entries = old.holders.count + old.audited.snapshot.lockFiles.count
        Parallel.release(consume old, entries: entries)
        return events
    }
}
