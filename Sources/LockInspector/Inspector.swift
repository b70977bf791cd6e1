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

/// A file by device and inode, as /proc/locks names it.
struct FileKey: Hashable, Comparable {
    var device: DeviceID?
    var inode: UInt64
    static func < (a: FileKey, b: FileKey) -> Bool {
        (a.device?.major ?? 0, a.device?.minor ?? 0, a.inode) < (b.device?.major ?? 0, b.device?.minor ?? 0, b.inode)
    }
    var text: String { "\(device?.description ?? "?"):\(inode)" }
}

extension KernelLock {
    var fileKey: FileKey? { inode.map { FileKey(device: device, inode: $0) } }
    /// The lock without its ID and pid: how a /proc/locks row and an fdinfo line match.
    var shape: LockShape { LockShape(kind: kind, type: type, device: device, inode: inode ?? 0, start: start, end: end) }
    /// QEMU's signature: a read lock within bytes 100-104 or 200-204 (FACTS.md §2).
    var isQemuByteLock: Bool {
        guard type == "READ", let e = end else { return false }
        return (start >= 100 && e <= 104) || (start >= 200 && e <= 204)
    }
    /// virtlockd's lock: byte 0, length 1 (FACTS.md §5).
    var isByteZero: Bool { start == 0 && end == 0 }
}

/// A lock without its ID and pid.
struct LockShape: Hashable {
    var kind: String
    var type: String
    var device: DeviceID?
    var inode: UInt64
    var start: Int64
    var end: Int64?
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

    init(options: InspectorOptions) {
        self.options = options
    }

    mutating func run(timings t: inout SnapshotTimings, table prefetched: KernelTableReader?) throws -> Snapshot {
        let t0 = now()
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

        // 2. Lock dirs and lease dirs: readdir only; the dir's device plus d_ino is the key.
        let t1 = now()
        var lockFiles: [LockFileEntry] = []
        var leaseFiles: [LockFileEntry] = []
        if let focus = options.focus {
            (lockFiles, leaseFiles) = focusedFiles(focus)
        } else {
            for dir in options.lockDirectories { lockFiles += scanLockDirectory(dir) }
            for dir in options.leaseDirectories { leaseFiles += scanLeaseDirectory(dir) }
        }
        t.lockDirectories = now() - t1

        // 3. The processes, in two steps: every fd's target inode (one statx each, while
        // /proc/locks is still being read), then fdinfo only of the fds on a locked inode.
        // Focused (`why`): the kernel's rows on the focused files first; no row, no scan;
        // only POSIX rows, only their pids.
        let t2 = now()
        bootTime = ProcessDetails.bootTime(procRoot: procRoot)
        let needPaths = options.focus == nil && (!lockFiles.isEmpty || !leaseFiles.isEmpty)
        var fds = FDPass()
        var searchOrder: [Int32]?
        if let focus = options.focus {
            // Focused: when an fcntl probe finds a lock on a focused file, order the
            // processes for the holder search while the table is read.
            let files = focus.map(\.image) + lockFiles.map(\.path) + leaseFiles.map(\.path)
            if files.contains(where: { SystemReads.hasFcntlLock($0) }) { searchOrder = qemuFirst() }
        } else {
            fds = listOpenFiles(pids: ProcFS.pids(procRoot: procRoot), timings: &t)
        }
        t.processes = now() - t2

        let (parsed, readErrno, readTime) = table.wait()
        t.kernelLocks = readTime
        guard let parsed else {
            throw InspectorError.procUnreadable(path: procRoot + "/locks", errno: readErrno == 0 ? ENOENT : readErrno)
        }
        let rows = parsed.locks
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
                guard case .success(let st) = SystemReads.status(f.image) else { continue }
                let k = FileKey(device: st.device, inode: st.inode)
                candidates.imageFiles[k] = f.image
                keep[k] = rowsByFile[k]
            }
            for lf in lockFiles + leaseFiles {
                let k = FileKey(device: lf.device, inode: lf.inode)
                keep[k] = rowsByFile[k]
            }
            rowsByFile = keep.filter { !$0.value.isEmpty }
        }
        let t2b = now()
        let held = rowsByFile.values.joined().filter { !$0.isWaiter }
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
        let lockFileKeys = Dictionary(lockFiles.map { (FileKey(device: $0.device, inode: $0.inode), $0.path) },
                                      uniquingKeysWith: { a, _ in a })
        var locked: [UInt64: [KernelLock]] = [:]
        for r in held { if let i = r.inode { locked[i, default: []].append(r) } }
        var procs = readHolders(fds, locked: locked, lockFilePaths: lockFileKeys, paths: needPaths,
                                writers: options.findWriters && options.focus == nil, timings: &t)
        // An OFD lock that no fd on its inode lists (a /proc copy whose fd links mislead,
        // a filesystem whose st_ino differs from the kernel's lock inode): read every
        // fdinfo after all, as the kernel's own lists are the ground truth.
        if fds.live && procs.hidden.isEmpty && held.contains(where: { $0.pid == nil && procs.shapes[$0.shape] == nil }) {
            procs = readHolders(fds, locked: nil, lockFilePaths: lockFileKeys, paths: needPaths,
                                writers: options.findWriters && options.focus == nil, timings: &t)
        }
        t.processes += now() - t2b
        for i in lockFiles.indices {
            lockFiles[i].held = rowsByFile[FileKey(device: lockFiles[i].device, inode: lockFiles[i].inode)]?
                .contains { !$0.isWaiter } ?? false
        }
        for i in leaseFiles.indices {
            leaseFiles[i].held = rowsByFile[FileKey(device: leaseFiles[i].device, inode: leaseFiles[i].inode)]?
                .contains { !$0.isWaiter } ?? false
        }

        // 4. Classify the locked files, map lock files to images, assemble.
        let t3 = now()
        if needPaths {
            candidates = buildCandidates(openPaths: procs.openPaths, pids: procs.pids)
        }
        // A held lock file whose key the kernel did not list under the dir's device
        // (btrfs subvolumes, overlayfs) is still found through its holder's fd link.
        let lockFileByPath = procs.keyByLink.isEmpty ? [:]
            : Dictionary(lockFiles.indices.map { (lockFiles[$0].path, $0) }, uniquingKeysWith: { a, _ in a })
        for (link, k) in procs.keyByLink {
            if let i = lockFileByPath[link], !lockFiles[i].held {
                lockFiles[i].held = true
                lockFiles[i].device = k.device
            }
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
        let images = assemble(rows: rows, rowsByFile: rowsByFile, lockFiles: lockFiles, leaseFiles: leaseFiles,
                              procs: procs, candidates: candidates)
        let writers = imageWriters(procs.writeOpens, images: images, lockFiles: lockFiles + leaseFiles,
                                   candidates: needPaths ? candidates : nil)
        t.mapping = now() - t3
        t.total = now() - t0
        return Snapshot(host: SystemReads.hostName, generated: Date(), images: images,
                        lockFiles: lockFiles + leaseFiles, unseen: unseen, writers: writers)
    }

    // MARK: Lock dirs

    /// `.qemu-*.lock` entries of one lock dir; nothing is opened or stat'ed per entry
    /// unless the filesystem gives no d_type.
    mutating func scanLockDirectory(_ dir: String) -> [LockFileEntry] {
        scanDirectory(dir, label: "lock dir") { name in
            // ".qemu-" ... ".lock"
            var p = name
            for c in ".qemu-".utf8 {
                guard p.pointee == CChar(bitPattern: c) else { return false }
                p += 1
            }
            let n = strlen(name)
            return n > 11 && strcmp(name + n - 5, ".lock") == 0
        }
    }

    /// virtlockd lease files: 64 hex digits.
    mutating func scanLeaseDirectory(_ dir: String) -> [LockFileEntry] {
        var isDir = ObjCBool(false)
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else { return [] }
        return scanDirectory(dir, label: "virtlockd lease dir") { name in strlen(name) == 64 }
    }

    mutating func scanDirectory(_ dir: String, label: String,
                                keep: (UnsafePointer<CChar>) -> Bool) -> [LockFileEntry] {
        let device: DeviceID
        switch SystemReads.status(dir) {
        case .success(let s) where s.kind == .directory: device = s.device
        case .success(let s):
            unseen.append(Unseen(what: "\(label) \(dir)", why: "is a \(s.kind.rawValue), not a directory"))
            return []
        case .failure(let e):
            unseen.append(Unseen(what: "\(label) \(dir)", why: e.text))
            return []
        }
        let entries: [DirEntry]
        switch SystemReads.entries(dir, where: keep) {
        case .success(let e): entries = e
        case .failure(let e):
            unseen.append(Unseen(what: "\(label) \(dir)", why: e.text))
            return []
        }
        let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
        return ByteOrder.sortedIndices(entries.map(\.name)).map { entries[$0] }.map { e in
            let path = base + "/" + e.name
            var kind = e.kind
            var dev = device
            var inode = e.inode
            if kind == nil, case .success(let s) = SystemReads.lstatus(path) {
                kind = s.kind
                dev = s.device
                inode = s.inode
            }
            return LockFileEntry(path: path, kind: kind ?? .unknown, device: dev, inode: inode, held: false)
        }
    }

    /// The focused images' lock files and lease files, by lstat of their exact names
    /// (no directory listing); each is mapped to its image by name.
    mutating func focusedFiles(_ focus: [InspectorFocus]) -> (lockFiles: [LockFileEntry], leaseFiles: [LockFileEntry]) {
        func entry(_ path: String, image: String) -> LockFileEntry? {
            guard case .success(let s) = SystemReads.lstatus(path) else { return nil }
            var e = LockFileEntry(path: path, kind: s.kind, device: s.device, inode: s.inode, held: false)
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
        var shapes: [LockShape: Int] = [:]
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
        let live = SystemReads.isLiveProc(procRoot)
        out.live = live
        let root = procRoot
        // Per chunk of pids: their fds, and the pids whose fd dir could not be listed.
        let parts = Parallel.chunks(pids.count, chunk: 32) { range -> [(fds: [OpenFD], failed: [(Int32, ReadFailure)])] in
            var fds: [OpenFD] = []
            var failed: [(Int32, ReadFailure)] = []
            var buffer = [UInt8](repeating: 0, count: 16384)
            for pid in pids[range] {
                let failure = live ? SystemReads.openFiles(procRoot: root, pid: pid, into: &fds)
                    : SystemReads.openFilesFromFDInfo(procRoot: root, pid: pid, buffer: &buffer, into: &fds)
                if let e = failure { failed.append((pid, e)) }
            }
            return [(fds, failed)]
        }
        out.fds.reserveCapacity(parts.reduce(0) { $0 + $1.fds.count })
        for part in parts {
            out.fds += part.fds
            for (pid, e) in part.failed {
                if e.errno == ENOENT || e.errno == ESRCH { continue }  // gone since /proc was listed
                let d = process(pid)
                // Kernel threads (empty cmdline) open no files: nothing is missed there.
                if let d, d.args.isEmpty { continue }
                out.hidden.insert(pid)
                let command = d.map { " (\($0.command))" } ?? ""
                unseen.append(Unseen(what: "open files of pid \(pid)\(command)", why: "\(procRoot)/\(pid)/fd: \(e.text)"))
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
        var need: [LockShape: Int] = [:]
        for r in held where r.pid == nil { need[r.shape, default: 0] += 1 }
        let inodes = Set(held.compactMap(\.inode))
        var pass = FDPass()
        pass.live = SystemReads.isLiveProc(procRoot)
        var have: [LockShape: Int] = [:]
        var descriptions: [(pid: Int32, fd: Int32, shapes: Set<LockShape>)] = []
        var exact = pass.live
        var buffer = [UInt8](repeating: 0, count: 16384)
        let firstSet = Set(first)
        var done = false
        for pid in first + order.filter({ !firstSet.contains($0) }) {
            if done && !firstSet.contains(pid) { break }
            let part = listOpenFiles(pids: [pid], timings: &t)
            pass.pids.append(pid)
            pass.fds += part.fds
            pass.hidden.formUnion(part.hidden)
            for f in part.fds where inodes.contains(f.inode) && f.info == nil {
                guard let info = SystemReads.fdInfo(procRoot: procRoot, pid: f.pid, fd: f.fd, buffer: &buffer) else { continue }
                let shapes = Set(info.locks.filter { $0.isOFD }.map(\.shape)).filter { need[$0] != nil }
                guard !shapes.isEmpty else { continue }
                var known = false
                for d in descriptions where !d.shapes.isDisjoint(with: shapes) {
                    switch SystemReads.sameOpenFile((d.pid, d.fd), (f.pid, f.fd)) {
                    case true?: known = true
                    case false?: break
                    case nil: exact = false
                    }
                    if known { break }
                }
                if known { continue }
                descriptions.append((f.pid, f.fd, shapes))
                for s in shapes { have[s, default: 0] += 1 }
            }
            if exact && !done && need.allSatisfy({ have[$0.key, default: 0] >= $0.value }) { done = true }
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
    mutating func readHolders(_ pass: FDPass, locked: [UInt64: [KernelLock]]?, lockFilePaths: [FileKey: String],
                              paths: Bool, writers: Bool, timings t: inout SnapshotTimings) -> ProcessScan {
        var out = ProcessScan()
        out.pids = pass.pids
        out.hidden = pass.hidden
        let root = procRoot
        let findings = Parallel.chunks(pass.fds.count, chunk: 256) { range -> [FDFinding] in
            var buffer = [UInt8](repeating: 0, count: 16384)
            var found: [FDFinding] = []
            for i in range {
                if let f = Scan.examine(pass.fds[i], procRoot: root, locked: locked, lockFilePaths: lockFilePaths,
                                        paths: paths, writers: writers, buffer: &buffer) { found.append(f) }
            }
            return found
        }
        for f in findings {
            if f.fdinfoRead { t.fdinfoReads += 1 }
            if let w = f.writeOpen { out.writeOpens.append(w) }
            if f.candidate, let l = f.link, out.openPaths[l] == nil { out.openPaths[l] = f.fd.pid }
            guard let key = f.locks.first?.fileKey, let link = f.link else { continue }
            out.byFile[key, default: []].append(OpenFileLocks(pid: f.fd.pid, fd: f.fd.fd, link: link, flags: f.flags, locks: f.locks))
            for l in f.locks { out.shapes[l.shape, default: 0] += 1 }
            if f.fd.device == nil || FileKey(device: f.fd.device, inode: f.fd.inode) != key { out.keyByLink[link] = key }
        }
        return out
    }

    /// Step two for one fd; nil when it is neither a holder nor a candidate image.
    static func examine(_ f: OpenFD, procRoot: String, locked: [UInt64: [KernelLock]]?, lockFilePaths: [FileKey: String],
                        paths: Bool, writers: Bool, buffer: inout [UInt8]) -> FDFinding? {
        var out = FDFinding(fd: f)
        let lockFile = f.device.flatMap { lockFilePaths[FileKey(device: $0, inode: f.inode)] }
        if paths && lockFile == nil && (f.kind == nil || f.kind == .regular || f.kind == .blockDevice) {
            out.link = SystemReads.readLink("\(procRoot)/\(f.pid)/fd/\(f.fd)")
            out.candidate = out.link?.hasPrefix("/") ?? false
        }
        if let i = f.info {
            (out.flags, out.locks) = (i.flags, i.locks)
        } else if let rows = locked?[f.inode], let dev = f.device, rows.allSatisfy({ $0.kind == "POSIX" && $0.device == dev }) {
            let own = rows.filter { $0.pid == f.pid }
            if !own.isEmpty, let mode = SystemReads.fdOpenFlags(procRoot: procRoot, pid: f.pid, fd: f.fd) {
                (out.flags, out.locks) = (mode, own)
            }
        } else if locked == nil || locked?[f.inode] != nil {
            out.fdinfoRead = true
            if let i = SystemReads.fdInfo(procRoot: procRoot, pid: f.pid, fd: f.fd, buffer: &buffer) {
                (out.flags, out.locks) = (i.flags, i.locks)
            }
        }
        if out.locks.first?.fileKey != nil && out.link == nil {
            out.link = lockFile ?? SystemReads.readLink("\(procRoot)/\(f.pid)/fd/\(f.fd)")
        }
        if !(out.link?.hasPrefix("/") ?? false) { out.locks = [] }
        // Open for writing on something that may be an image: for the audit's writer rules.
        if writers, lockFile == nil, f.kind == nil || f.kind == .regular || f.kind == .blockDevice,
           let flags = f.info?.flags ?? SystemReads.fdOpenFlags(procRoot: procRoot, pid: f.pid, fd: f.fd), flags & 3 != 0 {
            if out.link == nil { out.link = SystemReads.readLink("\(procRoot)/\(f.pid)/fd/\(f.fd)") }
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
    }

    struct Candidates {
        /// By the SHA-1 of the realpath (the lockfile scheme's name), first come first kept.
        var bySHA1: [SHA1Digest: Candidate] = [:]
        /// Every candidate as written, in order: virtlockd names lease files by the SHA-256
        /// of the path as the domain XML writes it, without canonicalising. Hashed only when
        /// there are lease files (`bySHA256()`).
        var written: [Candidate] = []
        /// Files under --images, by key (for locks on them that fit no other scheme).
        var imageFiles: [FileKey: String] = [:]
        /// Realpaths named as images by --images dirs, libvirt XML or QEMU args (not merely open).
        var named: Set<String> = []

        mutating func add(_ path: String, source: String, realPath: String? = nil, sha1: SHA1Digest? = nil) {
            let real = realPath ?? path
            if source != "open file" { named.insert(real) }
            let h1 = sha1 ?? Digest.sha1(real)
            if bySHA1[h1] == nil { bySHA1[h1] = Candidate(path: real, source: source) }
            written.append(Candidate(path: path, source: source))
        }

        mutating func reserve(_ n: Int) {
            bySHA1.reserveCapacity(bySHA1.count + n)
            imageFiles.reserveCapacity(imageFiles.count + n)
            written.reserveCapacity(written.count + n)
        }

        func bySHA256() -> [String: Candidate] {
            var out: [String: Candidate] = [:]
            for c in written {
                let h = Digest.sha256Hex(c.path)
                if out[h] == nil { out[h] = c }
            }
            return out
        }
    }

    /// Candidate images, in the order of trust: open files, --images dirs, libvirt XML, QEMU args.
    mutating func buildCandidates(openPaths: [String: Int32], pids: [Int32]) -> Candidates {
        var c = Candidates()
        let deleted = " (deleted)"
        // Open lock files are not images: hashing them (100k on a busy host) buys nothing.
        for path in openPaths.keys.sorted() where !path.hasSuffix(deleted) && !path.hasSuffix(".lock") {
            c.add(path, source: "open file")
        }
        for dir in options.imageDirectories {
            guard let real = SystemReads.realPath(dir) else {
                unseen.append(Unseen(what: "images dir \(dir)", why: String(cString: strerror(errno))))
                continue
            }
            let dev: DeviceID? = {
                if case .success(let s) = SystemReads.status(real) { return s.device }
                return nil
            }()
            // Walk first, then hash on every core (100k paths is ~50 ms of SHA-1 on one).
            var walked: [ImageDirEntry] = []
            walkImages(real, depth: 0, device: dev, into: &walked)
            let found = walked
            c.reserve(found.count)
            let digests = Parallel.chunks(found.count, chunk: 4096) { range in range.map { Digest.sha1(found[$0].path) } }
            for (e, d) in zip(found, digests) {
                c.add(e.path, source: "images dir", sha1: d)
                if let k = e.key { c.imageFiles[k] = e.path }
            }
        }
        for dir in options.libvirtDirectories {
            guard case .success(let entries) = SystemReads.entries(dir) else { continue }
            for e in entries where e.name.hasSuffix(".xml") {
                let path = dir + "/" + e.name
                guard case .success(let bytes) = SystemReads.readRegularFile(path, limit: 1 << 20) else {
                    unseen.append(Unseen(what: "libvirt domain \(path)", why: "cannot be read"))
                    continue
                }
                for src in LibvirtXML.diskSources(String(decoding: bytes, as: UTF8.self)) where src.hasPrefix("/") {
                    c.add(src, source: "libvirt", realPath: SystemReads.realPath(src) ?? src)
                }
            }
        }
        for pid in pids {
            guard let bytes = SystemReads.readProcBytes("\(procRoot)/\(pid)/cmdline") else { continue }
            let args = ProcessDetails.splitCmdline(bytes)
            guard QemuArgs.isQemu(args) else { continue }
            let cwd = SystemReads.readLink("\(procRoot)/\(pid)/cwd")
            for p in QemuArgs.filePaths(args) {
                let abs = p.hasPrefix("/") ? p : cwd.map { $0 + "/" + p }
                if let a = abs { c.add(a, source: "qemu args", realPath: SystemReads.realPath(a) ?? a) }
            }
        }
        return c
    }

    /// A file found under an --images dir: its path (symlinks resolved) and, for a file
    /// itself (not a link), its key.
    struct ImageDirEntry: Sendable {
        var path: String
        var key: FileKey?
    }

    mutating func walkImages(_ dir: String, depth: Int, device: DeviceID?, into found: inout [ImageDirEntry]) {
        switch SystemReads.entries(dir) {
        case .failure(let e):
            unseen.append(Unseen(what: "images dir \(dir)", why: e.text))
        case .success(let entries):
            for i in ByteOrder.sortedIndices(entries.map(\.name)) {
                let e = entries[i]
                let path = (dir == "/" ? "" : dir) + "/" + e.name
                switch e.kind {
                case .regular?, .blockDevice?:
                    found.append(ImageDirEntry(path: path, key: FileKey(device: device, inode: e.inode)))
                case .symlink?:
                    if let real = SystemReads.realPath(path) { found.append(ImageDirEntry(path: real, key: nil)) }
                case .directory? where depth < 3 && !e.name.hasPrefix("."):
                    walkImages(path, depth: depth + 1, device: device, into: &found)
                default:
                    break
                }
            }
        }
    }

    // MARK: Lock-file mapping

    /// Names each lock file's image: a candidate whose SHA-1 is in the name (no file opened);
    /// else the realpath written inside, trusted only when its SHA-1 matches the name.
    mutating func mapLockFiles(_ files: inout [LockFileEntry], candidates: Candidates,
                               rowsByFile: [FileKey: [KernelLock]], timings t: inout SnapshotTimings) {
        for i in files.indices {
            // `.qemu-` + 40 hex digits + `.lock`, at the end of the path.
            var path = files[i].path
            guard let digest = path.withUTF8({ p -> SHA1Digest? in
                // The name is exactly 51 bytes (`.qemu-` + 40 + `.lock`).
                guard p.count == 51 || (p.count > 51 && p[p.count - 52] == UInt8(ascii: "/")) else { return nil }
                return SHA1Digest(hex: UnsafeBufferPointer(rebasing: p[(p.count - 45)..<(p.count - 5)]))
            }) else { continue }
            let hex = digest.hex
            if let c = candidates.bySHA1[digest] {
                files[i].image = c.path
                files[i].mappedBy = c.source
                continue
            }
            guard files[i].kind == .regular else { continue }
            // Opening a file with a lease would start breaking the lease: leave it alone.
            if let rows = rowsByFile[FileKey(device: files[i].device, inode: files[i].inode)],
               rows.contains(where: { $0.kind == "LEASE" || $0.kind == "DELEG" }) { continue }
            t.contentReads += 1
            switch SystemReads.readRegularFile(files[i].path, limit: 4097) {
            case .success(let bytes):
                guard !bytes.isEmpty, bytes.count <= 4096 else { continue }
                var line = bytes[...]
                if let nl = line.firstIndex(of: 10) { line = line[..<nl] }
                if Digest.sha1Hex(Array(line)) == hex {
                    files[i].image = String(decoding: line, as: UTF8.self)
                    files[i].mappedBy = "content"
                }
            case .failure(let e) where e.errno == ENOENT:
                break  // removed since the dir was read
            case .failure(let e):
                unseen.append(Unseen(what: "content of lock file \(files[i].path)", why: e.text))
            }
        }
    }

    // MARK: Assembly

    /// Which scheme a locked file belongs to, if any.
    func classify(_ key: FileKey, rows: [KernelLock], holders: [OpenFileLocks], lockFileKeys: [FileKey: Int],
                  leaseKeys: [FileKey: Int], candidates: Candidates) -> LockScheme? {
        if lockFileKeys[key] != nil { return .lockfile }
        if leaseKeys[key] != nil { return .virtlockd }
        if rows.contains(where: \.isQemuByteLock) || holders.contains(where: { $0.locks.contains(where: \.isQemuByteLock) }) {
            return .qemu
        }
        if rows.contains(where: { $0.isByteZero && $0.kind == "POSIX" }) {
            let byVirtlockd = rows.contains { r in
                r.isByteZero && r.pid.flatMap { details[$0] ?? nil }?.command == "virtlockd"
            }
            if byVirtlockd || candidates.imageFiles[key] != nil { return .virtlockd }
        }
        if candidates.imageFiles[key] != nil { return .qemu }
        return nil
    }

    mutating func assemble(rows: [KernelLock], rowsByFile: [FileKey: [KernelLock]], lockFiles: [LockFileEntry],
                           leaseFiles: [LockFileEntry], procs: ProcessScan, candidates: Candidates) -> [ImageLocks] {
        var lockFileKeys: [FileKey: Int] = [:]
        lockFileKeys.reserveCapacity(lockFiles.count)
        for i in lockFiles.indices where lockFiles[i].kind == .regular {
            lockFileKeys[FileKey(device: lockFiles[i].device, inode: lockFiles[i].inode)] = i
        }
        // Lock files found only through a holder's fd link (device mismatch).
        if !procs.keyByLink.isEmpty {
            let byPath = Dictionary(lockFiles.indices.map { (lockFiles[$0].path, $0) }, uniquingKeysWith: { a, _ in a })
            for (link, k) in procs.keyByLink { if let i = byPath[link] { lockFileKeys[k] = i } }
        }
        var leaseKeys: [FileKey: Int] = [:]
        for (i, f) in leaseFiles.enumerated() where f.kind == .regular {
            leaseKeys[FileKey(device: f.device, inode: f.inode)] = i
        }

        // Names of POSIX byte-0 holders are needed to recognise virtlockd.
        for r in rows where r.isByteZero && r.kind == "POSIX" { if let p = r.pid { _ = process(p) } }

        // The images in order of first sight, and where each id is (no copies of the values).
        var images: [ImageLocks] = []
        images.reserveCapacity(lockFiles.count + rowsByFile.count)
        var byID: [String: Int] = [:]
        byID.reserveCapacity(lockFiles.count + rowsByFile.count)
        func slot(_ id: String, path: String?) -> Int {
            if let i = byID[id] { return i }
            images.append(ImageLocks(id: id, path: path, schemes: []))
            byID[id] = images.count - 1
            return images.count - 1
        }

        // Lock files first: every one is listed, held or not.
        var lockFileImageID = [Int?](repeating: nil, count: lockFiles.count)
        for i in lockFiles.indices where lockFiles[i].kind == .regular {
            let id = slot(lockFiles[i].image ?? lockFiles[i].path, path: lockFiles[i].image)
            images[id].lockFiles.append(lockFiles[i].path)
            if !images[id].schemes.contains(.lockfile) { images[id].schemes.append(.lockfile) }
            lockFileImageID[i] = id
        }
        var leaseImageID: [Int: Int] = [:]
        for i in leaseFiles.indices where leaseFiles[i].kind == .regular && leaseFiles[i].held {
            let id = slot(leaseFiles[i].image ?? leaseFiles[i].path, path: leaseFiles[i].image)
            images[id].lockFiles.append(leaseFiles[i].path)
            if !images[id].schemes.contains(.virtlockd) { images[id].schemes.append(.virtlockd) }
            leaseImageID[i] = id
        }

        for key in rowsByFile.keys.sorted() {
            let fileRows = rowsByFile[key]!
            let openFiles = procs.byFile[key] ?? []
            guard let scheme = classify(key, rows: fileRows, holders: openFiles, lockFileKeys: lockFileKeys,
                                        leaseKeys: leaseKeys, candidates: candidates) else { continue }
            let id: Int
            switch scheme {
            case .lockfile: id = lockFileImageID[lockFileKeys[key]!] ?? slot(lockFiles[lockFileKeys[key]!].path, path: nil)
            case .virtlockd where leaseKeys[key] != nil:
                id = leaseImageID[leaseKeys[key]!] ?? slot(leaseFiles[leaseKeys[key]!].path, path: nil)
            default:
                let path = openFiles.lazy.compactMap(\.link).first ?? candidates.imageFiles[key]
                id = slot(path ?? key.text, path: path)
                if images[id].inode == nil {
                    images[id].device = key.device
                    images[id].inode = key.inode
                }
            }
            if !images[id].schemes.contains(scheme) { images[id].schemes.append(scheme) }
            images[id].locks += fileRows
            let (holders, waiters) = self.holders(of: key, scheme: scheme, rows: fileRows, openFiles: openFiles, procs: procs)
            images[id].holders += holders
            images[id].waiters += waiters
        }

        for i in images.indices {
            if images[i].locks.count > 1 {
                images[i].locks.sort { $0.id < $1.id || ($0.id == $1.id && !$0.isWaiter && $1.isWaiter) }
            }
            if images[i].holders.count > 1 { images[i].holders.sort { ($0.pid, $0.fd ?? -1) < ($1.pid, $1.fd ?? -1) } }
            if images[i].schemes.count > 1 {
                images[i].schemes.sort { LockScheme.allCases.firstIndex(of: $0)! < LockScheme.allCases.firstIndex(of: $1)! }
            }
        }
        // Known paths sorted, then unknown images by id (byte order: indices, not 100k moves).
        let known = images.indices.filter { images[$0].path != nil }
        let unknown = images.indices.filter { images[$0].path == nil }
        let order = ByteOrder.sortedIndices(known.map { images[$0].path! }).map { known[$0] }
            + ByteOrder.sortedIndices(unknown.map { images[$0].id }).map { unknown[$0] }
        images = order.map { images[$0] }
        return images
    }

    /// The holders of the locks on one file: each fd whose fdinfo lists them (exact, also
    /// for OFD locks), then POSIX locks no fdinfo named, by the pid /proc/locks gives.
    mutating func holders(of key: FileKey, scheme: LockScheme, rows: [KernelLock], openFiles: [OpenFileLocks],
                          procs: ProcessScan) -> (holders: [Holder], waiters: [Holder]) {
        var holders: [Holder] = []
        struct PidShape: Hashable {
            var pid: Int32
            var shape: LockShape
        }
        var namedPosix = Set<PidShape>()
        for of in openFiles {
            holders.append(makeHolder(pid: of.pid, fd: of.fd, openMode: OpenMode(flags: of.flags),
                                      locks: of.locks, scheme: scheme))
            for l in of.locks where l.kind == "POSIX" { namedPosix.insert(PidShape(pid: of.pid, shape: l.shape)) }
        }
        var posixOnly: [Int32: [KernelLock]] = [:]
        for r in rows where !r.isWaiter {
            if let pid = r.pid, r.kind == "POSIX" || procs.shapes[r.shape] == nil {
                if !namedPosix.contains(PidShape(pid: pid, shape: r.shape)) { posixOnly[pid, default: []].append(r) }
            } else if procs.shapes[r.shape] == nil {
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
        let type: LockType? = locks.contains { $0.type == "WRITE" } ? .write : locks.contains { $0.type == "READ" } ? .read : nil
        // Only QEMU's own byte locks say which permissions a user holds: a whole-file lock
        // or an flock(2) lock on an image is no QEMU user (why still counts the fcntl ones).
        var qemu: QemuPermissions?
        if scheme == .qemu {
            let byteLocks = locks.filter { $0.isFcntlLock && $0.isQemuByteLock }
            if !byteLocks.isEmpty { qemu = QemuPermissions(lockedRanges: byteLocks.map { (start: $0.start, end: $0.end) }) }
        }
        return Holder(pid: pid, command: d?.command ?? "?", args: d?.args ?? [], user: d?.user, uid: d?.uid,
                      started: d?.started, fd: fd, openMode: openMode, vm: d?.vm, scheme: scheme, lockType: type,
                      qemu: qemu)
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
final class KernelTableReader: @unchecked Sendable {
    typealias Table = (locks: [KernelLock], malformed: [String])
    private let group = DispatchGroup()
    private var table: Table?
    private var errno_: Int32 = 0
    private var seconds: Double = 0

    /// Reads and parses `path` on its own thread.
    init(path: String) {
        group.enter()
        let thread = Thread { [self] in
            let t0 = now()
            if let bytes = ProcFS.readBytes(path) { table = KernelLock.parseTable(bytes) } else { errno_ = errno }
            seconds = now() - t0
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The parsed table (nil when unreadable), the errno of the failure, and the seconds spent.
    func wait() -> (Table?, Int32, Double) {
        group.wait()
        return (table, errno_, seconds)
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
