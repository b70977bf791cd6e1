import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// What the audit rules need beyond the snapshot: file modes and owners, filesystems,
/// credentials and ancestry of the processes involved, how long waiters have waited.
/// Plain values, so the rules stay pure and tests can build them in code.
public struct AuditFacts: Sendable, Equatable {
    /// The time the rules judge against.
    public var now: Date
    /// `blocked-waiter` fires for waits at least this long (seconds).
    public var waitThreshold: Double
    /// The lock dirs, by path (without a trailing slash); `stat`, following links.
    public var lockDirectories: [String: AuditFileFacts]
    /// Lock-dir entries by path, as `lstat` sees them (never followed).
    public var lockFiles: [String: AuditFileFacts]
    /// Images by path (compared by bytes: `PathKey`), as `stat` sees them.
    public var images: [PathKey: AuditFileFacts]
    /// Image paths that `stat` says do not exist.
    public var missingImages: Set<PathKey>
    /// The processes named in the snapshot (holders, waiters, writers).
    public var processes: [Int32: AuditProcessFacts]
    /// Group ids (primary and supplementary) of the users owning images.
    public var userGroups: [UInt32: [UInt32]]

    public init(now: Date = Date(), waitThreshold: Double = 30, lockDirectories: [String: AuditFileFacts] = [:],
                lockFiles: [String: AuditFileFacts] = [:], images: [PathKey: AuditFileFacts] = [:],
                missingImages: Set<PathKey> = [], processes: [Int32: AuditProcessFacts] = [:],
                userGroups: [UInt32: [UInt32]] = [:]) {
        self.now = now
        self.waitThreshold = waitThreshold
        self.lockDirectories = lockDirectories
        self.lockFiles = lockFiles
        self.images = images
        self.missingImages = missingImages
        self.processes = processes
        self.userGroups = userGroups
    }
}

/// A file's type, owner, mode and filesystem.
public struct AuditFileFacts: Sendable, Equatable {
    public var kind: FileKind
    /// Permission bits with setuid/setgid/sticky (`st_mode & 07777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var links: UInt64
    /// The name of the shared (network or cluster) filesystem it is on: `nfs`, `fuse`,
    /// `ceph`, `smb`, `gfs2`, `ocfs2`; nil for a local one (statfs f_type).
    public var sharedFilesystem: String?
    /// A symlink's target.
    public var linkTarget: String?

    public init(kind: FileKind, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, links: UInt64 = 1,
                sharedFilesystem: String? = nil, linkTarget: String? = nil) {
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.links = links
        self.sharedFilesystem = sharedFilesystem
        self.linkTarget = linkTarget
    }

    /// `0644`.
    public var modeText: String {
        let s = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    /// Whether a user may open the file for `access` (4 read, 2 write) by its mode bits:
    /// root always; the owner by the owner bits; a member of its group by the group bits;
    /// anyone else by the other bits. (ACLs are not read.)
    public func permits(uid user: UInt32, gid: UInt32, groups: [UInt32], access: UInt32) -> Bool {
        if user == 0 { return true }
        if user == uid { return mode & (access << 6) != 0 }
        if gid == self.gid || groups.contains(self.gid) { return mode & (access << 3) != 0 }
        return mode & access != 0
    }
}

/// Who a process is and where it comes from.
public struct AuditProcessFacts: Sendable, Equatable {
    /// Effective ids and supplementary groups (/proc/PID/status `Uid:`, `Gid:`, `Groups:`).
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    /// Parent, grandparent, ... up to pid 1 (only gathered for writers).
    public var ancestors: [Int32]
    /// For a blocked waiter: seconds since its waiting thread last ran (/proc/PID/task/TID/sched
    /// `se.exec_start` against the reader's own), nil when the kernel does not say.
    public var waitedSeconds: Double?

    public init(uid: UInt32, gid: UInt32, groups: [UInt32] = [], ancestors: [Int32] = [], waitedSeconds: Double? = nil) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.ancestors = ancestors
        self.waitedSeconds = waitedSeconds
    }
}

extension AuditFacts {
    /// Reads what the rules need about `snapshot` from the system: a stat or lstat per lock
    /// dir, lock file and image, statfs per lock dir and per mount the images are on,
    /// /proc/PID/status of each process the snapshot names (and of writers' ancestors), the
    /// scheduler's view of each waiter. No directory walk, no second pass over /proc; nothing
    /// is opened but /proc files. A lock file the scan already lstat'ed (relative to its dir,
    /// `InspectorOptions.lockFileStatus`, as the audit's scan does) is not lstat'ed again.
    public static func gather(for snapshot: Snapshot, lockDirectories: [String], waitThreshold: Double = 30,
                              procRoot: String = "/proc", now: Date = Date()) -> AuditFacts {
        gather(for: snapshot, lockDirectories: lockDirectories, waitThreshold: waitThreshold, procRoot: procRoot, now: now,
               imageStatuses: nil)
    }

    /// `imageStatuses`: the stat of the files under --images the audit's scan took
    /// (`ImageStatuses`); the images it does not name are stat'ed here.
    static func gather(for snapshot: Snapshot, lockDirectories: [String], waitThreshold: Double, procRoot: String,
                       now: Date, imageStatuses: [PathKey: ImageStatuses.Status]?) -> AuditFacts {
        var f = AuditFacts(now: now, waitThreshold: waitThreshold)
        for dir in lockDirectories {
            let key = AuditFacts.trimmed(dir)
            if case .success(let s) = AuditReads.facts(key, follow: true) { f.lockDirectories[key] = s }
        }
        // The lock files: what the scan's lstat said, else an lstat here. 10k of them are 10k
        // insertions by path: made on a thread of their own while the images are read here.
        let lockFiles = snapshot.lockFiles
        let lockFileWork = lockFiles.count >= Parallel.offThreadFrom ? ThreadWork { lockFileFacts(lockFiles) } : nil
        if lockFileWork == nil { f.lockFiles = lockFileFacts(lockFiles) }
        // The images: a stat each (10k on a big host, on every core) and a statfs per mount.
        // (Fields read in place: an image or lock file copied is a dozen references retained.)
        let images = snapshot.images
        var seen = Set<PathKey>(minimumCapacity: images.count)
        var paths: [String] = []
        func add(_ p: String) { if seen.insert(PathKey(p)).inserted { paths.append(p) } }
        for n in images.indices { if let p = images[n].path { add(p) } }
        for n in lockFiles.indices { if let p = lockFiles[n].image { add(p) } }
        for w in snapshot.writers { add(w.path) }
        f.images.reserveCapacity(paths.count)
        for (p, r) in zip(paths, AuditReads.imageFacts(paths, known: imageStatuses ?? [:])) {
            switch r {
            case .success(let s):
                f.images[PathKey(p)] = s
                if s.uid != 0, f.userGroups[s.uid] == nil { f.userGroups[s.uid] = AuditReads.groups(ofUser: s.uid) }
            case .failure(let e) where e.code == ENOENT || e.code == ENOTDIR:
                f.missingImages.insert(PathKey(p))
            case .failure:
                break
            }
        }
        var pids = Set<Int32>()
        for n in images.indices {
            for h in images[n].holders { pids.insert(h.pid) }
            for w in images[n].waiters { pids.insert(w.pid) }
        }
        for w in snapshot.writers { pids.insert(w.pid) }
        for pid in pids.sorted() {
            guard let s = AuditReads.status(pid: pid, procRoot: procRoot) else { continue }
            f.processes[pid] = AuditProcessFacts(uid: s.uid, gid: s.gid, groups: s.groups)
        }
        for pid in Set(snapshot.writers.map(\.pid)) {
            var chain: [Int32] = []
            var p = AuditReads.status(pid: pid, procRoot: procRoot)?.ppid ?? 0
            while p > 0 && chain.count < 64 && !chain.contains(p) {
                chain.append(p)
                p = AuditReads.status(pid: p, procRoot: procRoot)?.ppid ?? 0
            }
            f.processes[pid]?.ancestors = chain
        }
        var waiters = Set<Int32>()
        for n in images.indices { for w in images[n].waiters { waiters.insert(w.pid) } }
        for pid in waiters.sorted() {
            f.processes[pid]?.waitedSeconds = AuditReads.secondsBlocked(pid: pid, procRoot: procRoot)
        }
        if let lockFileWork { f.lockFiles = lockFileWork.wait() }
        return f
    }

    /// Each lock-dir entry's facts by path: what the scan's lstat said (`facts(of:)`), else
    /// an lstat now (a snapshot taken without, or an entry gone before the scan could stat
    /// it), on every core.
    private static func lockFileFacts(_ lockFiles: [LockFileEntry]) -> [String: AuditFileFacts] {
        var out: [String: AuditFileFacts] = [:]
        out.reserveCapacity(lockFiles.count)
        var unstated: [Int] = []
        for n in lockFiles.indices {
            if let facts = AuditReads.facts(of: lockFiles[n]) { out[lockFiles[n].path] = facts } else { unstated.append(n) }
        }
        let toStat = unstated
        let stated = Parallel.chunks(toStat.count, chunk: 2048) { range in
            range.map { AuditReads.facts(lockFiles[toStat[$0]].path, follow: false) }
        }
        for (n, r) in zip(toStat, stated) {
            if case .success(let s) = r { out[lockFiles[n].path] = s }
        }
        return out
    }

    static func trimmed(_ path: String) -> String {
        var s = path
        while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
        return s
    }
}
