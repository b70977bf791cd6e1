import FoundationEssentials
import ImageLock

/// A cheap summary of what a snapshot depends on most: the rows of the kernel's lock table
/// that it can show, and the entries of the lock dirs (and of the --images dirs it walked).
/// Equal fingerprints mean no such lock was taken, released or queued and no lock file or
/// image came or went, so a live view (the TUI) can skip a full scan. Processes that open
/// an image without locking it change nothing here: a live view still rescans fully every
/// so often.
public struct ChangeFingerprint: Equatable, Sendable {
    private var table: Int
    private var directories: [String]

    /// One read of /proc/locks and one stat per lock dir; every row of the table counts.
    public static func read(_ options: InspectorOptions) -> ChangeFingerprint {
        Reading(options, watch: .everything).fingerprint(.everything)
    }

    /// The same, counting only the rows `watch` says a snapshot can show.
    public static func read(_ options: InspectorOptions, watching watch: ChangeWatch) -> ChangeFingerprint {
        Reading(options, watch: watch).fingerprint(watch)
    }

    /// The lock table and the dirs' stats, as read at one moment; fingerprinted against a
    /// watch that may be made later (from the scan that follows the reading).
    struct Reading {
        var table: [UInt8]?
        var directories: [String]
        var watchedDirectories: [String]

        init(_ options: InspectorOptions, watch: ChangeWatch) {
            table = ProcFS.readBytes(options.procRoot + "/locks")
            directories = (options.lockDirectories + options.imageDirectories).map(Self.status)
            watchedDirectories = watch.imageSubdirectories
            directories += watchedDirectories.map(Self.status)
        }

        /// A dir's identity and times: an entry added, removed or renamed changes its mtime and ctime.
        static func status(_ dir: String) -> String {
            switch Sys.changeStamp(dir) {
            case .success(let stamp): return "\(dir) \(stamp)"
            case .failure(let e): return "\(dir) errno \(e.code)"
            }
        }

        /// nil when `watch` stats subdirs this reading did not (they were found meanwhile):
        /// such a fingerprint equals none, and the next look scans again.
        func settled(_ watch: ChangeWatch) -> ChangeFingerprint? {
            guard watch.imageSubdirectories == watchedDirectories else { return nil }
            return fingerprint(watch)
        }

        func fingerprint(_ watch: ChangeWatch) -> ChangeFingerprint {
            var h = Hasher()
            if let bytes = table {
                bytes.withUnsafeBufferPointer { ChangeFingerprint.hashRows($0, watch: watch, into: &h) }
            } else {
                h.combine(-1)
            }
            return ChangeFingerprint(table: h.finalize(), directories: directories)
        }
    }

    /// Hashes the rows a snapshot can show (all rows when `watch.inodes` is nil), each
    /// without its leading ID: the ID is the row's position in the table, which changes
    /// whenever a row before it goes, whoever's lock that was. Rows stay in table order,
    /// so a waiter still follows the lock it waits for.
    static func hashRows(_ text: UnsafeBufferPointer<UInt8>, watch: ChangeWatch, into h: inout Hasher) {
        var start = 0
        var rows = 0
        while start < text.count {
            var end = start
            while end < text.count && text[end] != UInt8(ascii: "\n") { end += 1 }
            let line = UnsafeBufferPointer(rebasing: text[start..<end])
            start = end + 1
            let body = withoutID(line)
            if let inodes = watch.inodes, let row = KernelLock.position(line), !Self.mayShow(row, inodes) { continue }
            h.combine(bytes: UnsafeRawBufferPointer(body))
            h.combine(0x0A as UInt8)
            rows += 1
        }
        h.combine(rows)
    }

    /// The line after `ID: ` (a waiter's line keeps its `-> `).
    static func withoutID(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var i = 0
        while i < line.count && line[i] >= UInt8(ascii: "0") && line[i] <= UInt8(ascii: "9") { i += 1 }
        guard i > 0, i < line.count, line[i] == UInt8(ascii: ":") else { return line }
        i += 1
        while i < line.count && line[i] == UInt8(ascii: " ") { i += 1 }
        return UnsafeBufferPointer(rebasing: line[i...])
    }

    /// Whether a snapshot can show a row (`KernelLock.position`'s): a row on a watched file;
    /// else one that makes a file an image by its shape alone, whatever file it is on (a
    /// byte in QEMU's ranges, 100-204 taken as a whole; virtlockd's byte 0). A row with no
    /// inode (`<none>`) always counts.
    static func mayShow(_ row: (inode: UInt64?, start: Int64, end: Int64?), _ inodes: Set<UInt64>) -> Bool {
        if row.start >= 100 && row.start <= 204 { return true }
        if row.start == 0 && row.end == 0 { return true }
        guard let inode = row.inode else { return true }
        return inodes.contains(inode)
    }
}

/// Which rows of the lock table a snapshot can show: those on the files it knows (its lock
/// files and lease files, its images, the files under the --images dirs, by inode on any
/// device), and those that make any file an image by their shape (QEMU's bytes, virtlockd's
/// byte 0). Other rows (a database's locks, a build tool's lock file) change nothing a scan
/// would show, and are left out of the fingerprint: another user's lock churn does not
/// force a full scan. Made from a snapshot plus one walk of the --images dirs (no hashing).
public struct ChangeWatch: Sendable, Equatable {
    /// nil: every row counts.
    var inodes: Set<UInt64>?
    /// The subdirs of the --images dirs the walk went into (the dirs themselves are always
    /// stat'ed): a file added to one changes its times.
    var imageSubdirectories: [String]

    public static let everything = ChangeWatch(inodes: nil, imageSubdirectories: [])

    public static func of(_ snapshot: Snapshot, options: InspectorOptions) -> ChangeWatch {
        var inodes = Set<UInt64>()
        inodes.reserveCapacity(snapshot.lockFiles.count + snapshot.images.count)
        for f in snapshot.lockFiles { inodes.insert(f.inode) }
        for i in snapshot.images.indices {
            if let ino = snapshot.images[i].inode { inodes.insert(ino) }
            for l in snapshot.images[i].locks { if let ino = l.inode { inodes.insert(ino) } }
        }
        var subdirs: [String] = []
        for dir in options.imageDirectories {
            guard case .success(let real) = Sys.realpath(dir) else { continue }
            var found: [ImageDirectories.ImageDirEntry] = []
            var unseen: [Unseen] = []
            ImageDirectories.walk(real, depth: 0, device: nil, into: &found, unseen: &unseen,
                                  entered: { if $0 != real { subdirs.append($0) } })
            for e in found { if let k = e.key { inodes.insert(k.inode) } }
        }
        return ChangeWatch(inodes: inodes, imageSubdirectories: subdirs)
    }
}

/// The last full snapshot and its fingerprint: a live view asks `reusable` first, or lets
/// `snapshot(_:scan:)` do both.
public final class SnapshotCache: @unchecked Sendable {
    private let lock = Lock()
    private var last: (snapshot: AuditedSnapshot, fingerprint: ChangeFingerprint?, taken: Double)?
    private var watch = ChangeWatch.everything
    /// Whether the memory a scan freed is still to be handed back to the system.
    private var trimDue = false
    /// A full scan at least this often, whatever the fingerprint says.
    public let maxAge: Double

    public init(maxAge: Double = 30) {
        self.maxAge = maxAge
    }

    /// The last snapshot while none of the lock table's rows it can show, no lock file and no
    /// image changed and it is young enough; else `scan()`'s, kept with a fingerprint of the
    /// host as it was before that scan began (a change during the scan shows at the next look).
    public func snapshot(_ options: InspectorOptions, scan: () throws -> AuditedSnapshot) rethrows -> PolledSnapshot {
        let (watch, young) = lock.withLock { (self.watch, last.map { monotonicSeconds() - $0.taken < maxAge } ?? false) }
        var before = ChangeFingerprint.Reading(options, watch: watch)
        var reused = reusable(before.fingerprint(watch))
        if reused == nil && young {
            // /proc/locks is read a page per read(), each from the table as it is then: while
            // others lock and unlock, a row can be skipped or repeated. A change is confirmed
            // by a second reading before the full scan it costs.
            before = ChangeFingerprint.Reading(options, watch: watch)
            reused = reusable(before.fingerprint(watch))
        }
        if let s = reused {
            // The last scan's tables are freed by now (`Parallel.release`): give their pages back.
            lock.lock()
            let trim = trimDue
            trimDue = false
            lock.unlock()
            if trim { FreedMemory.giveBack() }
            return s
        }
        let s = try scan()
        let next = ChangeWatch.of(s.snapshot, options: options)
        lock.withLock {
            self.watch = next
            last = (s, before.settled(next), monotonicSeconds())
            trimDue = true
        }
        return PolledSnapshot(s)
    }

    /// The last snapshot when nothing it depends on changed and it is young enough.
    public func reusable(_ fingerprint: ChangeFingerprint) -> PolledSnapshot? {
        lock.lock()
        defer { lock.unlock() }
        guard let l = last, l.fingerprint == fingerprint, monotonicSeconds() - l.taken < maxAge else { return nil }
        return PolledSnapshot(l.snapshot, isRepeat: true, refreshed: Date())
    }

    public func store(_ snapshot: AuditedSnapshot, _ fingerprint: ChangeFingerprint) {
        lock.lock()
        last = (snapshot, fingerprint, monotonicSeconds())
        lock.unlock()
    }

    /// The next `reusable` misses (a refresh the user asked for).
    public func invalidate() {
        lock.lock()
        last = nil
        lock.unlock()
    }

    private func monotonicSeconds() -> Double { Sys.monotonicSeconds() }
}

/// Hands freed heap pages back to the system (`Sys.trimHeap`).
enum FreedMemory {
    static func giveBack() {
        Sys.trimHeap()
    }
}
