import Foundation
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
    /// Gluster volumes to scan through libgfapi (`--gluster`; see GlusterScan.swift).
    public var glusterVolumes: [GlusterVolumeScan] = []
    /// For open files on GlusterFS FUSE mounts with locks no local process accounts for:
    /// take a brick statedump of their volume (on a server node) to list the other hosts'
    /// holders (`ServerLocks`).
    public var fuseStatedump = false

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
            return "cannot read \(path): \(String(cString: strerror(errno)))"
        }
    }
}

/// Time spent in each part of a snapshot (for benchmarks and `--timing`).
public struct SnapshotTimings: Sendable, Equatable {
    public var kernelLocks: Double = 0
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

    public func snapshot(timings: inout SnapshotTimings) throws -> Snapshot {
        let gluster = GlusterScan.start(options.glusterVolumes, procRoot: options.procRoot)  // gluster hook
        var scan = Scan(options: options)
        var snapshot = try scan.run(timings: &timings, table: nil)
        gluster?.finish(into: &snapshot)  // gluster hook
        return snapshot
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
    public static func prefetchKernelTable(procRoot: String = "/proc") -> KernelTablePrefetch {
        KernelTablePrefetch(procRoot: procRoot)
    }
}

// MARK: - The scan

/// What a scan builds for itself, handed to `Parallel.release` when done.
struct ScanTables: @unchecked Sendable {
    var rowsByFile: [FileKey: [KernelLock]]
    var rows: [KernelLock]
    var fds: Scan.FDPass
    var procs: Scan.ProcessScan
    var candidates: Scan.Candidates
    var lockFileKeys: [FileKey: Int]
}

/// A file by device and inode, as /proc/locks names it.
struct FileKey: Hashable, Comparable {
    var device: DeviceID?
    var inode: UInt64
    /// Two words for the hasher, not four (100k lookups a scan).
    func hash(into hasher: inout Hasher) {
        hasher.combine(inode)
        hasher.combine(device.map { UInt64($0.major) << 32 | UInt64($0.minor) } ?? UInt64.max)
    }
    static func < (a: FileKey, b: FileKey) -> Bool {
        (a.device?.major ?? 0, a.device?.minor ?? 0, a.inode) < (b.device?.major ?? 0, b.device?.minor ?? 0, b.inode)
    }
    var text: String { "\(device?.description ?? "?"):\(inode)" }
}

extension KernelLock {
    var fileKey: FileKey? { inode.map { FileKey(device: device, inode: $0) } }
}

/// An fd of a process with the locks the kernel lists for it in fdinfo.
struct OpenFileLocks {
    var pid: Int32
    var fd: Int32
    var link: String?
    var flags: UInt32
    var locks: [KernelLock]
}

struct Scan {
    let options: InspectorOptions
    var procRoot: String { options.procRoot }
    var unseen: [Unseen] = []
    var details: [Int32: ProcessDetails?] = [:]
    var users: [UInt32: String?] = [:]
    var bootTime: Date?
    var serverLocks: [ServerLockFacts] = []
    /// The rows made of `serverLocks` (`serverLockRows`).
    var serverLockRows: [KernelLock] = []

    init(options: InspectorOptions) {
        self.options = options
    }

    mutating func run(timings t: inout SnapshotTimings, table prefetched: KernelTableReader?) throws -> Snapshot {
        let t0 = Sys.monotonicSeconds()
        var isDir = ObjCBool(false)
        guard FileManager.default.fileExists(atPath: procRoot, isDirectory: &isDir), isDir.boolValue else {
            throw InspectorError.procUnreadable(path: procRoot, errno: ENOENT)
        }
        // 1. The kernel's lock table, read on a second thread while the rest is scanned:
        // /proc/locks hands out at most a page per read() and walks the global lock list
        // from its start at every read (seq_hlist_start_percpu, under file_rwsem taken for
        // writing), so a big table costs kernel time quadratic in its size (~0.2 s for 55k
        // locks here).
        let table = prefetched ?? KernelTableReader(path: procRoot + "/locks")

        // 2. Lock dirs and lease dirs (readdir only), and the candidate images named by
        // directories (walked and hashed), each on its own thread while /proc is scanned.
        var lockFiles: [LockFileEntry] = []
        var leaseFiles: [LockFileEntry] = []
        var lockDirs: ThreadWork<LockDirectories>?
        var imageDirs: ThreadWork<ImageDirectories>?
        if let focus = options.focus {
            (lockFiles, leaseFiles) = focusedFiles(focus)
        } else {
            let o = options
            lockDirs = ThreadWork { LockDirectories.read(lockDirectories: o.lockDirectories, leaseDirectories: o.leaseDirectories) }
            if !o.imageDirectories.isEmpty || !o.libvirtDirectories.isEmpty {
                imageDirs = ThreadWork { ImageDirectories.read(imageDirectories: o.imageDirectories, libvirtDirectories: o.libvirtDirectories) }
            }
        }

        // 3. The processes, in two steps: every fd's target inode (one statx each, while
        // /proc/locks is still being read), then fdinfo only of the fds on a locked inode.
        // Focused (`why`): the kernel's rows on the focused files first; no row, no scan;
        // only POSIX rows, only their pids.
        let t2 = Sys.monotonicSeconds()
        bootTime = ProcessDetails.bootTime(procRoot: procRoot)
        var fds = FDPass()
        var searchOrder: [Int32]?
        if let focus = options.focus {
            // Focused: when an fcntl probe finds a lock on a focused file, order the
            // processes for the holder search while the table is read.
            let files = focus.map(\.image) + lockFiles.map(\.path) + leaseFiles.map(\.path)
            if files.contains(where: { Sys.hasFcntlLock($0) }) { searchOrder = qemuFirst() }
        } else {
            fds = listOpenFiles(pids: ProcFS.pids(procRoot: procRoot), timings: &t)
        }
        t.processes = Sys.monotonicSeconds() - t2
        if let dirs = lockDirs?.wait() {
            (lockFiles, leaseFiles) = (dirs.lockFiles, dirs.leaseFiles)
            unseen.insert(contentsOf: dirs.unseen, at: 0)
            t.lockDirectories = dirs.seconds
        }
        let needPaths = options.focus == nil && (!lockFiles.isEmpty || !leaseFiles.isEmpty)

        let (parsed, readErrno, readTime) = table.wait()
        t.kernelLocks = readTime
        guard let parsed else {
            throw InspectorError.procUnreadable(path: procRoot + "/locks", errno: readErrno == 0 ? ENOENT : readErrno)
        }
        var rows = parsed.locks
        if options.focus == nil && fds.live {
            // Files on FUSE, NFS...: their locks are asked of the filesystem (F_GETLK) and
            // those of local processes with the file open join the kernel's rows.
            let (server, facts) = serverLockRows(fds, kernel: rows)
            rows += server
            (serverLocks, serverLockRows) = (facts, server)
        }
        for line in parsed.malformed {
            unseen.append(Unseen(what: "\(procRoot)/locks line \"\(line)\"", why: "not in the kernel's format"))
        }
        var rowsByFile: [FileKey: [KernelLock]] = [:]
        rowsByFile.reserveCapacity(rows.count)
        for r in rows { if let k = r.fileKey { rowsByFile[k, default: []].append(r) } }
        var candidates = Candidates()
        if let focus = options.focus {
            // Only the focused files matter; they are images by definition.
            var keep: [FileKey: [KernelLock]] = [:]
            for f in focus {
                guard case .success(let st) = Sys.stat(f.image) else { continue }
                let k = FileKey(device: st.deviceID, inode: st.inode)
                candidates.addImageFile(k, path: f.image)
                keep[k] = rowsByFile[k]
            }
            for lf in lockFiles + leaseFiles {
                let k = FileKey(device: lf.device, inode: lf.inode)
                keep[k] = rowsByFile[k]
            }
            rowsByFile = keep.filter { !$0.value.isEmpty }
        }
        let t2b = Sys.monotonicSeconds()
        var held: [KernelLock] = []
        held.reserveCapacity(rows.count)
        for fileRows in rowsByFile.values { for r in fileRows where !r.isWaiter { held.append(r) } }
        if options.focus != nil && !held.isEmpty {
            // A classic POSIX or flock row names its process; an OFD row does not, and then
            // the processes are searched (by inode: hard links and bind mounts too) until
            // every OFD row has its open file description.
            let named = Set(held.compactMap(\.pid)).sorted()
            if held.contains(where: { $0.pid == nil }) {
                fds = searchOFDHolders(held: held, first: named, order: searchOrder ?? qemuFirst(), timings: &t)
            } else {
                fds = listOpenFiles(pids: named, timings: &t)
            }
        }
        // Each lock file by key (of hard links, the first in byte order).
        var lockFileKeys: [FileKey: Int] = [:]
        lockFileKeys.reserveCapacity(lockFiles.count)
        for i in lockFiles.indices.reversed() { lockFileKeys[FileKey(device: lockFiles[i].device, inode: lockFiles[i].inode)] = i }
        var locked: [UInt64: [KernelLock]] = [:]
        for r in held { if let i = r.inode { locked[i, default: []].append(r) } }
        var procs = readHolders(fds, locked: locked, lockFiles: (lockFiles, lockFileKeys), paths: needPaths,
                                writers: options.findWriters && options.focus == nil, timings: &t)
        // An OFD lock that no fd on its inode lists (a /proc copy whose fd links mislead,
        // a filesystem whose st_ino differs from the kernel's lock inode): read every
        // fdinfo after all, as the kernel's own lists are the ground truth.
        if fds.live && procs.hidden.isEmpty && held.contains(where: { $0.pid == nil && procs.shapes[$0.identity] == nil }) {
            procs = readHolders(fds, locked: nil, lockFiles: (lockFiles, lockFileKeys), paths: needPaths,
                                writers: options.findWriters && options.focus == nil, timings: &t)
        }
        t.processes += Sys.monotonicSeconds() - t2b
        for (key, fileRows) in rowsByFile where fileRows.contains(where: { !$0.isWaiter }) {
            if let i = lockFileKeys[key] { lockFiles[i].held = true }
        }
        for i in lockFiles.indices where !lockFiles[i].held {
            // Hard links: every name of a held file is held.
            let key = FileKey(device: lockFiles[i].device, inode: lockFiles[i].inode)
            if let first = lockFileKeys[key], first != i { lockFiles[i].held = lockFiles[first].held }
        }
        for i in leaseFiles.indices {
            leaseFiles[i].held = rowsByFile[FileKey(device: leaseFiles[i].device, inode: leaseFiles[i].inode)]?
                .contains { !$0.isWaiter } ?? false
        }

        // 4. Classify the locked files, map lock files to images, assemble.
        let t3 = Sys.monotonicSeconds()
        var named = imageDirs?.wait()
        let domains = named?.domains  // libvirt hook
        if needPaths {
            candidates = buildCandidates(openPaths: procs.openPaths, pids: procs.pids, named: &named)
        }
        // A held lock file whose key the kernel did not list under the dir's device
        // (btrfs subvolumes, overlayfs) is still found through its holder's fd link.
        let lockFileByPath = procs.keyByLink.isEmpty ? [:]
            : Dictionary(lockFiles.indices.map { (lockFiles[$0].path, $0) }, uniquingKeysWith: { a, _ in a })
        for (link, k) in procs.keyByLink {
            guard let i = lockFileByPath[link] else { continue }
            if !lockFiles[i].held {
                lockFiles[i].held = true
                lockFiles[i].device = k.device
            }
            lockFileKeys[k] = i
        }
        mapLockFiles(&lockFiles, candidates: candidates, rowsByFile: rowsByFile, timings: &t)
        let bySHA256 = leaseFiles.isEmpty ? [:] : candidates.bySHA256()
        for i in leaseFiles.indices {
            let name = String(leaseFiles[i].path.split(separator: "/").last ?? "")
            if let c = bySHA256[name] {
                leaseFiles[i].image = c.path
                leaseFiles[i].mappedBy = c.source
            }
        }
        var images = assemble(rows: rows, rowsByFile: rowsByFile, lockFiles: lockFiles, lockFileKeys: lockFileKeys,
                              leaseFiles: leaseFiles, procs: procs, candidates: candidates)
        nameDomains(&images, domains: domains)  // libvirt hook
        // After the domains are named: a remote holder's pid numbers a process of its own host.
        if !serverLocks.isEmpty { ServerLocks.addRemoteHolders(serverLocks, to: &images) }
        let allLockFiles = leaseFiles.isEmpty ? lockFiles : lockFiles + leaseFiles
        let writers = imageWriters(procs.writeOpens, images: images, lockFiles: allLockFiles,
                                   candidates: needPaths ? candidates : nil, named: named)
        t.mapping = Sys.monotonicSeconds() - t3
        // The scan's own tables (100k entries each on a big host) are freed off the caller's path.
        Parallel.release(ScanTables(rowsByFile: rowsByFile, rows: rows, fds: fds, procs: procs, candidates: candidates,
                                    lockFileKeys: lockFileKeys))
        t.total = Sys.monotonicSeconds() - t0
        t.processCount = procs.pids.count
        var snapshot = Snapshot(host: Sys.hostName, generated: Date(), images: images,
                                lockFiles: allLockFiles, unseen: unseen, writers: writers)
        snapshot.serverLocks = serverLocks
        return snapshot
    }

    // MARK: Lock dirs

    /// The focused images' lock files and lease files, by lstat of their exact names
    /// (no directory listing); each is mapped to its image by name.
    mutating func focusedFiles(_ focus: [InspectorFocus]) -> (lockFiles: [LockFileEntry], leaseFiles: [LockFileEntry]) {
        func entry(_ path: String, image: String) -> LockFileEntry? {
            guard case .success(let s) = Sys.lstat(path) else { return nil }
            var e = LockFileEntry(path: path, kind: s.kind, device: s.deviceID, inode: s.inode, held: false)
            e.image = image
            e.mappedBy = "name"
            return e
        }
        var lockFiles: [LockFileEntry] = []
        var leaseFiles: [LockFileEntry] = []
        for f in focus {
            lockFiles += f.lockFiles.compactMap { entry($0, image: f.image) }
            for dir in options.leaseDirectories {
                let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
                if let e = entry(base + "/" + Digest.sha256Hex(f.image), image: f.image) { leaseFiles.append(e) }
            }
        }
        return (lockFiles, leaseFiles)
    }

    // MARK: Processes

    struct ProcessScan {
        var pids: [Int32] = []
        /// fds whose fdinfo lists locks, by the locked file.
        var byFile: [FileKey: [OpenFileLocks]] = [:]
        /// The fdinfo lock shapes seen, with how many fds list each.
        var shapes: [KernelLock.Identity: Int] = [:]
        /// Every fd link that names a path (candidate images), with a pid that has it open.
        var openPaths: [String: Int32] = [:]
        /// The file key of a locked fd's link where it differs from what statx said of the fd
        /// (to join lock files by path as well: btrfs, overlayfs; every one from a /proc copy).
        var keyByLink: [String: FileKey] = [:]
        /// Processes whose fds could not be read.
        var hidden: Set<Int32> = []
        /// fds open for writing on paths that may be images (filtered in `imageWriters`).
        var writeOpens: [WriteOpen] = []
    }

    /// Every fd of the processes looked at, with the inode it refers to.
    struct FDPass {
        var pids: [Int32] = []
        var fds: [OpenFD] = []
        /// Whether the inodes come from statx of the live /proc (else from fdinfo, already parsed).
        var live = true
        /// Processes whose fds could not be listed.
        var hidden: Set<Int32> = []
    }

    /// Step one over the processes: list each fd dir and statx every entry relative to it
    /// (the target's inode and type, from the kernel's cache: no readlink, no fdinfo, no
    /// wait on a hung NFS server). Not the live /proc (a copy, a fixture): fdinfo's `ino:`.
    mutating func listOpenFiles(pids: [Int32], timings t: inout SnapshotTimings) -> FDPass {
        var out = FDPass()
        out.pids = pids
        let live = Sys.isLiveProc(procRoot)
        out.live = live
        let root = procRoot
        // Per chunk of pids: their fds, and the pids whose fd dir could not be listed.
        let parts = Parallel.chunks(pids.count, chunk: 32) { range -> [(fds: [OpenFD], failed: [(Int32, Errno)])] in
            var fds: [OpenFD] = []
            var failed: [(Int32, Errno)] = []
            var buffer = [UInt8](repeating: 0, count: 16384)
            for pid in pids[range] {
                let failure = HolderSearch.openFiles(procRoot: root, pid: pid, live: live, buffer: &buffer, into: &fds)
                if let e = failure { failed.append((pid, e)) }
            }
            return [(fds, failed)]
        }
        out.fds.reserveCapacity(parts.reduce(0) { $0 + $1.fds.count })
        for part in parts {
            out.fds += part.fds
            for (pid, e) in part.failed {
                if e.code == ENOENT || e.code == ESRCH { continue }  // gone since /proc was listed
                let d = process(pid)
                // Kernel threads (empty cmdline) open no files: nothing is missed there.
                if let d, d.args.isEmpty { continue }
                out.hidden.insert(pid)
                let command = d.map { " (\($0.command))" } ?? ""
                unseen.append(Unseen(what: "open files of pid \(pid)\(command)", why: "\(procRoot)/\(pid)/fd: \(e.description)"))
            }
        }
        if !out.live { t.fdinfoReads += out.fds.count }
        t.fds += out.fds.count
        return out
    }

    /// Every pid, QEMU's processes first (their comm starts with `qemu`): an OFD lock on an
    /// image is most likely theirs.
    func qemuFirst() -> [Int32] {
        var qemu: [Int32] = []
        var rest: [Int32] = []
        for pid in ProcFS.pids(procRoot: procRoot) {
            if ProcFS.command(pid: pid, procRoot: procRoot)?.hasPrefix("qemu") ?? false { qemu.append(pid) } else { rest.append(pid) }
        }
        return qemu + rest
    }

    /// The focused search (`why`): the fds of the processes in `first`, then of the others
    /// in `order`, until every held OFD row on the focused files is accounted for by a
    /// distinct open file description whose fdinfo lists it (two readers holding the same
    /// bytes are two rows and need two descriptions; fds that share one, by dup or fork,
    /// are told apart by kcmp). A process sharing a found description that comes later in
    /// the order is not looked at: `list` shows every fd. When kcmp cannot tell, or the
    /// rows are never all accounted for, every process is looked at, as `list` does.
    mutating func searchOFDHolders(held: [KernelLock], first: [Int32], order: [Int32], timings t: inout SnapshotTimings) -> FDPass {
        var need: [KernelLock.Identity: Int] = [:]
        for r in held where r.pid == nil { need[r.identity, default: 0] += 1 }
        var pass = FDPass()
        pass.live = Sys.isLiveProc(procRoot)
        pass.pids = HolderSearch.ofdSearch(need: need, inodes: Set(held.compactMap(\.inode)), first: first, order: order,
                                           live: pass.live, procRoot: procRoot) { pid in
            let part = listOpenFiles(pids: [pid], timings: &t)
            pass.fds += part.fds
            pass.hidden.formUnion(part.hidden)
            return part.fds
        }
        return pass
    }

    /// What step two learnt about one fd.
    struct FDFinding {
        var fd: OpenFD
        /// Its path, when it was read (a holder, or a candidate image).
        var link: String?
        /// The link names a file that could be an image (not a lock file).
        var candidate = false
        var flags: UInt32 = 0
        /// The locks held through it (empty: not a holder).
        var locks: [KernelLock] = []
        var fdinfoRead = false
        /// Open for writing on a path that may be an image.
        var writeOpen: WriteOpen?
    }

    /// Step two: the holders among the fds on a locked inode (`locked`: the kernel's held
    /// rows by inode; nil = every fd is a suspect). The fdinfo `lock:` lines name each
    /// holder exactly, per process and fd, also for OFD locks. An inode with only classic
    /// POSIX rows needs no fdinfo: those locks belong to the process the row names (fdinfo
    /// lists them under each of its fds on the file, and under no other), so its fds on the
    /// file are the holders, with their open mode from the fd link's mode bits (lstat).
    /// With `paths`, also the path of every open file that could be an image (candidates
    /// for naming lock files). A held lock file's path is known from its dir.
    /// The per-fd work (`examine`) runs on all cores; the results are merged in fd order.
    mutating func readHolders(_ pass: FDPass, locked: [UInt64: [KernelLock]]?,
                              lockFiles: (entries: [LockFileEntry], byKey: [FileKey: Int]),
                              paths: Bool, writers: Bool, timings t: inout SnapshotTimings) -> ProcessScan {
        var out = ProcessScan()
        out.pids = pass.pids
        out.hidden = pass.hidden
        let root = procRoot
        var byInode: [UInt64: [KernelLock]] = [:]
        for r in serverLockRows where r.inode != nil { byInode[r.inode!, default: []].append(r) }
        let serverRows = byInode
        let parts = Parallel.chunks(pass.fds.count, chunk: 256) { range -> [[FDFinding]] in
            var reader = ProcessFDReader(procRoot: root)
            defer { reader.close() }
            var found: [FDFinding] = []
            for i in range {
                if let f = Scan.examine(pass.fds[i], locked: locked, lockFiles: lockFiles,
                                        paths: paths, writers: writers, serverRows: serverRows, reader: &reader) { found.append(f) }
            }
            return [found]
        }
        let count = parts.reduce(0) { $0 + $1.count }
        out.byFile.reserveCapacity(count)
        out.shapes.reserveCapacity(count)
        for part in parts { for i in part.indices { merge(part[i], into: &out, timings: &t) } }
        return out
    }

    /// One fd's finding into the process scan (in fd order).
    private func merge(_ f: borrowing FDFinding, into out: inout ProcessScan, timings t: inout SnapshotTimings) {
        if f.fdinfoRead { t.fdinfoReads += 1 }
        if let w = f.writeOpen { out.writeOpens.append(w) }
        if f.candidate, let l = f.link, out.openPaths[l] == nil { out.openPaths[l] = f.fd.pid }
        guard let key = f.locks.first?.fileKey, let link = f.link else { return }
        out.byFile[key, default: []].append(OpenFileLocks(pid: f.fd.pid, fd: f.fd.fd, link: link, flags: f.flags, locks: f.locks))
        for l in f.locks { out.shapes[l.identity, default: 0] += 1 }
        if f.fd.device == nil || FileKey(device: f.fd.device, inode: f.fd.inode) != key { out.keyByLink[link] = key }
    }

    /// Step two for one fd; nil when it is neither a holder nor a candidate image.
    static func examine(_ f: OpenFD, locked: [UInt64: [KernelLock]]?,
                        lockFiles: (entries: [LockFileEntry], byKey: [FileKey: Int]),
                        paths: Bool, writers: Bool, serverRows: [UInt64: [KernelLock]] = [:],
                        reader: inout ProcessFDReader) -> FDFinding? {
        var out = FDFinding(fd: f)
        let lockFile = f.device.flatMap { lockFiles.byKey[FileKey(device: $0, inode: f.inode)] }.map { lockFiles.entries[$0].path }
        if paths && lockFile == nil && (f.kind == nil || f.kind == .regular || f.kind == .blockDevice) {
            out.link = reader.link(pid: f.pid, fd: f.fd)
            out.candidate = out.link?.hasPrefix("/") ?? false
        }
        if let i = f.info {
            (out.flags, out.locks) = (i.flags, i.locks)
        } else if let rows = locked?[f.inode], let dev = f.device, rows.allSatisfy({ $0.kind == .posix && $0.device == dev }) {
            let own = rows.filter { $0.pid == f.pid }
            if !own.isEmpty, let mode = reader.openFlags(pid: f.pid, fd: f.fd) {
                (out.flags, out.locks) = (mode, own)
            }
        } else if locked == nil || locked?[f.inode] != nil {
            out.fdinfoRead = true
            if let i = reader.info(pid: f.pid, fd: f.fd) {
                (out.flags, out.locks) = (i.flags, i.locks)
            }
        }
        // Locks that only the filesystem knows (FUSE...): fdinfo never lists them.
        if let extra = serverRows[f.inode], let dev = f.device {
            let own = extra.filter { $0.pid == f.pid && $0.device == dev && !out.locks.contains($0) }
            if !own.isEmpty, let mode = out.locks.isEmpty ? reader.openFlags(pid: f.pid, fd: f.fd) : out.flags {
                out.flags = mode
                out.locks += own
            }
        }
        if out.locks.first?.fileKey != nil && out.link == nil {
            out.link = lockFile ?? reader.link(pid: f.pid, fd: f.fd)
        }
        if !(out.link?.hasPrefix("/") ?? false) { out.locks = [] }
        // Open for writing on something that may be an image: for the audit's writer rules.
        if writers, lockFile == nil, f.kind == nil || f.kind == .regular || f.kind == .blockDevice,
           let flags = f.info?.flags ?? reader.openFlags(pid: f.pid, fd: f.fd), flags & 3 != 0 {
            if out.link == nil { out.link = reader.link(pid: f.pid, fd: f.fd) }
            if let link = out.link, link.hasPrefix("/"), WriteOpen.mayBeImage(link) {
                out.writeOpen = WriteOpen(pid: f.pid, fd: f.fd, link: link, flags: flags, inode: f.inode)
            }
        }
        return out.candidate || !out.locks.isEmpty || out.fdinfoRead || out.writeOpen != nil ? out : nil
    }

    mutating func process(_ pid: Int32) -> ProcessDetails? {
        if let d = details[pid] { return d }
        let d = ProcessDetails.read(pid: pid, procRoot: procRoot, bootTime: bootTime, users: &users)
        details[pid] = d
        return d
    }

    // MARK: Image candidates

    struct Candidate {
        var path: String
        var source: String
        /// Named as an image by an --images dir, libvirt XML or QEMU's args (not merely open).
        var named = true
    }

    struct Candidates {
        /// By the SHA-1 of the realpath (the lockfile scheme's name), the most trusted source
        /// kept.
        var bySHA1: [SHA1Digest: Candidate] = [:]
        /// Candidates as written where that is not their realpath: virtlockd names lease
        /// files by the SHA-256 of the path as the domain XML writes it, without
        /// canonicalising. Hashed only when there are lease files (`bySHA256()`).
        var aliases: [Candidate] = []
        /// Files under --images, by key (for locks on them that fit no other scheme).
        /// (Listed as walked, indexed by key on the first lookup: most scans never look one
        /// up, and 100k insertions would cost ~20 ms.)
        private var imageFileList: [(key: FileKey, path: String)] = []
        private var imageFileIndex = LazyIndex()

        /// A candidate less trusted than those already added.
        mutating func add(_ path: String, source: String, realPath: String? = nil, sha1: SHA1Digest? = nil) {
            let real = realPath ?? path
            let h1 = sha1 ?? Digest.sha1(real)
            if let i = bySHA1.index(forKey: h1) {
                bySHA1.values[i].named = true
            } else {
                bySHA1[h1] = Candidate(path: real, source: source)
            }
            if path != real { aliases.append(Candidate(path: path, source: source)) }
        }

        /// Open files: more trusted than what the directories named.
        mutating func putFirst(openFiles paths: [String]) {
            for path in paths {
                let h = Digest.sha1(path)
                bySHA1[h] = Candidate(path: path, source: "open file", named: bySHA1[h]?.named ?? false)
            }
        }

        /// Realpaths named as images by --images dirs, libvirt XML or QEMU args.
        var named: Set<String> { Set(bySHA1.values.lazy.filter(\.named).map(\.path)) }

        /// A file under an --images dir; of several names for one key (hard links), the
        /// first in byte order, whatever order the directory lists them in.
        mutating func addImageFile(_ key: FileKey, path: String) {
            imageFileList.append((key, path))
            imageFileIndex = LazyIndex()
        }

        /// The file under an --images dir with this key, if any.
        func imageFile(_ key: FileKey) -> String? {
            imageFileIndex.lookup(key) {
                var index: [FileKey: String] = [:]
                index.reserveCapacity(imageFileList.count)
                for (k, path) in imageFileList {
                    if let old = index[k], !ByteOrder.precedes(path, old) { continue }
                    index[k] = path
                }
                return index
            }
        }

        /// The index of the image files, made on first use (from any thread).
        final class LazyIndex: @unchecked Sendable {
            private let lock = NSLock()
            private var index: [FileKey: String]?

            func lookup(_ key: FileKey, build: () -> [FileKey: String]) -> String? {
                lock.lock()
                defer { lock.unlock() }
                if index == nil { index = build() }
                return index![key]
            }
        }

        mutating func reserve(_ n: Int) {
            bySHA1.reserveCapacity(bySHA1.count + n)
            imageFileList.reserveCapacity(imageFileList.count + n)
        }

        func bySHA256() -> [String: Candidate] {
            var out: [String: Candidate] = [:]
            for c in bySHA1.values { out[Digest.sha256Hex(c.path)] = c }
            for c in aliases {
                let h = Digest.sha256Hex(c.path)
                if out[h] == nil { out[h] = c }
            }
            return out
        }
    }

    /// Candidate images, in the order of trust: open files, --images dirs, libvirt XML, QEMU
    /// args. `named`: the directories' candidates, when already read (else read here);
    /// taken over (left nil), to be extended in place.
    mutating func buildCandidates(openPaths: [String: Int32], pids: [Int32], named: inout ImageDirectories?) -> Candidates {
        let dirs = named.take() ?? ImageDirectories.read(imageDirectories: options.imageDirectories,
                                                         libvirtDirectories: options.libvirtDirectories)
        unseen += dirs.unseen
        var c = dirs.candidates
        let deleted = " (deleted)"
        // Open lock files are not images: hashing them (100k on a busy host) buys nothing.
        c.putFirst(openFiles: openPaths.keys.filter { !$0.hasSuffix(deleted) && !$0.hasSuffix(".lock") })
        for pid in pids {
            guard let bytes = ProcFS.readBytes("\(procRoot)/\(pid)/cmdline") else { continue }
            let args = ProcessDetails.splitCmdline(bytes)
            guard QemuArgs.isQemu(args) else { continue }
            let cwd = Sys.readlink("\(procRoot)/\(pid)/cwd")
            for p in QemuArgs.filePaths(args) {
                let abs = p.hasPrefix("/") ? p : cwd.map { $0 + "/" + p }
                if let a = abs { c.add(a, source: "qemu args", realPath: (try? Sys.realpath(a).get()) ?? a) }
            }
        }
        return c
    }

    // MARK: Lock-file mapping

    /// Names each lock file's image: a candidate whose SHA-1 is in the name (no file opened);
    /// else the realpath written inside, trusted only when its SHA-1 matches the name.
    mutating func mapLockFiles(_ files: inout [LockFileEntry], candidates: Candidates,
                               rowsByFile: [FileKey: [KernelLock]], timings t: inout SnapshotTimings) {
        for i in files.indices {
            // `.qemu-` + 40 hex digits + `.lock`, at the end of the path.
            func digest(_ p: UnsafeBufferPointer<UInt8>) -> SHA1Digest? {
                // The name is exactly 51 bytes (`.qemu-` + 40 + `.lock`).
                guard p.count == 51 || (p.count > 51 && p[p.count - 52] == UInt8(ascii: "/")) else { return nil }
                return SHA1Digest(hex: UnsafeBufferPointer(rebasing: p[(p.count - 45)..<(p.count - 5)]))
            }
            let parsed = files[i].path.utf8.withContiguousStorageIfAvailable(digest) ?? {
                var path = files[i].path
                return path.withUTF8(digest)
            }()
            guard let digest = parsed else { continue }
            if let c = candidates.bySHA1[digest] {
                files[i].image = c.path
                files[i].mappedBy = c.source
                continue
            }
            guard files[i].kind == .regular else { continue }
            // Opening a file with a lease would start breaking the lease: leave it alone.
            if let rows = rowsByFile[FileKey(device: files[i].device, inode: files[i].inode)],
               rows.contains(where: { $0.kind == .lease || $0.kind == .delegation }) { continue }
            // An empty one (the scheme creates them empty) names nothing: one lstat, no read.
            if case .success(let s) = Sys.lstat(files[i].path), s.kind == .regular, s.size == 0 { continue }
            t.contentReads += 1
            switch Sys.readRegularFile(files[i].path, limit: 4097) {
            case .success(let bytes):
                guard !bytes.isEmpty, bytes.count <= 4096 else { continue }
                var line = bytes[...]
                if let nl = line.firstIndex(of: 10) { line = line[..<nl] }
                if Digest.sha1Hex(Array(line)) == digest.hex {
                    files[i].image = PathBytes.string(line)
                    files[i].mappedBy = "content"
                }
            case .failure(let e) where e.code == ENOENT:
                break  // removed since the dir was read
            case .failure(let e):
                unseen.append(Unseen(what: "content of lock file \(files[i].path)", why: e.description))
            }
        }
    }

    // MARK: Assembly

    /// Which scheme a locked file belongs to, if any.
    /// (`lockFile`, `leaseFile`: the file's index among the lock or lease files, if it is one.)
    func classify(_ key: FileKey, rows: [KernelLock], holders: [OpenFileLocks], lockFile: Int?,
                  leaseFile: Int?, candidates: Candidates) -> LockScheme? {
        if lockFile != nil { return .lockfile }
        if leaseFile != nil { return .virtlockd }
        if rows.contains(where: \.isQemuByteLock) || holders.contains(where: { $0.locks.contains(where: \.isQemuByteLock) }) {
            return .qemu
        }
        if rows.contains(where: { $0.isByteZero && $0.kind == .posix }) {
            let byVirtlockd = rows.contains { r in
                r.isByteZero && r.pid.flatMap { details[$0] ?? nil }?.command == "virtlockd"
            } && !isDaemonPidFile(holders)  // libvirt hook
            if byVirtlockd || candidates.imageFile(key) != nil { return .virtlockd }
        }
        if candidates.imageFile(key) != nil { return .qemu }
        return nil
    }

    /// `lockFileKeys`: the lock files by key, also the keys only their holders' fd links
    /// gave (device mismatch); only regular files count.
    mutating func assemble(rows: [KernelLock], rowsByFile: [FileKey: [KernelLock]], lockFiles: [LockFileEntry],
                           lockFileKeys allKeys: [FileKey: Int], leaseFiles: [LockFileEntry], procs: ProcessScan,
                           candidates: Candidates) -> [ImageLocks] {
        let lockFileKeys = !lockFiles.indices.contains { lockFiles[$0].kind != .regular } ? allKeys
            : allKeys.filter { lockFiles[$0.value].kind == .regular }
        var leaseKeys: [FileKey: Int] = [:]
        for (i, f) in leaseFiles.enumerated() where f.kind == .regular {
            leaseKeys[FileKey(device: f.device, inode: f.inode)] = i
        }

        // Names of POSIX byte-0 holders are needed to recognise virtlockd.
        for r in rows where r.isByteZero && r.kind == .posix { if let p = r.pid { _ = process(p) } }

        // One entry per lock file and per locked file, in order of sight; entries with the
        // same id (an image with lock files in two dirs, or also locked by QEMU) are merged
        // once sorted, where they are neighbours: no table of 100k ids.
        var images: [ImageLocks] = []
        images.reserveCapacity(lockFiles.count + rowsByFile.count)
        func add(_ file: String, scheme: LockScheme, image: String?) -> Int {
            images.append(ImageLocks(id: image ?? file, path: image,
                                     schemes: scheme == .lockfile ? Self.lockfileOnly : [scheme], lockFiles: [file]))
            return images.count - 1
        }

        // Lock files first: every one is listed, held or not.
        var lockFileImageID = [Int?](repeating: nil, count: lockFiles.count)
        lockFiles.withUnsafeBufferPointer { files in
            for i in files.indices where files[i].kind == .regular {
                lockFileImageID[i] = add(files[i].path, scheme: .lockfile, image: files[i].image)
            }
        }
        var leaseImageID: [Int: Int] = [:]
        for i in leaseFiles.indices where leaseFiles[i].kind == .regular && leaseFiles[i].held {
            leaseImageID[i] = add(leaseFiles[i].path, scheme: .virtlockd, image: leaseFiles[i].image)
        }
        // The lock files' images are put in order on another thread while the locked files
        // are classified (100k paths sort in ~30 ms).
        let firstKeys = images.map { ImageOrderKey(known: $0.path != nil, key: $0.path ?? $0.id) }
        let firstOrder = ThreadWork { Self.imageOrder(firstKeys) }

        for (key, fileRows) in rowsByFile.sorted(by: { $0.key < $1.key }) {
            let openFiles = procs.byFile[key] ?? []
            let lockFile = lockFileKeys[key], leaseFile = leaseFiles.isEmpty ? nil : leaseKeys[key]
            guard let scheme = classify(key, rows: fileRows, holders: openFiles, lockFile: lockFile,
                                        leaseFile: leaseFile, candidates: candidates) else { continue }
            func entry(_ id: String) -> Int {
                images.append(ImageLocks(id: id, path: nil, schemes: []))
                return images.count - 1
            }
            let id: Int
            switch scheme {
            case .lockfile: id = lockFileImageID[lockFile!] ?? entry(lockFiles[lockFile!].path)
            case .virtlockd where leaseFile != nil:
                id = leaseImageID[leaseFile!] ?? entry(leaseFiles[leaseFile!].path)  // waiters only
            default:
                let path = openFiles.lazy.compactMap(\.link).first ?? candidates.imageFile(key)
                images.append(ImageLocks(id: path ?? key.text, path: path, device: key.device, inode: key.inode, schemes: [scheme]))
                id = images.count - 1
            }
            if !images[id].schemes.contains(scheme) { images[id].schemes.append(scheme) }
            let (holders, waiters) = self.holders(of: key, scheme: scheme, rows: fileRows, openFiles: openFiles, procs: procs)
            for h in holders where !images[id].schemes.contains(h.scheme) { images[id].schemes.append(h.scheme) }  // virtlockd beside qemu
            // Most images get one file's rows and holders: take the arrays as they are.
            images[id].locks.append(shared: fileRows)
            images[id].holders.append(shared: holders)
            images[id].waiters.append(shared: waiters)
        }

        // Known paths sorted, then unknown images by id (byte order: indices, not 100k moves).
        let restKeys = images[firstKeys.count...].map { ImageOrderKey(known: $0.path != nil, key: $0.path ?? $0.id) }
        let order = Self.mergeOrders(firstOrder.wait(), firstKeys,
                                     Self.imageOrder(restKeys).map { $0 + firstKeys.count }, restKeys, offset: firstKeys.count)
        images.permute(to: order)
        Self.mergeNeighbours(&images)
        for i in images.indices {
            if images[i].locks.count > 1 {
                images[i].locks.sort { $0.id < $1.id || ($0.id == $1.id && !$0.isWaiter && $1.isWaiter) }
            }
            if images[i].holders.count > 1 { images[i].holders.sort { ($0.pid, $0.fd ?? -1) < ($1.pid, $1.fd ?? -1) } }
            if images[i].schemes.count > 1 {
                images[i].schemes.sort { LockScheme.allCases.firstIndex(of: $0)! < LockScheme.allCases.firstIndex(of: $1)! }
            }
        }
        return images
    }

    static let lockfileOnly: [LockScheme] = [.lockfile]

    /// What an image is ordered by: known paths first, then unknown images by id.
    struct ImageOrderKey: Sendable {
        var known: Bool
        var key: String
    }

    /// The indices of `keys` in image order (byte order within each group); stable.
    static func imageOrder(_ keys: [ImageOrderKey]) -> [Int] {
        let known = keys.indices.filter { keys[$0].known }
        let unknown = keys.indices.filter { !keys[$0].known }
        return ByteOrder.sortedIndices(known.map { keys[$0].key }).map { known[$0] }
            + ByteOrder.sortedIndices(unknown.map { keys[$0].key }).map { unknown[$0] }
    }

    /// Two orders merged into one: `a` of indices into `aKeys` (0...), `b` of indices into
    /// `bKeys` shifted by `offset`; on a tie, `a`'s first (it was seen first).
    static func mergeOrders(_ a: [Int], _ aKeys: [ImageOrderKey], _ b: [Int], _ bKeys: [ImageOrderKey], offset: Int) -> [Int] {
        guard !b.isEmpty else { return a }
        func precedes(_ x: ImageOrderKey, _ y: ImageOrderKey) -> Bool {
            x.known != y.known ? x.known : ByteOrder.precedes(x.key, y.key)
        }
        var out: [Int] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if precedes(bKeys[b[j] - offset], aKeys[a[i]]) {
                out.append(b[j])
                j += 1
            } else {
                out.append(a[i])
                i += 1
            }
        }
        out += a[i...]
        out += b[j...]
        return out
    }

    /// Merges each run of entries with the same id (sorted: they are neighbours, the first
    /// seen first) into its first entry.
    static func mergeNeighbours(_ images: inout [ImageLocks]) {
        guard images.count > 1 else { return }
        var last = 0
        for i in 1..<images.count {
            if images[i].id == images[last].id {
                let other = images[i]
                if images[last].inode == nil {
                    images[last].device = other.device
                    images[last].inode = other.inode
                }
                for s in other.schemes where !images[last].schemes.contains(s) { images[last].schemes.append(s) }
                images[last].lockFiles += other.lockFiles
                images[last].locks += other.locks
                images[last].holders += other.holders
                images[last].waiters += other.waiters
            } else {
                last += 1
                if last != i { images.swapAt(last, i) }
            }
        }
        images.removeLast(images.count - last - 1)
    }

    /// The holders of the locks on one file: each fd whose fdinfo lists them (exact, also
    /// for OFD locks), then POSIX locks no fdinfo named, by the pid /proc/locks gives.
    mutating func holders(of key: FileKey, scheme: LockScheme, rows: [KernelLock], openFiles: [OpenFileLocks],
                          procs: ProcessScan) -> (holders: [Holder], waiters: [Holder]) {
        var holders: [Holder] = []
        holders.reserveCapacity(openFiles.count)
        struct PidShape: Hashable {
            var pid: Int32
            var shape: KernelLock.Identity
        }
        // The fds' own locks, looked up by a scan while they are few (one fd, one lock, on
        // most files) and by a set when many.
        let fdLocks = openFiles.reduce(0) { $0 + $1.locks.count }
        var namedPosix = Set<PidShape>()
        for of in openFiles {
            holders.append(makeHolder(pid: of.pid, fd: of.fd, openMode: OpenMode(flags: of.flags),
                                      locks: of.locks, scheme: scheme))
            if fdLocks > 16 {
                for l in of.locks where l.kind == .posix { namedPosix.insert(PidShape(pid: of.pid, shape: l.identity)) }
            }
        }
        func isNamed(_ pid: Int32, _ shape: KernelLock.Identity) -> Bool {
            fdLocks > 16 ? namedPosix.contains(PidShape(pid: pid, shape: shape))
                : openFiles.contains { $0.pid == pid && $0.locks.contains { $0.kind == .posix && $0.identity == shape } }
        }
        // Whether any fd lists the lock (only this file's fds can: fdinfo lists an fd's own).
        func isListed(_ shape: KernelLock.Identity) -> Bool {
            openFiles.contains { $0.locks.contains { $0.identity == shape } } || procs.shapes[shape] != nil
        }
        var posixOnly: [Int32: [KernelLock]] = [:]
        for r in rows where !r.isWaiter {
            if let pid = r.pid, r.kind == .posix || !isListed(r.identity) {
                if !isNamed(pid, r.identity) { posixOnly[pid, default: []].append(r) }
            } else if !isListed(r.identity) {
                unseen.append(Unseen(
                    what: "holder of \(r.kind) \(r.type) lock on \(key.text) bytes \(r.start)-\(r.end.map(String.init) ?? "EOF")",
                    why: procs.hidden.isEmpty ? "no process lists it in fdinfo (it may have ended during the scan)"
                        : "held through an fd of a process whose fds cannot be read"))
            }
        }
        for (pid, locks) in posixOnly.sorted(by: { $0.key < $1.key }) {
            holders.append(makeHolder(pid: pid, fd: nil, openMode: nil, locks: locks, scheme: scheme))
        }
        var waiters: [Holder] = []
        for r in rows where r.isWaiter {
            if let pid = r.pid {
                waiters.append(makeHolder(pid: pid, fd: nil, openMode: nil, locks: [r], scheme: scheme))
            } else {
                unseen.append(Unseen(
                    what: "waiter for \(r.kind) \(r.type) lock on \(key.text) bytes \(r.start)-\(r.end.map(String.init) ?? "EOF")",
                    why: "the kernel names no pid for a blocked OFD request, and fdinfo lists no blocked requests"))
            }
        }
        return (holders, waiters)
    }

    mutating func makeHolder(pid: Int32, fd: Int32?, openMode: OpenMode?, locks: [KernelLock], scheme: LockScheme) -> Holder {
        let d = process(pid)
        if d == nil {
            unseen.append(Unseen(what: "details of pid \(pid)", why: "the process ended during the scan"))
        }
        let scheme = virtlockdScheme(scheme, locks: locks, command: d?.command)  // libvirt hook
        let type: LockType? = locks.contains { $0.lockType == .write } ? .write : locks.contains { $0.lockType == .read } ? .read : nil
        // Only QEMU's own byte locks say which permissions a user holds: a whole-file lock
        // or an flock(2) lock on an image is no QEMU user (why still counts the fcntl ones).
        var qemu: QemuPermissions?
        if scheme == .qemu {
            let byteLocks = locks.filter { $0.isFcntlLock && $0.isQemuByteLock }
            if !byteLocks.isEmpty { qemu = QemuPermissions(lockedRanges: byteLocks.map { (start: $0.start, end: $0.end) }) }
        }
        return Holder(pid: pid, command: d?.command ?? "?", args: d?.args ?? [], user: d?.user, uid: d?.uid,
                      started: d?.started, fd: fd, openMode: openMode, vm: d?.vm, scheme: scheme, lockType: type,
                      qemu: qemu, startTicks: d?.startTicks, lockedDevice: locks.first?.device, lockedInode: locks.first?.inode)
    }
}

/// The kernel's lock table being read ahead of a snapshot (`Inspector.prefetchKernelTable`).
public final class KernelTablePrefetch: Sendable {
    let procRoot: String
    let reader: KernelTableReader

    init(procRoot: String) {
        self.procRoot = procRoot
        reader = KernelTableReader(path: procRoot + "/locks")
    }
}

/// Reads /proc/locks on its own thread.
final class KernelTableReader: Sendable {
    typealias Table = (locks: [KernelLock], malformed: [String])
    private let work: ThreadWork<Read>

    struct Read: @unchecked Sendable {
        var table: Table?
        var errno: Int32
        var seconds: Double
    }

    /// Reads and parses `path` on its own thread.
    init(path: String) {
        work = ThreadWork {
            let t0 = Sys.monotonicSeconds()
            guard let bytes = ProcFS.readBytes(path) else { return Read(table: nil, errno: errno, seconds: Sys.monotonicSeconds() - t0) }
            return Read(table: KernelLock.parseTable(bytes), errno: 0, seconds: Sys.monotonicSeconds() - t0)
        }
    }

    /// The parsed table (nil when unreadable), the errno of the failure, and the seconds spent.
    func wait() -> (Table?, Int32, Double) {
        let r = work.wait()
        return (r.table, r.errno, r.seconds)
    }
}

extension Array {
    /// Appends `other`'s elements; to an empty array, `other` itself (its buffer shared, no copy).
    mutating func append(shared other: [Element]) {
        if isEmpty { self = other } else if !other.isEmpty { self += other }
    }

    /// Puts `self[order[i]]` at `i` for every i, by swaps along the permutation's cycles
    /// (no element is copied: 100k images with a dozen references each).
    mutating func permute(to order: [Int]) {
        precondition(order.count == count)
        var done = [Bool](repeating: false, count: count)
        withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            for start in order.indices where !done[start] {
                done[start] = true
                guard order[start] != start else { continue }
                let first = (base + start).move()
                var i = start
                while order[i] != start {
                    (base + i).moveInitialize(from: base + order[i], count: 1)
                    i = order[i]
                    done[i] = true
                }
                (base + i).initialize(to: first)
            }
        }
    }
}
