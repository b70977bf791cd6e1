// Phase 3 of a scan (Scan.swift): the fd pass. Every process's fds and the inode each
// refers to (statx, `HolderSearch.openFiles`), then the holders among the fds on a locked
// inode, named exactly by their fdinfo `lock:` lines (`KernelLock.Identity`): on the host and
// for focused images alike (a focused scan then looks at the focused files' fds only).
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

extension Scan {
    /// Step one, started while the kernel's table is read (when it is): every process's fds;
    /// with `holdersFirst` (focused, no table read: FocusedLocks.swift) also their tasks
    /// asleep in a lock call, read ahead when the caller started that (`OpenFilesPrefetch`).
    mutating func startFDPass(holdersFirst: Bool, timings t: inout SnapshotTimings) -> FDPass {
        let t2 = Sys.monotonicSeconds()
        bootTime = ProcessDetails.bootTime(procRoot: procRoot)
        let fds: FDPass
        if holdersFirst, let ahead = openFilesAhead, ahead.procRoot == procRoot {
            fds = mergeOpenFiles(ahead.work.wait(), timings: &t)
        } else {
            fds = listOpenFiles(pids: ProcFS.pids(procRoot: procRoot), lockWaits: holdersFirst, timings: &t)
        }
        t.processes = Sys.monotonicSeconds() - t2
        return fds
    }

    /// Step two, once the rows are known: the holders among the fds on locked inodes. The
    /// held lock files and lease files are marked.
    mutating func findHolders(_ rows: Rows, fds: FDPass, files: inout LockFiles,
                              timings t: inout SnapshotTimings) -> ProcessScan {
        let t2b = Sys.monotonicSeconds()
        let locked = LockedRows(rows.byFile)
        let paths = needPaths(files), writers = options.findWriters && scope.isHost
        var procs = readHolders(fds, locked: locked, lockFiles: (files.lockFiles, files.keys), paths: paths,
                                writers: writers, timings: &t)
        // An OFD lock that no fd on its inode lists (a /proc copy whose fd links mislead,
        // a filesystem whose st_ino differs from the kernel's lock inode): read every
        // fdinfo after all, as the kernel's own lists are the ground truth.
        if fds.live && procs.hidden.isEmpty && locked.containsHeld(where: { $0.pid == nil && procs.shapes[$0.identity] == nil }) {
            procs = readHolders(fds, locked: nil, lockFiles: (files.lockFiles, files.keys), paths: paths,
                                writers: writers, timings: &t)
        }
        t.processes += Sys.monotonicSeconds() - t2b
        markHeld(&files, rows: rows)
        return procs
    }


    struct ProcessScan {
        var pids: [Int32] = []
        /// fds whose fdinfo lists locks, by the locked file.
        var byFile: [FileKey: [OpenFileLocks]] = [:]
        /// The fdinfo lock shapes seen, with how many fds list each; not classic POSIX ones
        /// (their rows name their process, and are matched by pid).
        var shapes: [KernelLock.Identity: Int] = [:]
        /// Every fd link that names a path (candidate images), with a pid that has it open.
        var openPaths: [PathKey: Int32] = [:]
        /// The file key of a locked fd's link where it differs from what statx said of the fd
        /// (to join lock files by path as well: btrfs, overlayfs; every one from a /proc copy).
        var keyByLink: [PathKey: FileKey] = [:]
        /// Processes whose fds could not be read.
        var hidden: Set<Int32> = []
        /// fds open for writing on paths that may be images (filtered in `imageWriters`).
        var writeOpens: [WriteOpen] = []
    }

    /// Every fd of the processes looked at, with the inode it refers to.
    struct FDPass: Sendable {
        var pids: [Int32] = []
        var fds: [OpenFD] = []
        /// Whether the inodes come from statx of the live /proc (else from fdinfo, already parsed).
        var live = true
        /// Processes whose fds could not be listed.
        var hidden: Set<Int32> = []
        /// With `lockWaits`: the tasks asleep in a blocking lock call (`Sys.lockWaits`), and
        /// the processes whose tasks could not be looked at.
        var lockWaits: [LockWait] = []
        var waitsUnread: Set<Int32> = []
    }

    /// Step one over the processes: list each fd dir and statx every entry relative to it
    /// (the target's inode and type, from the kernel's cache: no readlink, no fdinfo, no
    /// wait on a hung NFS server). Not the live /proc (a copy, a fixture): fdinfo's `ino:`.
    /// With `lockWaits`, also each process's tasks asleep in a lock call (`Sys.lockWaits`).
    mutating func listOpenFiles(pids: [Int32], lockWaits: Bool = false, timings t: inout SnapshotTimings) -> FDPass {
        mergeOpenFiles(Self.readOpenFiles(pids: pids, procRoot: procRoot, lockWaits: lockWaits), timings: &t)
    }

    /// What `listOpenFiles` reads of the processes, before the scan takes it in
    /// (`OpenFilesPrefetch` reads it ahead of a scan).
    struct OpenFilesRead: Sendable {
        var pids: [Int32]
        var live: Bool
        /// Per chunk of pids: their fds, the pids whose fd dir could not be listed, and with
        /// `lockWaits` the tasks asleep in a lock call and the pids whose tasks could not be read.
        var parts: [OpenFilesPart]
    }

    struct OpenFilesPart: Sendable {
        var fds: [OpenFD] = []
        var failed: [(pid: Int32, errno: Errno)] = []
        var waits: [LockWait] = []
        var waitsUnread: [Int32] = []
    }

    /// The reads of `listOpenFiles`, on all cores.
    static func readOpenFiles(pids: [Int32], procRoot root: String, lockWaits: Bool) -> OpenFilesRead {
        let live = Sys.isLiveProc(root)
        // Small chunks: the processes with many fds are often neighbours in pid order.
        let parts = Parallel.chunks(pids.count, chunk: 4) { range -> [OpenFilesPart] in
            var part = OpenFilesPart()
            var buffer = [UInt8](repeating: 0, count: 16384)
            for pid in pids[range] {
                let failure = HolderSearch.openFiles(procRoot: root, pid: pid, live: live, buffer: &buffer, into: &part.fds)
                if let e = failure { part.failed.append((pid, e)) }
                guard lockWaits, failure == nil else { continue }
                switch Sys.lockWaits(procRoot: root, pid: pid) {
                case .success(let w): part.waits += w
                case .failure(let e) where e.code == ENOENT || e.code == ESRCH: break  // ended meanwhile
                case .failure: part.waitsUnread.append(pid)
                }
            }
            return [part]
        }
        return OpenFilesRead(pids: pids, live: live, parts: parts)
    }

    /// The processes' reads taken into the scan: a process whose fd dir could not be listed
    /// (but a kernel thread's, or one that ended) is noted unseen.
    mutating func mergeOpenFiles(_ read: OpenFilesRead, timings t: inout SnapshotTimings) -> FDPass {
        var out = FDPass()
        (out.pids, out.live) = (read.pids, read.live)
        let parts = read.parts
        out.fds.reserveCapacity(parts.reduce(0) { $0 + $1.fds.count })
        for part in parts {
            out.lockWaits += part.waits
            out.waitsUnread.formUnion(part.waitsUnread)
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
    mutating func readHolders(_ pass: FDPass, locked: LockedRows?,
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
        // Sized by the holders, not by every finding (candidate images too: their tables'
        // pages would all be touched for nothing).
        // (Fields read in place: a finding copied is its link, locks and fd retained.)
        var count = 0, shapes = 0
        for part in parts {
            for i in part.indices where !part[i].locks.isEmpty {
                count += 1
                if part[i].locks.contains(where: { $0.kind != .posix }) { shapes += 1 }
            }
        }
        out.byFile.reserveCapacity(count)
        out.shapes.reserveCapacity(shapes)
        for part in parts {
            part.withUnsafeBufferPointer { found in for i in found.indices { merge(found.baseAddress! + i, into: &out, timings: &t) } }
        }
        return out
    }

    /// One fd's finding into the process scan (in fd order). (Its fields read through the
    /// pointer: an element passed on by value was copied whole first, 50k at 100k locks.)
    private func merge(_ f: UnsafePointer<FDFinding>, into out: inout ProcessScan, timings t: inout SnapshotTimings) {
        if f.pointee.fdinfoRead { t.fdinfoReads += 1 }
        if let w = f.pointee.writeOpen { out.writeOpens.append(w) }
        if f.pointee.candidate, let l = f.pointee.link, out.openPaths[PathKey(l)] == nil { out.openPaths[PathKey(l)] = f.pointee.fd.pid }
        guard let key = f.pointee.locks.first?.fileKey, let link = f.pointee.link else { return }
        let (pid, device, inode) = (f.pointee.fd.pid, f.pointee.fd.device, f.pointee.fd.inode)
        out.byFile[key, default: []].append(OpenFileLocks(pid: pid, fd: f.pointee.fd.fd, link: link, flags: f.pointee.flags,
                                                          locks: f.pointee.locks))
        for l in f.pointee.locks where l.kind != .posix { out.shapes[l.identity, default: 0] += 1 }
        if device == nil || FileKey(device: device, inode: inode) != key { out.keyByLink[PathKey(link)] = key }
    }

    /// Step two for one fd; nil when it is neither a holder nor a candidate image.
    static func examine(_ f: OpenFD, locked: LockedRows?,
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
        } else if let rows = locked?[inode: f.inode], let dev = f.device, rows.allSatisfy({ $0.kind == .posix && $0.device == dev }) {
            let own = rows.filter { $0.pid == f.pid }
            if !own.isEmpty, let mode = reader.openFlags(pid: f.pid, fd: f.fd) {
                (out.flags, out.locks) = (mode, own)
            }
        } else if locked == nil || locked!.isLocked(inode: f.inode) {
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

    /// The details (`process`) of the processes likely to hold a lock, read while the kernel's
    /// table is (assembly names every holder by them; ~50 µs each, one after another): those
    /// with an fd on a lock file, and QEMU's (`qemuPids`).
    mutating func readLikelyHolders(_ pass: FDPass, files: LockFiles) {
        var pids = Set(qemuPids)
        if !files.keys.isEmpty {
            var last: Int32 = -1
            for f in pass.fds where f.pid != last {
                if let d = f.device, files.keys[FileKey(device: d, inode: f.inode)] != nil {
                    pids.insert(f.pid)
                    last = f.pid  // its other fds need no look
                }
            }
        }
        for pid in pids.sorted() { _ = process(pid) }
    }

    mutating func process(_ pid: Int32) -> ProcessDetails? {
        if let d = details[pid] { return d }
        let d = ProcessDetails.read(pid: pid, procRoot: procRoot, bootTime: bootTime, users: &users)
        details[pid] = d
        return d
    }

}

/// The kernel's held rows (not waiters) by inode, read from the rows by file without copying
/// them (at 100k lock files they were kept three times: by file, in a list, by inode).
/// By inode, not by device too: an fd's device can differ from the one the kernel names in
/// its lock rows (btrfs subvolumes, overlayfs).
struct LockedRows: Sendable {
    let byFile: [FileKey: [KernelLock]]
    /// The first file key with held rows on each inode, and any others (same inode, other device).
    private var first: [UInt64: FileKey] = [:]
    private var others: [UInt64: [FileKey]] = [:]

    init(_ byFile: [FileKey: [KernelLock]]) {
        self.byFile = byFile
        first.reserveCapacity(byFile.count)
        for (k, rows) in byFile where rows.contains(where: { !$0.isWaiter }) {
            if first[k.inode] == nil { first[k.inode] = k } else { others[k.inode, default: []].append(k) }
        }
    }

    func isLocked(inode: UInt64) -> Bool { first[inode] != nil }

    /// The held rows on `inode`, of every device; nil when none.
    subscript(inode inode: UInt64) -> [KernelLock]? {
        guard let k = first[inode], var rows = byFile[k] else { return nil }
        for m in others[inode] ?? [] { rows += byFile[m] ?? [] }
        if rows.contains(where: \.isWaiter) { rows.removeAll(where: \.isWaiter) }
        return rows
    }

    /// Every held row.
    var held: [KernelLock] {
        var out: [KernelLock] = []
        for rows in byFile.values { for r in rows where !r.isWaiter { out.append(r) } }
        return out
    }

    func containsHeld(where test: (KernelLock) -> Bool) -> Bool {
        byFile.values.contains { $0.contains { !$0.isWaiter && test($0) } }
    }
}
