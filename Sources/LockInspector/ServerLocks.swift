import FoundationEssentials
import ImageLock

/// A local process that has a file open, as far as naming a lock holder needs.
public struct Opener: Sendable, Equatable {
    public var fd: Int32
    public var openMode: OpenMode?
    public var process: ProcessDetails
    public var pid: Int32 { process.pid }

    public init(fd: Int32, openMode: OpenMode? = nil, process: ProcessDetails) {
        self.fd = fd
        self.openMode = openMode
        self.process = process
    }
}

/// What was gathered about one file on a filesystem whose locks the local lock table does
/// not show in full (`SharedFilesystem`): F_GETLK's answer on QEMU's bytes, the local
/// processes that have the file open among those named, and, on a GlusterFS FUSE mount of
/// a server node, the brick statedump's locks on it.
public struct ServerLockFacts: Sendable, Equatable {
    public var path: String
    public var device: DeviceID?
    public var inode: UInt64?
    public var filesystem: SharedFilesystem
    /// What F_GETLK found (`ImageLocker.probeLocks`); empty when nothing is locked.
    public var probed: [ProbedLock]
    /// Why the probe could not run; then nothing is known of the server's locks.
    public var probeError: String?
    /// Local processes with the file open, among the pids the probe or statedump named.
    public var openers: [Opener]
    /// The Gluster volume and the file's path in it, for a file on a GlusterFS FUSE mount.
    public var glusterVolume: String?
    public var glusterPath: String?
    /// The statedump's active locks on this file; nil when none was taken.
    public var statedump: [GlusterLockRecord]?
    /// Why no statedump names the holders' hosts (not a server node, failed, skipped).
    public var statedumpNote: String?
    /// This host's name, as a statedump's `HOST:` names it.
    public var localHost: String

    public init(path: String, device: DeviceID? = nil, inode: UInt64? = nil, filesystem: SharedFilesystem,
                probed: [ProbedLock] = [], probeError: String? = nil, openers: [Opener] = [],
                glusterVolume: String? = nil, glusterPath: String? = nil, statedump: [GlusterLockRecord]? = nil,
                statedumpNote: String? = nil, localHost: String) {
        self.path = path
        self.device = device
        self.inode = inode
        self.filesystem = filesystem
        self.probed = probed
        self.probeError = probeError
        self.openers = openers
        self.glusterVolume = glusterVolume
        self.glusterPath = glusterPath
        self.statedump = statedump
        self.statedumpNote = statedumpNote
        self.localHost = localHost
    }

    /// Where the verdict's lock facts come from, for `why`'s facts.
    public var source: String {
        "F_GETLK on \(filesystem.name), whose locks /proc/locks shows \(filesystem.localTable == .showsNone ? "none of" : "only this host's of")"
    }
}

/// Turning server-side lock facts into the snapshot's terms: lock rows (as if the kernel had
/// listed them) and holders. Pure: no system calls.
public enum ServerLocks {
    /// The file's entry: one row per lock the probe found (pid kept only when a local
    /// process with that pid has the file open), and its holders: from the statedump when
    /// there is one (every holder, with its host; joined with the local process when the
    /// host is this one), else the local processes the probe's l_pid names. A holder's QEMU
    /// permissions are decoded from the bytes it locks.
    public static func entry(_ f: ServerLockFacts) -> ImageLocks {
        let local = Dictionary(f.openers.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        var holders: [Holder] = []
        if let dump = f.statedump {
            for rs in byHolder(dump.filter { $0.state == .active }) {
                let pid = rs[0].holderPID ?? 0
                let here = rs[0].host == f.localHost
                var h = holder(pid: pid, opener: here ? local[pid] : nil, host: here ? nil : rs[0].host,
                               ranges: rs.map { ($0.type, $0.range) })
                h.statedump = StatedumpNaming(rs)
                holders.append(h)
            }
        } else {
            var order: [Int32] = []
            var ranges: [Int32: [(LockType, ByteRange)]] = [:]
            for l in f.probed {
                guard let pid = l.pid, local[pid] != nil else { continue }
                if ranges[pid] == nil { order.append(pid) }
                ranges[pid, default: []].append((l.type, l.range))
            }
            for pid in order { holders.append(holder(pid: pid, opener: local[pid], host: nil, ranges: ranges[pid]!)) }
        }
        let rows = f.probed.enumerated().map { i, l in
            KernelLock(id: -(i + 1), kind: .posix, mode: "ADVISORY", type: l.type.rawValue,
                       pid: l.pid.flatMap { local[$0] != nil ? $0 : nil }, device: f.device, inode: f.inode,
                       start: l.range.start, end: l.range.end)
        }
        return ImageLocks(id: f.path, path: f.path, device: f.device, inode: f.inode,
                          schemes: holders.isEmpty && rows.isEmpty ? [] : [.qemu], holders: holders, locks: rows)
    }

    /// A chain member's entry: the server's (`entry`) where the local table shows none of
    /// the filesystem's locks; where it shows this host's, the local entry with the probe's
    /// locks and holders added (those of pids the local entry does not already hold).
    public static func merged(_ local: ImageLocks?, _ f: ServerLockFacts) -> ImageLocks {
        let server = entry(f)
        guard f.filesystem.localTable == .showsThisHostOnly, var out = local else { return server }
        let pids = Set(out.holders.map(\.pid))
        out.holders += server.holders.filter { !pids.contains($0.pid) }
        out.locks += server.locks.filter { l in l.pid == nil || !pids.contains(l.pid!) }
        if !out.schemes.contains(.qemu) && !server.schemes.isEmpty { out.schemes.append(.qemu) }
        return out
    }

    /// Statedump records grouped by holder (host and pid), in order of first sight.
    static func byHolder(_ records: [GlusterLockRecord]) -> [[GlusterLockRecord]] {
        var order: [String] = []
        var groups: [String: [GlusterLockRecord]] = [:]
        for r in records {
            let key = "\(r.host ?? "?")/\(r.holderPID.map(String.init) ?? "?")"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        return order.map { groups[$0]! }
    }

    /// The holders a statedump names on other hosts, added to the snapshot's entries of
    /// their files (an entry is made for a file no local holder has): a scan names only
    /// this host's processes.
    static func addRemoteHolders(_ facts: [ServerLockFacts], to images: inout [ImageLocks]) {
        for f in facts {
            guard let dump = f.statedump else { continue }
            let groups = byHolder(dump.filter { $0.host != f.localHost })
            guard !groups.isEmpty else { continue }
            let remote = groups.map { rs -> Holder in
                var h = holder(pid: rs[0].holderPID ?? 0, opener: nil, host: rs[0].host ?? "?", ranges: rs.map { ($0.type, $0.range) })
                h.statedump = StatedumpNaming(rs)
                return h
            }
            if let i = images.firstIndex(where: { $0.inode == f.inode && $0.device == f.device && $0.inode != nil }) {
                images[i].holders += remote
                if !images[i].schemes.contains(.qemu) { images[i].schemes.append(.qemu) }
            } else {
                // Known paths in order, then the unknown ones (`Snapshot.images`).
                let at = images.firstIndex { $0.path.map { $0 > f.path } ?? true } ?? images.count
                images.insert(ImageLocks(id: f.path, path: f.path, device: f.device, inode: f.inode, schemes: [.qemu], holders: remote), at: at)
            }
        }
    }

    static func holder(pid: Int32, opener o: Opener?, host: String?, ranges: [(LockType, ByteRange)]) -> Holder {
        let perms = QemuPermissions(lockedRanges: ranges.map { ($0.1.start, $0.1.end) })
        let writes = ranges.contains { $0.0 == .write }
        let d = o?.process
        return Holder(pid: pid, command: d?.command ?? "?", args: d?.args ?? [], user: d?.user, uid: d?.uid,
                      started: d?.started, fd: o?.fd, openMode: o?.openMode, vm: d?.vm, scheme: .qemu,
                      lockType: writes ? .write : .read, qemu: perms, host: host)
    }

    /// The volume and the path in it of a file under a GlusterFS FUSE mount, from the
    /// mount's source (`HOST:/VOL` or `HOST:/VOL/SUBDIR`, as /proc/self/mountinfo shows it).
    public static func glusterLocation(path: String, mountPoint: String, source: String) -> (volume: String, path: String)? {
        guard let colon = source.lastIndex(of: ":") else { return nil }
        let spec = source[source.index(after: colon)...].split(separator: "/", omittingEmptySubsequences: true)
        guard let vol = spec.first, !vol.isEmpty else { return nil }
        let base = mountPoint == "/" ? "" : mountPoint
        guard path.hasPrefix(base + "/") else { return nil }
        let rel = path.dropFirst(base.count)
        let sub = spec.dropFirst().map { "/" + $0 }.joined()
        return (String(vol), sub + rel)
    }
}

extension ServerLocks {
    /// The GlusterFS FUSE mount (fstype `fuse.glusterfs`) under which `path` lies, from the
    /// text of /proc/self/mountinfo: the deepest one, with its mount point (octal escapes
    /// decoded) and source.
    public static func glusterMount(mountinfo: String, path: String) -> (mountPoint: String, source: String)? {
        var best: (mountPoint: String, source: String)?
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count,
                  fields[dash + 1] == "fuse.glusterfs" else { continue }
            let mp = unescape(fields[4])
            let prefix = mp == "/" ? "/" : mp + "/"
            guard path.hasPrefix(prefix), mp.count > (best?.mountPoint.count ?? -1) else { continue }
            best = (mp, unescape(fields[dash + 2]))
        }
        return best
    }

    /// The filesystem type of each device (`maj:min`, field 3) in the text of a mountinfo.
    public static func filesystemTypes(mountinfo: String) -> [DeviceID: String] {
        var out: [DeviceID: String] = [:]
        for m in mountinfoLines(mountinfo) where m.dash + 1 < m.fields.count {
            out[m.device] = String(m.fields[m.dash + 1])
        }
        return out
    }

    /// Each mountinfo line (proc(5)): its device, its fields and the index of the `-` that
    /// ends the optional ones. Split on the kernel's bytes (`\n`, ` `, `:`), not Characters:
    /// ~10x faster, and a mark that combines with a separator does not hide it.
    static func mountinfoLines(_ mountinfo: String) -> [(device: DeviceID, fields: [Substring], dash: Int)] {
        var out: [(device: DeviceID, fields: [Substring], dash: Int)] = []
        for line in mountinfo.utf8.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map(Substring.init)
            guard fields.count > 6, let dash = fields.firstIndex(of: "-") else { continue }
            let mm = fields[2].utf8.split(separator: UInt8(ascii: ":")).map(Substring.init)
            guard mm.count == 2, let major = UInt32(mm[0]), let minor = UInt32(mm[1]) else { continue }
            out.append((DeviceID(major: major, minor: minor), fields, dash))
        }
        return out
    }

    /// mountinfo's octal escapes (`\040` for a space).
    static func unescape(_ s: Substring) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Gathers the facts of one file on `filesystem`: the probe, then (on a GlusterFS FUSE
    /// mount, when something is locked and `statedump` allows) a brick statedump through
    /// `cli` when this is a server node, then the local processes named. Takes no lock and
    /// creates nothing but the statedump's own files (read and removed by `GlusterCLI`).
    public static func gather(path: String, device: DeviceID?, inode: UInt64?, filesystem: SharedFilesystem,
                              statedump: Bool, cli: GlusterCLI, procRoot: String = "/proc") -> ServerLockFacts {
        var f = ServerLockFacts(path: path, device: device, inode: inode, filesystem: filesystem,
                                localHost: Sys.hostName)
        do {
            f.probed = try ImageLocker.probeLocks(path: path)
        } catch {
            f.probeError = "\(error)"
        }
        if filesystem.name == "fuse", let info = ProcFS.read(procRoot + "/self/mountinfo"),
           let m = glusterMount(mountinfo: info, path: path),
           let loc = glusterLocation(path: path, mountPoint: m.mountPoint, source: m.source) {
            (f.glusterVolume, f.glusterPath) = (loc.volume, loc.path)
            if f.probed.isEmpty && f.probeError == nil {
                // Nothing locked: nobody to name.
            } else if !statedump {
                f.statedumpNote = "hosts not named: --no-statedump"
            } else if !cli.isUsable {
                f.statedumpNote = "hosts not named: a brick statedump needs the gluster CLI and glusterd on this node (a server of volume \(loc.volume))"
            } else {
                do {
                    let dump = try cli.statedump(volume: loc.volume)
                    f.statedump = dump.records.filter { $0.isOn(loc.path, .active) }
                    if !dump.bricksNotHere.isEmpty {
                        f.statedumpNote = "bricks on other nodes not dumped: \(dump.bricksNotHere.joined(separator: ", "))"
                    }
                } catch {
                    f.statedumpNote = "hosts not named: statedump failed: \(error)"
                }
            }
        }
        // The local processes among those named, with an fd on this very file.
        var pids = f.probed.compactMap(\.pid)
        for r in f.statedump ?? [] where r.host == f.localHost { if let p = r.holderPID { pids.append(p) } }
        var seen = Set<Int32>()
        var users: [UInt32: String?] = [:]
        let boot = ProcessDetails.bootTime(procRoot: procRoot)
        var reader = ProcessFDReader(procRoot: procRoot)
        defer { reader.close() }
        for pid in pids where pid > 0 && seen.insert(pid).inserted {
            var fds: [OpenFD] = []
            guard Sys.openFiles(procRoot: procRoot, pid: pid, into: &fds) == nil,
                  let fd = fds.first(where: { $0.inode == inode && (device == nil || $0.device == nil || $0.device == device) }),
                  let d = ProcessDetails.read(pid: pid, procRoot: procRoot, bootTime: boot, users: &users) else { continue }
            f.openers.append(Opener(fd: fd.fd, openMode: reader.openFlags(pid: pid, fd: fd.fd).map(OpenMode.init(flags:)), process: d))
        }
        return f
    }
}

extension Scan {
    /// The open regular files on filesystems whose locks the lock table does not show in full,
    /// by file in the order first seen, with each device's filesystem (nil: a local one).
    struct SharedFiles {
        var files: [FileKey: [OpenFD]] = [:]
        var order: [FileKey] = []
        var filesystems: [DeviceID: SharedFilesystem?] = [:]
    }

    /// The `SharedFiles` of the fds: each device's type from the mountinfo of a process that
    /// has a file open on it. Needs no lock table: found while it is being read.
    func sharedFiles(_ pass: FDPass) -> SharedFiles {
        var out = SharedFiles()
        var readMountinfo = Set<Int32>()
        for f in pass.fds where f.kind == .regular {
            guard let dev = f.device else { continue }
            if out.filesystems[dev] == nil && readMountinfo.insert(f.pid).inserted,
               let text = ProcFS.read("\(procRoot)/\(f.pid)/mountinfo") {
                for (d, type) in ServerLocks.filesystemTypes(mountinfo: text) where out.filesystems[d] == nil {
                    out.filesystems[d] = .some(SharedFilesystem.of(fstype: type))
                }
            }
            if out.filesystems[dev] == nil { out.filesystems[dev] = .some(nil) }
            guard out.filesystems[dev]! != nil else { continue }
            let key = FileKey(device: dev, inode: f.inode)
            if out.files[key] == nil { out.order.append(key) }
            out.files[key, default: []].append(f)
        }
        return out
    }

    /// The open regular files on filesystems whose locks the lock table does not show in
    /// full (`SharedFilesystem`, by each device's type in the mountinfo of a process that has
    /// a file open on it: nothing is asked of the filesystem for that): each is asked
    /// with F_GETLK on QEMU's bytes (`ImageLocker.probeLocks`, nothing taken), and each lock
    /// whose l_pid is a process with the file open becomes a POSIX row of that pid, as the
    /// kernel would list it on a local filesystem. Returns the rows and what was seen.
    mutating func serverLockRows(_ shared: SharedFiles, kernel: [KernelLock]) -> (rows: [KernelLock], facts: [ServerLockFacts]) {
        let (files, order, filesystems) = (shared.files, shared.order, shared.filesystems)
        guard !order.isEmpty else { return ([], []) }
        var rows: [KernelLock] = []
        var facts: [ServerLockFacts] = []
        var reader = ProcessFDReader(procRoot: procRoot)
        defer { reader.close() }
        var statedumps: [String: Result<[GlusterLockRecord], StatedumpFailure>] = [:]
        let wanted = Set(order.map(\.inode))
        var listed = Set<String>()  // "inode/pid" the kernel lists already (this host's, on NFS...)
        for r in kernel where r.inode.map(wanted.contains) ?? false { if let p = r.pid { listed.insert("\(r.inode!)/\(p)") } }
        for key in order {
            let fds = files[key]!
            guard let dev = key.device, let fs = filesystems[dev] ?? nil,
                  let path = fds.lazy.compactMap({ reader.link(pid: $0.pid, fd: $0.fd) }).first(where: { $0.hasPrefix("/") }) else { continue }
            var f = ServerLockFacts(path: path, device: dev, inode: key.inode, filesystem: fs, localHost: Sys.hostName)
            do {
                f.probed = try ImageLocker.probeLocks(path: path, expect: (dev, key.inode))
            } catch {
                f.probeError = "\(error)"
                unseen.append(Unseen(what: "locks of \(path) (on \(fs.name))", why: "F_GETLK: \(error)"))
            }
            let openers = Set(fds.map(\.pid))
            for l in f.probed {
                guard let pid = l.pid, openers.contains(pid), !listed.contains("\(key.inode)/\(pid)") else { continue }
                f.openers.append(contentsOf: fds.filter { $0.pid == pid && !f.openers.contains(where: { $0.pid == pid }) }
                    .prefix(1).map { Opener(fd: $0.fd, process: ProcessDetails(pid: $0.pid, command: "")) })
                let row = KernelLock(id: -(rows.count + 1), kind: .posix, mode: "ADVISORY", type: l.type.rawValue, pid: pid,
                                     device: dev, inode: key.inode, start: l.range.start, end: l.range.end)
                rows.append(row)
            }
            // Locks no local process with the file open accounts for: another host's.
            // On a GlusterFS FUSE mount of a server node a statedump names them.
            if options.fuseStatedump && fs.name == "fuse" && f.probed.contains(where: { !openers.contains($0.pid ?? 0) }),
               let info = ProcFS.read("\(procRoot)/\(fds[0].pid)/mountinfo"),
               let m = ServerLocks.glusterMount(mountinfo: info, path: path),
               let loc = ServerLocks.glusterLocation(path: path, mountPoint: m.mountPoint, source: m.source) {
                (f.glusterVolume, f.glusterPath) = (loc.volume, loc.path)
                if statedumps[loc.volume] == nil {
                    let cli = GlusterCLI()
                    if !cli.isUsable {
                        statedumps[loc.volume] = .failure(.notServer)
                    } else {
                        statedumps[loc.volume] = Result { try cli.statedump(volume: loc.volume).records }
                            .mapError { StatedumpFailure.failed("\($0)") }
                    }
                }
                switch statedumps[loc.volume]! {
                case .success(let records):
                    f.statedump = records.filter { $0.isOn(loc.path, .active) }
                    // F_GETLK reports one conflicting lock per byte: of several readers only
                    // one. The statedump lists every lock; this host's own (HOST: this host,
                    // a pid with the file open here) become rows too.
                    for r in f.statedump! where r.host == f.localHost {
                        guard let pid = r.holderPID, openers.contains(pid), !listed.contains("\(key.inode)/\(pid)"),
                              !rows.contains(where: { $0.inode == key.inode && $0.pid == pid && $0.start == r.range.start
                                                      && $0.end == r.range.end }) else { continue }
                        if !f.openers.contains(where: { $0.pid == pid }), let fd = fds.first(where: { $0.pid == pid }) {
                            f.openers.append(Opener(fd: fd.fd, process: ProcessDetails(pid: pid, command: "")))
                        }
                        rows.append(KernelLock(id: -(rows.count + 1), kind: .posix, mode: "ADVISORY", type: r.type.rawValue,
                                               pid: pid, device: dev, inode: key.inode, start: r.range.start, end: r.range.end))
                    }
                case .failure(.notServer): f.statedumpNote = "hosts not named: not a server node of volume \(loc.volume)"
                case .failure(.failed(let why)):
                    f.statedumpNote = "hosts not named: statedump failed: \(why)"
                    unseen.append(Unseen(what: "hosts of the holders on gluster volume \(loc.volume)", why: "statedump failed: \(why)"))
                }
            }
            facts.append(f)
        }
        return (rows, facts)
    }

    enum StatedumpFailure: Error {
        case notServer
        case failed(String)
    }
}
