// A scan: `Inspector.snapshot()` runs one `Scan`, in five phases, one file each:
//
//   1. KernelTable.swift     /proc/locks, read on a thread of its own (started first);
//      FocusedLocks.swift    focused, the focused files' rows from their holders' fdinfo
//                            instead, when that is the whole answer
//   2. LockDirsPhase.swift   the lock dirs and lease dirs (readdir), or a focused image's
//                            own lock files (lstat)
//   3. FDPass.swift          every process's fds (statx), then the holders among the fds on
//                            locked inodes (fdinfo)
//   4. MappingPhase.swift    candidate images, lock files mapped to them
//   5. AssemblyPhase.swift   locked files classified, `ImageLocks` assembled and ordered
//
// `ScanScope` says where a scan looks: the host (list, audit, watch, metrics, the TUI) or
// focused images (why). The snapshot is built once, at the end of `run()`.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// Where a scan looks.
enum ScanScope {
    /// Every lock on the host: the lock dirs listed, every process's fds, every image mapped.
    case host
    /// Only these images and their lock files (`why`): no lock-dir listing, no candidate
    /// mapping, and fdinfo read only where it can concern them.
    case focused([InspectorFocus])

    init(_ focus: [InspectorFocus]?) {
        self = focus.map(ScanScope.focused) ?? .host
    }

    var isHost: Bool {
        if case .host = self { return true }
        return false
    }
}

// MARK: - The scan

/// What a scan builds for itself, handed to `Parallel.release` when done.
struct ScanTables: @unchecked Sendable {
    var rowsByFile: [FileKey: [KernelLock]]
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
    let scope: ScanScope
    var procRoot: String { options.procRoot }
    var unseen: [Unseen] = []
    var details: [Int32: ProcessDetails?] = [:]
    var users: [UInt32: String?] = [:]
    var bootTime: Date?
    var serverLocks: [ServerLockFacts] = []
    /// The rows made of `serverLocks` (`serverLockRows`).
    var serverLockRows: [KernelLock] = []
    /// The audit's lstat of each lock file and lease file, under way (LockDirsPhase.swift).
    var lockFileStatuses: ThreadWork<([FileStatus?], [FileStatus?])>?
    /// Its result, once waited for (`lockFileStatusResult()`).
    var lockFileStatusesDone: ([FileStatus?], [FileStatus?])?
    /// The images QEMU's processes name in their arguments, read before the kernel's table
    /// is waited for (`readQemuArgImages`).
    var qemuArgImages: [(path: String, realPath: String)]?
    /// The audit's stat of the files under the --images dirs, under way (`ImageStatuses`).
    var imageStatuses: ImageStatuses?
    /// The QEMU processes `readQemuArgImages` found.
    var qemuPids: [Int32] = []
    /// Focused: every process's fds being read since before the scan (`OpenFilesPrefetch`).
    var openFilesAhead: OpenFilesPrefetch?

    init(options: InspectorOptions) {
        self.options = options
        self.scope = ScanScope(options.focus)
    }

    /// The lock files and lease files of phase 2, with their keys.
    struct LockFiles {
        var lockFiles: [LockFileEntry] = []
        var leaseFiles: [LockFileEntry] = []
        /// Each lock file by key (of hard links, the first in byte order).
        var keys: [FileKey: Int] = [:]
    }

    /// The kernel's rows of phase 1 (with the rows of files only their filesystem knows the
    /// locks of), by file (only the focused files' when focused).
    struct Rows {
        var byFile: [FileKey: [KernelLock]] = [:]
        /// Focused: the focused images by key.
        var focusedImages: [(key: FileKey, path: String)] = []
    }

    mutating func run(timings t: inout SnapshotTimings, table prefetched: KernelTableReader?) throws -> Snapshot {
        let t0 = Sys.monotonicSeconds()
        var isDir = false
        guard FileManager.default.fileExists(atPath: procRoot, isDirectory: &isDir), isDir else {
            throw InspectorError.procUnreadable(path: procRoot, errno: ENOENT)
        }
        // 1. The kernel's lock table, read on a second thread while the rest is scanned:
        // /proc/locks hands out at most a page per read() and walks the global lock list
        // from its start at every read (seq_hlist_start_percpu, under file_rwsem taken for
        // writing), so a big table costs kernel time quadratic in its size (~0.2 s for 55k
        // locks here).
        // Focused, the table is read only if the holders' fdinfo cannot be the whole answer
        // (FocusedLocks.swift).
        let holdersFirst = !scope.isHost && prefetched == nil && options.focusedLocks == .holdersFirst
        let table = holdersFirst ? nil : prefetched ?? KernelTableReader(path: procRoot + "/locks")
        // 2. Lock dirs and lease dirs (readdir only), and the candidate images named by
        // directories (walked and hashed), each on its own thread while /proc is scanned.
        let started = startLockDirectories()
        // 3. The processes, in two steps: every fd's target inode (one statx each, while
        // /proc/locks is still being read), then fdinfo only of the fds on a locked inode.
        var fds = startFDPass(holdersFirst: holdersFirst, timings: &t)
        var files = finishLockDirectories(started, timings: &t)
        // What needs none of the table's rows is done before it is waited for (the first
        // read after idle waits for an RCU grace period: this thread would only wait).
        if scope.isHost && needPaths(files) { qemuArgImages = readQemuArgImages(pids: fds.pids) }
        let early = table.flatMap { startEarlyMapping(started, files: files, table: $0) }
        if scope.isHost { readLikelyHolders(fds, files: files) }
        let shared = scope.isHost && fds.live ? sharedFiles(fds) : nil
        let rows: Rows
        if holdersFirst, let fromHolders = holdersRows(&fds, files: files) {
            rows = fromHolders
            t.kernelTableRead = false
        } else {
            rows = try readKernelTable(table ?? KernelTableReader(path: procRoot + "/locks"), shared: shared, files: files, timings: &t)
        }
        let procs = findHolders(rows, fds: fds, files: &files, timings: &t)
        let fdCount = fds.fds.count
        // The fd list is freed now, not after assembly (the peak).
        Parallel.release(consume fds, entries: fdCount)
        // 4 and 5. Classify the locked files, map lock files to images, assemble.
        let t3 = Sys.monotonicSeconds()
        let (images, writers) = mapAndAssemble(rows, files: &files, procs: procs, imageDirs: started.imageDirs, early: early, timings: &t)
        t.mapping = Sys.monotonicSeconds() - t3
        // The scan's own tables (100k entries each on a big host) are freed off the caller's path.
        Parallel.release(ScanTables(rowsByFile: rows.byFile, procs: procs,
                                    candidates: images.candidates, lockFileKeys: files.keys),
                         entries: rows.byFile.count + files.keys.count + procs.openPaths.count)
        applyLockFileStatuses(&files)
        t.total = Sys.monotonicSeconds() - t0
        t.processCount = procs.pids.count
        let allLockFiles = files.leaseFiles.isEmpty ? files.lockFiles : files.lockFiles + files.leaseFiles
        var snapshot = Snapshot(host: Sys.hostName, generated: Date(), images: images.images,
                                lockFiles: allLockFiles, unseen: unseen, writers: writers)
        snapshot.serverLocks = serverLocks
        return snapshot
    }

    /// The focused files' keys: the images' (each also put in `rows.focusedImages`), their
    /// lock files' and lease files'.
    func focusedKeys(_ focus: [InspectorFocus], files: LockFiles, into rows: inout Rows) -> Set<FileKey> {
        var keys = Set<FileKey>()
        for f in focus {
            guard case .success(let st) = Sys.stat(f.image) else { continue }
            let k = FileKey(device: st.deviceID, inode: st.inode)
            rows.focusedImages.append((k, f.image))
            keys.insert(k)
        }
        for lf in files.lockFiles + files.leaseFiles { keys.insert(FileKey(device: lf.device, inode: lf.inode)) }
        return keys
    }

    /// Whether phase 3 reads the paths of open files (candidate images for mapping lock files).
    func needPaths(_ files: LockFiles) -> Bool {
        scope.isHost && (!files.lockFiles.isEmpty || !files.leaseFiles.isEmpty)
    }

    /// Phase 1's result: the parsed rows, with the server-lock rows of the host's files on
    /// FUSE, NFS... and the malformed lines noted; by file, restricted to the focused files.
    mutating func readKernelTable(_ table: KernelTableReader, shared: SharedFiles?, files: LockFiles,
                                  timings t: inout SnapshotTimings) throws -> Rows {
        let (parsed, readErrno, readTime, early) = table.wait()
        (t.kernelLocks, t.kernelLocksReadEarly) = (readTime, early)
        guard let parsed else {
            throw InspectorError.procUnreadable(path: procRoot + "/locks", errno: readErrno == 0 ? ENOENT : readErrno)
        }
        var out = Rows()
        // Every row, only until they are put by file (then freed: 8 MB at 100k).
        var all = parsed.locks
        if let shared {
            // Files on FUSE, NFS... (found while the table was read): their locks are asked of
            // the filesystem (F_GETLK) and those of local processes with the file open join
            // the kernel's rows.
            let (server, facts) = serverLockRows(shared, kernel: all)
            // (Only when there are any: appending, even nothing, copies the parsed table's rows.)
            if !server.isEmpty { all += server }
            (serverLocks, serverLockRows) = (facts, server)
        }
        for line in parsed.malformed {
            unseen.append(Unseen(what: "\(procRoot)/locks line \"\(line)\"", why: "not in the kernel's format"))
        }
        if case .focused(let focus) = scope {
            // Only the focused files matter (the images are images by definition): only
            // their rows are put by file, not the host's thousands.
            let keys = focusedKeys(focus, files: files, into: &out)
            for r in all { if let k = r.fileKey, keys.contains(k) { out.byFile[k, default: []].append(r) } }
        } else {
            out.byFile.reserveCapacity(all.count)
            for r in all { if let k = r.fileKey { out.byFile[k, default: []].append(r) } }
        }
        return out
    }
}

