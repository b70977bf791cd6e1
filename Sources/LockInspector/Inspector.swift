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
        var snapshot = try scan.run(timings: &timings)
        gluster?.finish(into: &snapshot)  // gluster hook
        return snapshot
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
    var shape: String { "\(kind) \(type) \(device?.description ?? "-"):\(inode ?? 0) \(start) \(end ?? -1)" }
    /// QEMU's signature: a read lock within bytes 100-104 or 200-204 (FACTS.md §2).
    var isQemuByteLock: Bool {
        guard type == "READ", let e = end else { return false }
        return (start >= 100 && e <= 104) || (start >= 200 && e <= 204)
    }
    /// virtlockd's lock: byte 0, length 1 (FACTS.md §5).
    var isByteZero: Bool { start == 0 && end == 0 }
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

    mutating func run(timings t: inout SnapshotTimings) throws -> Snapshot {
        let t0 = now()
        var isDir = ObjCBool(false)
        guard FileManager.default.fileExists(atPath: procRoot, isDirectory: &isDir), isDir.boolValue else {
            throw InspectorError.procUnreadable(path: procRoot, errno: ENOENT)
        }
        // 1. The kernel's lock table, read on a second thread while the rest is scanned:
        // /proc/locks hands out at most a page per read() and walks the global lock list
        // from its start at every read (seq_hlist_start_percpu), so a big table costs
        // kernel time quadratic in its size (~2 s for 100k locks here).
        let table = KernelTableReader(path: procRoot + "/locks")

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

        // 3. One pass over the processes: fd links and fdinfo locks.
        let t2 = now()
        bootTime = ProcessDetails.bootTime(procRoot: procRoot)
        let needPaths = options.focus == nil && (!lockFiles.isEmpty || !leaseFiles.isEmpty)
        // Focused: fdinfo only of fds whose link names an image or lock file in focus.
        let onlyLinks: Set<String>? = options.focus.map { f in
            Set(f.map(\.image) + lockFiles.map(\.path) + leaseFiles.map(\.path))
        }
        var procs = scanProcesses(allLinks: needPaths, onlyLinks: onlyLinks, timings: &t)
        t.processes = now() - t2

        let (text, readErrno, readTime) = table.wait()
        t.kernelLocks = readTime
        guard let text else {
            throw InspectorError.procUnreadable(path: procRoot + "/locks", errno: readErrno == 0 ? ENOENT : readErrno)
        }
        var rows: [KernelLock] = []
        for line in text.split(separator: "\n") {
            if let l = KernelLock(line: line) { rows.append(l) } else if !line.allSatisfy(\.isWhitespace) {
                unseen.append(Unseen(what: "\(procRoot)/locks line \"\(line)\"", why: "not in the kernel's format"))
            }
        }
        var rowsByFile: [FileKey: [KernelLock]] = [:]
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
            // An OFD lock held through a path other than the one in focus (a hard link, a
            // bind mount) is missed by the link filter: then read every fdinfo after all.
            let unnamed = rowsByFile.values.joined().contains { !$0.isWaiter && $0.pid == nil && procs.shapes[$0.shape] == nil }
            if unnamed {
                procs = scanProcesses(allLinks: false, onlyLinks: nil, timings: &t)
            }
        }
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
        for i in lockFiles.indices {
            // A held lock file whose key the kernel did not list under the dir's device
            // (btrfs subvolumes, overlayfs) is still found through its holder's fd link.
            if !lockFiles[i].held, let k = procs.keyByLink[lockFiles[i].path] {
                lockFiles[i].held = true
                lockFiles[i].device = k.device
            }
        }
        mapLockFiles(&lockFiles, candidates: candidates, rowsByFile: rowsByFile, timings: &t)
        for i in leaseFiles.indices {
            let name = String(leaseFiles[i].path.split(separator: "/").last ?? "")
            if let c = candidates.bySHA256[name] {
                leaseFiles[i].image = c.path
                leaseFiles[i].mappedBy = c.source
            }
        }
        let images = assemble(rows: rows, rowsByFile: rowsByFile, lockFiles: lockFiles, leaseFiles: leaseFiles,
                              procs: procs, candidates: candidates)
        t.mapping = now() - t3
        t.total = now() - t0
        return Snapshot(host: SystemReads.hostName, generated: Date(), images: images,
                        lockFiles: lockFiles + leaseFiles, unseen: unseen)
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
        return entries.sorted { $0.name < $1.name }.map { e in
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
        var shapes: [String: Int] = [:]
        /// Every fd link that names a path (candidate images), with a pid that has it open.
        var openPaths: [String: Int32] = [:]
        /// The file key of a locked fd's link (to join lock files by path as well).
        var keyByLink: [String: FileKey] = [:]
        /// Processes whose fds could not be read.
        var hidden: Set<Int32> = []
    }

    /// One pass over /proc/PID/fd: readlink every fd (no filesystem access: the kernel's
    /// d_path) and read the fdinfo of every fd that names a path; only fdinfo with `lock:`
    /// lines is parsed. (Which locks exist is not known yet: /proc/locks is read meanwhile.)
    mutating func scanProcesses(allLinks: Bool, onlyLinks: Set<String>?, timings t: inout SnapshotTimings) -> ProcessScan {
        var out = ProcessScan()
        out.pids = ProcFS.pids(procRoot: procRoot)
        var buffer = [UInt8](repeating: 0, count: 16384)
        for pid in out.pids {
            let fdDir = "\(procRoot)/\(pid)/fd"
            let names: [DirEntry]
            switch SystemReads.entries(fdDir) {
            case .success(let n): names = n
            case .failure(let e) where e.errno == ENOENT || e.errno == ESRCH:
                continue  // gone since /proc was listed
            case .failure(let e):
                let d = process(pid)
                // Kernel threads (empty cmdline) open no files: nothing is missed there.
                if let d, d.args.isEmpty { continue }
                out.hidden.insert(pid)
                let command = d.map { " (\($0.command))" } ?? ""
                unseen.append(Unseen(what: "open files of pid \(pid)\(command)", why: "\(fdDir): \(e.text)"))
                continue
            }
            let infoDir = "\(procRoot)/\(pid)/fdinfo/"
            for entry in names {
                guard let fd = Int32(entry.name) else { continue }
                t.fds += 1
                guard let link = SystemReads.readLink("\(fdDir)/\(entry.name)"), link.hasPrefix("/") else { continue }
                if allLinks, out.openPaths[link] == nil { out.openPaths[link] = pid }
                if let only = onlyLinks, !only.contains(link) { continue }
                t.fdinfoReads += 1
                guard let n = SystemReads.readSmallProcFile(infoDir + entry.name, into: &buffer),
                      SystemReads.contains(buffer, count: n, "\nlock:") else { continue }
                guard let info = FDInfo(text: Substring(String(decoding: buffer[0..<n], as: UTF8.self))),
                      let key = info.locks.first?.fileKey else { continue }
                out.byFile[key, default: []].append(
                    OpenFileLocks(pid: pid, fd: fd, link: link, flags: info.flags, locks: info.locks))
                for l in info.locks { out.shapes[l.shape, default: 0] += 1 }
                out.keyByLink[link] = key
            }
        }
        return out
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
        var bySHA1: [String: Candidate] = [:]
        var bySHA256: [String: Candidate] = [:]
        /// Files under --images, by key (for locks on them that fit no other scheme).
        var imageFiles: [FileKey: String] = [:]

        mutating func add(_ path: String, source: String, realPath: String? = nil) {
            let real = realPath ?? path
            let c = Candidate(path: real, source: source)
            let h1 = Digest.sha1Hex(real)
            if bySHA1[h1] == nil { bySHA1[h1] = c }
            // virtlockd hashes the path as the domain XML writes it, without canonicalising.
            let h256 = Digest.sha256Hex(path)
            if bySHA256[h256] == nil { bySHA256[h256] = Candidate(path: path, source: source) }
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
            walkImages(real, depth: 0, device: dev, into: &c)
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

    mutating func walkImages(_ dir: String, depth: Int, device: DeviceID?, into c: inout Candidates) {
        switch SystemReads.entries(dir) {
        case .failure(let e):
            unseen.append(Unseen(what: "images dir \(dir)", why: e.text))
        case .success(let entries):
            for e in entries.sorted(by: { $0.name < $1.name }) {
                let path = (dir == "/" ? "" : dir) + "/" + e.name
                switch e.kind {
                case .regular?, .blockDevice?:
                    c.add(path, source: "images dir")
                    c.imageFiles[FileKey(device: device, inode: e.inode)] = path
                case .symlink?:
                    if let real = SystemReads.realPath(path) { c.add(real, source: "images dir") }
                case .directory? where depth < 3 && !e.name.hasPrefix("."):
                    walkImages(path, depth: depth + 1, device: device, into: &c)
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
            let name = String(files[i].path.split(separator: "/").last ?? "")
            let hex = String(name.dropFirst(6).dropLast(5))
            guard hex.count == 40 else { continue }
            if let c = candidates.bySHA1[hex] {
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
        for (i, f) in lockFiles.enumerated() where f.kind == .regular {
            lockFileKeys[FileKey(device: f.device, inode: f.inode)] = i
        }
        // Lock files found only through a holder's fd link (device mismatch).
        for (i, f) in lockFiles.enumerated() {
            if let k = procs.keyByLink[f.path] { lockFileKeys[k] = i }
        }
        var leaseKeys: [FileKey: Int] = [:]
        for (i, f) in leaseFiles.enumerated() where f.kind == .regular {
            leaseKeys[FileKey(device: f.device, inode: f.inode)] = i
        }

        // Names of POSIX byte-0 holders are needed to recognise virtlockd.
        for r in rows where r.isByteZero && r.kind == "POSIX" { if let p = r.pid { _ = process(p) } }

        var byID: [String: ImageLocks] = [:]
        var order: [String] = []
        func slot(_ id: String, path: String?) -> String {
            if byID[id] == nil {
                byID[id] = ImageLocks(id: id, path: path, schemes: [])
                order.append(id)
            }
            return id
        }

        // Lock files first: every one is listed, held or not.
        var lockFileImageID: [Int: String] = [:]
        for (i, f) in lockFiles.enumerated() where f.kind == .regular {
            let id = slot(f.image ?? f.path, path: f.image)
            byID[id]!.lockFiles.append(f.path)
            if !byID[id]!.schemes.contains(.lockfile) { byID[id]!.schemes.append(.lockfile) }
            lockFileImageID[i] = id
        }
        var leaseImageID: [Int: String] = [:]
        for (i, f) in leaseFiles.enumerated() where f.kind == .regular && f.held {
            let id = slot(f.image ?? f.path, path: f.image)
            byID[id]!.lockFiles.append(f.path)
            if !byID[id]!.schemes.contains(.virtlockd) { byID[id]!.schemes.append(.virtlockd) }
            leaseImageID[i] = id
        }

        for key in rowsByFile.keys.sorted() {
            let fileRows = rowsByFile[key]!
            let openFiles = procs.byFile[key] ?? []
            guard let scheme = classify(key, rows: fileRows, holders: openFiles, lockFileKeys: lockFileKeys,
                                        leaseKeys: leaseKeys, candidates: candidates) else { continue }
            let id: String
            switch scheme {
            case .lockfile: id = lockFileImageID[lockFileKeys[key]!] ?? slot(lockFiles[lockFileKeys[key]!].path, path: nil)
            case .virtlockd where leaseKeys[key] != nil:
                id = leaseImageID[leaseKeys[key]!] ?? slot(leaseFiles[leaseKeys[key]!].path, path: nil)
            default:
                let path = openFiles.lazy.compactMap(\.link).first ?? candidates.imageFiles[key]
                id = slot(path ?? key.text, path: path)
                if byID[id]!.inode == nil {
                    byID[id]!.device = key.device
                    byID[id]!.inode = key.inode
                }
            }
            if !byID[id]!.schemes.contains(scheme) { byID[id]!.schemes.append(scheme) }
            byID[id]!.locks += fileRows
            let (holders, waiters) = self.holders(of: key, scheme: scheme, rows: fileRows, openFiles: openFiles, procs: procs)
            byID[id]!.holders += holders
            byID[id]!.waiters += waiters
        }

        var images = order.map { byID[$0]! }
        for i in images.indices {
            images[i].locks.sort { $0.id < $1.id || ($0.id == $1.id && !$0.isWaiter && $1.isWaiter) }
            images[i].holders.sort { ($0.pid, $0.fd ?? -1) < ($1.pid, $1.fd ?? -1) }
            images[i].schemes.sort { LockScheme.allCases.firstIndex(of: $0)! < LockScheme.allCases.firstIndex(of: $1)! }
        }
        // Known paths sorted, then unknown images by id.
        images.sort { a, b in
            switch (a.path, b.path) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return a.id < b.id
            }
        }
        return images
    }

    /// The holders of the locks on one file: each fd whose fdinfo lists them (exact, also
    /// for OFD locks), then POSIX locks no fdinfo named, by the pid /proc/locks gives.
    mutating func holders(of key: FileKey, scheme: LockScheme, rows: [KernelLock], openFiles: [OpenFileLocks],
                          procs: ProcessScan) -> (holders: [Holder], waiters: [Holder]) {
        var holders: [Holder] = []
        var namedPosix = Set<String>()
        for of in openFiles {
            holders.append(makeHolder(pid: of.pid, fd: of.fd, openMode: OpenMode(flags: of.flags),
                                      locks: of.locks, scheme: scheme))
            for l in of.locks where l.kind == "POSIX" { namedPosix.insert("\(of.pid) \(l.shape)") }
        }
        var posixOnly: [Int32: [KernelLock]] = [:]
        for r in rows where !r.isWaiter {
            if let pid = r.pid, r.kind == "POSIX" || procs.shapes[r.shape] == nil {
                if !namedPosix.contains("\(pid) \(r.shape)") { posixOnly[pid, default: []].append(r) }
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
        let byteLocks = locks.filter { $0.isFcntlLock && $0.isQemuByteLock }
        let qemu: QemuPermissions? = scheme == .qemu && !byteLocks.isEmpty
            ? QemuPermissions(lockedRanges: byteLocks.map { (start: $0.start, end: $0.end) }) : nil
        return Holder(pid: pid, command: d?.command ?? "?", args: d?.args ?? [], user: d?.user, uid: d?.uid,
                      started: d?.started, fd: fd, openMode: openMode, vm: d?.vm, scheme: scheme, lockType: type,
                      qemu: qemu)
    }
}

/// Reads /proc/locks on its own thread.
final class KernelTableReader: @unchecked Sendable {
    private let group = DispatchGroup()
    private var text: String?
    private var errno_: Int32 = 0
    private var seconds: Double = 0

    init(path: String) {
        group.enter()
        let thread = Thread { [self] in
            let t0 = now()
            text = SystemReads.readProc(path)
            if text == nil { errno_ = errno }
            seconds = now() - t0
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The text (nil when unreadable), the errno of the failure, and the seconds spent.
    func wait() -> (String?, Int32, Double) {
        group.wait()
        return (text, errno_, seconds)
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
