#if canImport(Glibc)
import Glibc
#endif

/// One lock as the kernel lists it in /proc/locks or in a `lock:` line of
/// /proc/PID/fdinfo/FD. Format (fs/locks.c, lock_get_status):
/// `ID: [-> ]KIND MODE TYPE PID MAJ:MIN:INODE START END`, hex MAJ/MIN, END may be `EOF`,
/// an inode-less lock prints `<none>:0`; runs of spaces vary.
public struct KernelLock: Hashable, Sendable, Codable {
    /// The ID column. A blocked waiter line carries its blocker's ID.
    public var id: Int
    /// POSIX, OFDLCK, FLOCK, LEASE, DELEG, ACCESS.
    public var kind: String
    /// ADVISORY, MANDATORY, or a lease state (ACTIVE, BREAKING, BREAKER).
    public var mode: String
    /// READ, WRITE, UNLCK (as printed).
    public var type: String
    /// The pid column; nil where the kernel prints -1 (OFD locks).
    public var pid: Int32?
    public var device: DeviceID?
    public var inode: UInt64?
    public var start: Int64
    /// Inclusive end; nil for `EOF`.
    public var end: Int64?
    /// For a `->` line: the ID of the lock this request is blocked by.
    public var blockedBy: Int?

    public init(id: Int, kind: String, mode: String, type: String, pid: Int32?, device: DeviceID?,
                inode: UInt64?, start: Int64, end: Int64?, blockedBy: Int? = nil) {
        self.id = id
        self.kind = kind
        self.mode = mode
        self.type = type
        self.pid = pid
        self.device = device
        self.inode = inode
        self.start = start
        self.end = end
        self.blockedBy = blockedBy
    }

    /// Parses one line; nil for anything malformed.
    public init?(line: Substring) {
        let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard tokens.count >= 7, tokens[0].last == ":", let id = Int(tokens[0].dropLast()) else { return nil }
        var rest = tokens[1...]
        var blocked = false
        if rest.first == "->" {
            blocked = true
            rest = rest.dropFirst()
        }
        let fields = Array(rest)
        // KIND MODE... TYPE PID DEV:INO START END: the MODE part may be one or two words.
        guard fields.count >= 6 else { return nil }
        let n = fields.count
        let endText = fields[n - 1], startText = fields[n - 2], devIno = fields[n - 3]
        guard let start = Int64(startText), let pid = Int32(fields[n - 4]) else { return nil }
        let end: Int64?
        if endText == "EOF" { end = nil } else {
            guard let e = Int64(endText) else { return nil }
            end = e
        }
        var device: DeviceID?
        var inode: UInt64?
        if !devIno.hasPrefix("<none>") {
            guard let lastColon = devIno.lastIndex(of: ":"),
                  let d = DeviceID(devIno[..<lastColon]),
                  let i = UInt64(devIno[devIno.index(after: lastColon)...]) else { return nil }
            device = d
            inode = i
        }
        self.init(id: id, kind: String(fields[0]), mode: fields[1..<(n - 5)].joined(separator: " "),
                  type: String(fields[n - 5]), pid: pid > 0 ? pid : nil, device: device, inode: inode,
                  start: start, end: end, blockedBy: blocked ? id : nil)
        guard !self.mode.isEmpty else { return nil }
    }

    public var isOFD: Bool { kind == "OFDLCK" }
    /// An fcntl record lock (POSIX or OFD). flock(2) locks and leases never conflict with
    /// fcntl locks, so they never stop QEMU or the lockfile scheme.
    public var isFcntlLock: Bool { kind == "POSIX" || kind == "OFDLCK" }
    public var isWaiter: Bool { blockedBy != nil }
    public var lockType: LockType? {
        switch type {
        case "READ": return .read
        case "WRITE": return .write
        default: return nil
        }
    }

    /// Same lock, ignoring the ID (which is per-file in fdinfo and global in /proc/locks).
    public func sameLock(as other: KernelLock) -> Bool {
        kind == other.kind && type == other.type && device == other.device && inode == other.inode
            && start == other.start && end == other.end
    }

    public func overlaps(_ range: ByteRange) -> Bool { range.overlaps(start: start, end: end) }
}

/// What /proc/PID/fdinfo/FD says about one open file.
public struct FDInfo: Sendable, Hashable {
    /// Open flags (octal in the file). `flags & 3`: 0 read-only, 1 write-only, 2 read-write.
    public var flags: UInt32
    public var inode: UInt64?
    public var mountID: Int?
    public var locks: [KernelLock]

    public init(flags: UInt32, inode: UInt64?, mountID: Int?, locks: [KernelLock]) {
        self.flags = flags
        self.inode = inode
        self.mountID = mountID
        self.locks = locks
    }

    /// Parses the text of an fdinfo file; nil when it has no `flags:` line.
    public init?(text: Substring) {
        var flags: UInt32?
        var inode: UInt64?
        var mnt: Int?
        var locks: [KernelLock] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("flags:") {
                flags = UInt32(line.dropFirst(6).trimmingSpaces(), radix: 8)
            } else if line.hasPrefix("ino:") {
                inode = UInt64(line.dropFirst(4).trimmingSpaces())
            } else if line.hasPrefix("mnt_id:") {
                mnt = Int(line.dropFirst(7).trimmingSpaces())
            } else if line.hasPrefix("lock:") {
                if let l = KernelLock(line: line.dropFirst(5)) { locks.append(l) }
            }
        }
        guard let f = flags else { return nil }
        self.init(flags: f, inode: inode, mountID: mnt, locks: locks)
    }

    public var openMode: OpenMode { OpenMode(flags: flags) }
}

/// How a file is open, from the low bits of its open flags.
public enum OpenMode: String, Sendable, Codable, Hashable {
    case readOnly = "read-only"
    case writeOnly = "write-only"
    case readWrite = "read-write"

    public init(flags: UInt32) {
        switch flags & 3 {
        case 1: self = .writeOnly
        case 2, 3: self = .readWrite
        default: self = .readOnly
        }
    }

    public var writes: Bool { self != .readOnly }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s = s.dropLast() }
        return s
    }
}

/// Small readers of /proc shared by the core and the inspector.
public enum ProcFS {
    /// Reads a whole (small, pseudo) file; nil when it cannot be read (gone, EACCES).
    public static func read(_ path: String) -> String? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return out.isEmpty ? nil : String(decoding: out, as: UTF8.self)
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The names in a directory (without . and ..); nil when it cannot be listed.
    public static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The pids under a /proc root, numerically.
    public static func pids(procRoot: String) -> [Int32] {
        (list(procRoot) ?? []).compactMap { Int32($0) }.sorted()
    }

    /// Every lock in `<procRoot>/locks`; malformed lines are skipped.
    public static func locks(procRoot: String) -> [KernelLock] {
        guard let text = read(procRoot + "/locks") else { return [] }
        return text.split(separator: "\n").compactMap { KernelLock(line: $0) }
    }

    /// The command name (`comm`) of a process; nil when it is gone.
    public static func command(pid: Int32, procRoot: String) -> String? {
        guard let c = read("\(procRoot)/\(pid)/comm") else { return nil }
        return String(c.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
    }
}

/// A process that holds a lock, as far as the core needs to name it.
public struct LockHolder: Hashable, Sendable, Codable {
    public var pid: Int32
    public var command: String
    /// The fd through which it holds the lock, when it was found through fdinfo.
    public var fd: Int32?
    public var lock: KernelLock

    public init(pid: Int32, command: String, fd: Int32?, lock: KernelLock) {
        self.pid = pid
        self.command = command
        self.fd = fd
        self.lock = lock
    }
}

/// Names the processes behind kernel locks: the pid column for classic POSIX locks and
/// flock, the fdinfo `lock:` lines for OFD locks (whose pid the kernel reports as -1).
public enum LockHolderFinder {
    /// The holders of locks on `file` that overlap `range` and conflict with a lock of
    /// `type`, leaving out `excluding` (the asking process). Blocked waiters are not holders.
    public static func holders(
        of file: FileStatus, conflictingWith type: LockType, range: ByteRange,
        excluding: Int32 = getpid(), procRoot: String = "/proc"
    ) -> [LockHolder] {
        holders(of: file, conflictingWith: type, ranges: [range], excluding: excluding, procRoot: procRoot)
    }

    /// The same for several ranges at once: one read of /proc/locks, one pass over fdinfo.
    public static func holders(
        of file: FileStatus, conflictingWith type: LockType, ranges: [ByteRange],
        excluding: Int32 = getpid(), procRoot: String = "/proc"
    ) -> [LockHolder] {
        let dev = file.deviceID
        let relevant = ProcFS.locks(procRoot: procRoot).filter { l in
            !l.isWaiter && l.isFcntlLock && l.inode == file.inode && l.device == dev
                && ranges.contains { l.overlaps($0) } && (l.lockType.map { type.conflicts(with: $0) } ?? true)
        }
        guard !relevant.isEmpty else { return [] }
        return attribute(relevant, procRoot: procRoot).filter { $0.pid != excluding }
    }

    /// Attributes each lock to its holder(s). OFD locks are looked up in fdinfo of every
    /// process, once, however many there are.
    public static func attribute(_ locks: [KernelLock], procRoot: String = "/proc") -> [LockHolder] {
        var result: [LockHolder] = []
        var seen = Set<String>()
        func add(_ h: LockHolder) {
            let key = "\(h.pid)/\(h.fd ?? -1)/\(h.lock.start)/\(h.lock.end ?? -1)/\(h.lock.type)/\(h.lock.inode ?? 0)"
            if seen.insert(key).inserted { result.append(h) }
        }
        var ofd: [KernelLock] = []
        for l in locks {
            if let pid = l.pid {
                add(LockHolder(pid: pid, command: ProcFS.command(pid: pid, procRoot: procRoot) ?? "?", fd: nil, lock: l))
            } else {
                ofd.append(l)
            }
        }
        guard !ofd.isEmpty else { return result }
        let inodes = Set(ofd.compactMap { $0.inode })
        for pid in ProcFS.pids(procRoot: procRoot) {
            let dir = "\(procRoot)/\(pid)/fdinfo"
            guard let fds = ProcFS.list(dir) else { continue }
            var command: String?
            for name in fds {
                guard let fd = Int32(name), let text = ProcFS.read("\(dir)/\(name)"),
                      let info = FDInfo(text: Substring(text)), !info.locks.isEmpty else { continue }
                if let ino = info.inode, !inodes.contains(ino) { continue }
                for held in info.locks {
                    for wanted in ofd where held.sameLock(as: wanted) {
                        if command == nil { command = ProcFS.command(pid: pid, procRoot: procRoot) ?? "?" }
                        add(LockHolder(pid: pid, command: command!, fd: fd, lock: wanted))
                    }
                }
            }
        }
        return result
    }
}
