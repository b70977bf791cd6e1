import FoundationEssentials
import ImageLock

/// Where the inspector looks.
public struct InspectorOptions: Sendable, Equatable {
    /// The /proc to read (fixtures point it elsewhere).
    public var procRoot: String
    /// Directories of `.qemu-*.lock` files (the lockfile scheme).
    public var lockDirectories: [String]
    /// Directories whose files are candidate images (searched a few levels deep).
    public var imageDirectories: [String]
    /// Directories of libvirt domain XML whose disk sources are candidate images.
    public var libvirtDirectories: [String]
    /// virtlockd's lease dirs (indirect mode): files named by SHA-256 of a disk path.
    public var leaseDirectories: [String]
    /// Look only at these images and their lock files (`why`): no lock-dir listing, no
    /// candidate mapping, and fdinfo read only where it can concern them.
    public var focus: [InspectorFocus]?
    /// Also note which processes have image files open for writing (`Snapshot.writers`,
    /// for the audit's writer rules): one lstat of each regular file's fd link.
    public var findWriters = false
    /// Also lstat each lock-dir and lease-dir entry as it is listed (relative to the open
    /// dir, on the lock-dir thread) and keep its owner, mode and link count in the entry
    /// (`LockFileEntry.mode`...): the audit's lock-file facts, without a second lstat by path.
    /// The audit's scan: the files under --images are then also stat'ed as they are walked,
    /// on a thread of their own (`ImageStatuses`, for `AuditFacts.gather`).
    public var lockFileStatus = false
    /// Gluster volumes to scan through libgfapi (`--gluster`; see GlusterScan.swift).
    public var glusterVolumes: [GlusterVolumeScan] = []
    /// For open files on GlusterFS FUSE mounts with locks no local process accounts for:
    /// take a brick statedump of their volume (on a server node) to list the other hosts'
    /// holders (`ServerLocks`).
    public var fuseStatedump = false
    /// Name each image's and writer's storage identity from this host's mountinfo
    /// (`StorageIdentity`): `list --json`'s `storage`, by which a cluster view merges images.
    public var namesStorage = false
    /// Where a focused scan (`focus`) learns the locks on its files; a table passed in
    /// (`snapshot(prefetched:)`) is always used.
    public var focusedLocks = FocusedLockSource.holdersFirst
    /// When a host scan looks the lock files up among the directories' candidates before
    /// the kernel's table is there (`Scan.EarlyMapping`); tests ask for both ways.
    var earlyMapping = EarlyMappingPolicy.whenTableIsLate

    public static let defaultLockDirectories = ["/var/tmp"]
    public static let defaultLibvirtDirectories = ["/etc/libvirt/qemu", "/run/libvirt/qemu"]
    public static let defaultLeaseDirectories = ["/var/lib/libvirt/lockd/files"]

    public init(procRoot: String = "/proc", lockDirectories: [String] = defaultLockDirectories,
                imageDirectories: [String] = [], libvirtDirectories: [String] = defaultLibvirtDirectories,
                leaseDirectories: [String] = defaultLeaseDirectories) {
        self.procRoot = procRoot
        self.lockDirectories = lockDirectories
        self.imageDirectories = imageDirectories
        self.libvirtDirectories = libvirtDirectories
        self.leaseDirectories = leaseDirectories
    }
}

/// When `Scan.startEarlyMapping` maps the lock files before the kernel's table is there.
enum EarlyMappingPolicy: Sendable, Equatable {
    /// With many lock files and the table still being read (not for the audit's scan).
    case whenTableIsLate
    case always, never

    /// Whether a host scan of `lockFiles` lock files (with --images or libvirt dirs) maps
    /// them early. `auditScan`: its lstat of every lock file runs on the idle core then.
    /// `tableReady` is asked last, only when the rest says yes.
    func mapsEarly(lockFiles: Int, auditScan: Bool, tableReady: () -> Bool) -> Bool {
        switch self {
        case .never: return false
        case .always: return true
        case .whenTableIsLate: return !auditScan && lockFiles >= Parallel.offThreadFrom && !tableReady()
        }
    }
}

/// An image the inspector is asked about alone, with the lock files that would be its own.
public struct InspectorFocus: Sendable, Equatable {
    /// The image's realpath.
    public var image: String
    /// Its lock files, one per lock dir (they need not exist).
    public var lockFiles: [String]

    public init(image: String, lockFiles: [String]) {
        self.image = image
        self.lockFiles = lockFiles
    }
}

/// Why the inspector could not look at all (everything smaller goes to `Snapshot.unseen`).
public enum InspectorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The /proc root or its `locks` file cannot be read.
    case procUnreadable(path: String, errno: Int32)

    public var description: String {
        switch self {
        case let .procUnreadable(path, errno):
            return "cannot read \(path): \(Errno(errno))"
        }
    }
}

/// Time spent in each part of a snapshot (for benchmarks and `--timing`).
/// Where a focused scan learns the locks on its files (`InspectorOptions.focusedLocks`).
public enum FocusedLockSource: Sendable {
    /// /proc/locks: every lock and queued request on the host, the rows kept for the
    /// focused files. Its first read after idle waits for an RCU grace period.
    case kernelTable
    /// Every process's fds (statx), then the fdinfo `lock:` lines of those on the focused
    /// files, which are the kernel's own rows for them, without the table's wait. Taken as
    /// the whole answer only when it can be: every process's fd list was read, no task
    /// sleeps in a lock call on a focused file (`Sys.lockWaits`: only the table lists queued
    /// requests), no lease is held on one (its breakers queue in open(2)), and an F_GETLK
    /// probe of each file (an image's QEMU bytes and byte 0, a lock file's byte 0; not of a
    /// shared filesystem's, nor of a block device, which is never opened) meets only locks
    /// that fdinfo listed. Otherwise the table is read after all. A process
    /// whose fds are listed but cannot be followed (capabilities the caller lacks) shows
    /// none: its fcntl locks on the probed bytes are met by the probe, unless another
    /// holder's lock on the same bytes is met first; its flock locks and queued requests
    /// only the table shows.
    case holdersFirst
}

public struct SnapshotTimings: Sendable, Equatable {
    public var kernelLocks: Double = 0
    /// Whether /proc/locks was read (a focused scan reads fdinfo instead when that is the
    /// whole answer: `FocusedLockSource.holdersFirst`).
    public var kernelTableRead = true
    /// Whether /proc/locks was the read the executable started before main (`LocksmithStart`).
    public var kernelLocksReadEarly = false
    public var lockDirectories: Double = 0
    public var processes: Double = 0
    public var mapping: Double = 0
    public var total: Double = 0
    /// Work counters: fds looked at, fdinfo files read, lock-file contents read.
    public var fds = 0
    public var fdinfoReads = 0
    public var contentReads = 0
    /// Processes whose open files were looked at.
    public var processCount = 0

    public init() {}
}

/// Finds every image lock on the host in one pass over /proc/locks, /proc/PID/{fd,fdinfo},
/// the lock dirs and the candidate images; names every holder exactly (per process and
/// fd, through fdinfo `lock:` lines) and decodes QEMU's permission bytes.
/// Never prints, never exits; only a /proc that cannot be read at all is an error.
public struct Inspector: Sendable {
    public var options: InspectorOptions

    public init(_ options: InspectorOptions = InspectorOptions()) {
        self.options = options
        self.options.lockDirectories = LockDirectories.resolve(options.lockDirectories)
    }

    public func snapshot() throws -> Snapshot {
        var t = SnapshotTimings()
        return try snapshot(timings: &t)
    }

    /// `prefetched`: the kernel's lock table, being read since the caller started
    /// (`prefetchKernelTable`; used when it reads this snapshot's proc root). `openFiles`:
    /// every process's fds, being read since the caller started (`prefetchOpenFiles`; used
    /// by a focused scan that reads its holders' fdinfo first, of the same proc root).
    public func snapshot(timings: inout SnapshotTimings, prefetched: KernelTablePrefetch? = nil,
                         openFiles: OpenFilesPrefetch? = nil) throws -> Snapshot {
        try scan(timings: &timings, prefetched: prefetched, openFiles: openFiles).snapshot
    }

    /// The snapshot, with the audit's stat of the files under --images when the scan took
    /// it (`InspectorOptions.lockFileStatus`).
    func scan(timings: inout SnapshotTimings, prefetched: KernelTablePrefetch? = nil, openFiles: OpenFilesPrefetch? = nil) throws
        -> (snapshot: Snapshot, imageStatuses: ImageStatuses?) {
        let gluster = GlusterScan.start(options.glusterVolumes, procRoot: options.procRoot)  // gluster hook
        var scan = Scan(options: options)
        scan.openFilesAhead = openFiles
        let table = prefetched.flatMap { $0.procRoot == options.procRoot ? $0.reader : nil }
        var snapshot = try scan.run(timings: &timings, table: table)
        gluster?.finish(into: &snapshot)  // gluster hook
        if options.namesStorage { StorageIdentity.annotate(&snapshot, procRoot: options.procRoot) }
        return (snapshot, scan.imageStatuses)
    }

    /// The same, with the kernel's lock table already being read (`prefetchKernelTable`).
    public func snapshot(prefetched: KernelTablePrefetch) throws -> Snapshot {
        var t = SnapshotTimings()
        var scan = Scan(options: options)
        return try scan.run(timings: &t, table: prefetched.procRoot == options.procRoot ? prefetched.reader : nil)
    }

    /// Starts reading `<procRoot>/locks` on a thread now, for a snapshot to come: the read
    /// waits for an RCU grace period in the kernel (file_rwsem taken for writing), which is
    /// best spent doing something else (`why` gathers the image's facts meanwhile).
    /// It takes the read the executable started before main, when there is one
    /// (`kernelTableReadEarly`).
    public static func prefetchKernelTable(procRoot: String = "/proc") -> KernelTablePrefetch {
        KernelTablePrefetch(procRoot: procRoot)
    }

    /// Whether this process started reading /proc/locks before main and nobody has taken
    /// the read yet (Sources/LocksmithStart/start.c: `list` and `audit` do).
    public static var kernelTableReadEarly: Bool { Sys.earlyReadRunning("/proc/locks") }

    /// Starts reading every process's fds and lock waits on a thread now, for a focused
    /// snapshot to come (`snapshot(timings:prefetched:openFiles:)`; `why` starts it before
    /// its arguments are parsed).
    public static func prefetchOpenFiles(procRoot: String = "/proc") -> OpenFilesPrefetch {
        OpenFilesPrefetch(procRoot: procRoot)
    }
}
