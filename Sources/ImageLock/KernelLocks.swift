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
    /// POSIX, OFDLCK, FLOCK, LEASE, DELEG, ACCESS (as printed).
    public var kind: Kind
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

    public init(id: Int, kind: Kind, mode: String, type: String, pid: Int32?, device: DeviceID?,
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
        var text = String(line)
        guard let l = text.withUTF8({ KernelLock.parse($0) }) else { return nil }
        self = l
    }

    /// Calls `body` with the line's token boundaries (split on runs of spaces and tabs; a
    /// line has 8 or 9 tokens) and their count; nil when there are more than 24.
    private static func tokens<T>(_ line: UnsafeBufferPointer<UInt8>,
                                  _ body: (UnsafeMutableBufferPointer<Range<Int>>, Int) -> T?) -> T? {
        let capacity = 24
        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: capacity) { tok -> T? in
            var n = 0
            var i = 0
            let count = line.count
            while i < count {
                while i < count && (line[i] == 0x20 || line[i] == 0x09) { i += 1 }
                guard i < count else { break }
                let s = i
                while i < count && line[i] != 0x20 && line[i] != 0x09 { i += 1 }
                guard n < capacity else { return nil }
                tok.initializeElement(at: n, to: s..<i)
                n += 1
            }
            return body(tok, n)
        }
    }

    /// Where a line's lock sits, without making the rest of it: its inode (nil for
    /// `<none>`) and byte range (end nil for EOF). nil when the line is not in the kernel's
    /// format. For a reader that only asks which rows matter (`ChangeFingerprint`, at every tick).
    package static func position(_ line: UnsafeBufferPointer<UInt8>) -> (inode: UInt64?, start: Int64, end: Int64?)? {
        tokens(line) { tok, n in
            guard n >= 7 else { return nil }
            func bytes(_ k: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: line[tok[k]]) }
            guard let start = decimal(bytes(n - 2), as: Int64.self) else { return nil }
            let last = bytes(n - 1)
            let end = last.elementsEqual("EOF".utf8) ? nil : decimal(last, as: Int64.self)
            if end == nil && !last.elementsEqual("EOF".utf8) { return nil }
            let devIno = bytes(n - 3)
            if devIno.starts(with: "<none>".utf8) { return (nil, start, end) }
            guard let colon = devIno.lastIndex(of: UInt8(ascii: ":")),
                  let inode = decimal(UnsafeBufferPointer(rebasing: devIno[(colon + 1)...]), as: UInt64.self) else { return nil }
            return (inode, start, end)
        }
    }

    /// Parses one line given as bytes (without its newline); nil for anything malformed.
    /// Works on the bytes: /proc/locks has a line per lock (tens of thousands on a busy host).
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) -> KernelLock? {
        tokens(line) { tok, n -> KernelLock? in
            func bytes(_ k: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: line[tok[k]]) }
            func text(_ k: Int) -> String { String(decoding: bytes(k), as: UTF8.self) }
            func equals(_ k: Int, _ s: StaticString) -> Bool {
                let b = bytes(k)
                return b.count == s.utf8CodeUnitCount && memcmp(b.baseAddress!, s.utf8Start, b.count) == 0
            }
            guard n >= 7 else { return nil }
            let first = bytes(0)
            guard first.count >= 2, first[first.count - 1] == UInt8(ascii: ":"),
                  let id = decimal(UnsafeBufferPointer(rebasing: first.dropLast()), as: Int.self) else { return nil }
            var f = 1
            var blocked = false
            if equals(1, "->") {
                blocked = true
                f = 2
            }
            // KIND MODE... TYPE PID DEV:INO START END: the MODE part may be one or two words.
            let fields = n - f
            guard fields >= 6 else { return nil }
            guard let start = decimal(bytes(n - 2), as: Int64.self), let pid = decimal(bytes(n - 4), as: Int32.self) else { return nil }
            let end: Int64?
            if equals(n - 1, "EOF") { end = nil } else {
                guard let e = decimal(bytes(n - 1), as: Int64.self) else { return nil }
                end = e
            }
            var device: DeviceID?
            var inode: UInt64?
            let devIno = bytes(n - 3)
            let none = "<none>".utf8
            if !(devIno.count >= none.count && devIno.prefix(none.count).elementsEqual(none)) {
                guard let lastColon = devIno.lastIndex(of: UInt8(ascii: ":")),
                      let firstColon = devIno.firstIndex(of: UInt8(ascii: ":")), firstColon < lastColon,
                      let maj = hex(UnsafeBufferPointer(rebasing: devIno[..<firstColon])),
                      let min = hex(UnsafeBufferPointer(rebasing: devIno[(firstColon + 1)..<lastColon])),
                      let ino = decimal(UnsafeBufferPointer(rebasing: devIno[(lastColon + 1)...]), as: UInt64.self)
                else { return nil }
                device = DeviceID(major: maj, minor: min)
                inode = ino
            }
            let modeText: String
            if n - 5 - (f + 1) == 1 { modeText = text(f + 1) } else {
                modeText = (f + 1..<n - 5).map(text).joined(separator: " ")
            }
            guard !modeText.isEmpty else { return nil }
            return KernelLock(id: id, kind: Kind(rawValue: text(f)), mode: modeText, type: text(n - 5), pid: pid > 0 ? pid : nil,
                              device: device, inode: inode, start: start, end: end, blockedBy: blocked ? id : nil)
        }
    }

    /// Every lock in the text of /proc/locks, and the lines that are not in its format
    /// (blank lines are neither).
    public static func parseTable(_ text: [UInt8]) -> (locks: [KernelLock], malformed: [String]) {
        var locks: [KernelLock] = []
        locks.reserveCapacity(text.count / 48)  // a row is ~55 bytes: one allocation, no regrowth
        var malformed: [String] = []
        text.withUnsafeBufferPointer { all in
            var s = 0
            while s < all.count {
                var e = s
                while e < all.count && all[e] != 0x0a { e += 1 }
                let line = UnsafeBufferPointer(rebasing: all[s..<e])
                if let l = parse(line) { locks.append(l) } else if line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0d }) {
                    malformed.append(String(decoding: line, as: UTF8.self))
                }
                s = e + 1
            }
        }
        return (locks, malformed)
    }

    public var isOFD: Bool { kind == .ofd }
    /// An fcntl record lock (POSIX or OFD). flock(2) locks and leases never conflict with
    /// fcntl locks, so they never stop QEMU or the lockfile scheme.
    public var isFcntlLock: Bool { kind == .posix || kind == .ofd }
    public var isWaiter: Bool { blockedBy != nil }
    public var lockType: LockType? {
        switch type {
        case "READ": return .read
        case "WRITE": return .write
        default: return nil
        }
    }

    /// What makes a lock the same lock wherever the kernel lists it: everything but the ID
    /// (per file in fdinfo, global in /proc/locks), the pid (-1 for OFD locks, and absent
    /// from fdinfo's view of who holds it) and the mode.
    public struct Identity: Hashable, Sendable {
        public var kind: Kind
        public var type: String
        public var device: DeviceID?
        public var inode: UInt64?
        public var start: Int64
        public var end: Int64?
    }

    public var identity: Identity { Identity(kind: kind, type: type, device: device, inode: inode, start: start, end: end) }

    /// Same lock, ignoring the ID (`Identity`): how a /proc/locks row and an fdinfo line match.
    public func sameLock(as other: KernelLock) -> Bool { identity == other.identity }

    /// QEMU's signature: a read lock within bytes 100-104 or 200-204 (QEMU
    /// block/file-posix.c, `raw_apply_lock_bytes`: one byte per permission, shared).
    public var isQemuByteLock: Bool {
        guard lockType == .read, let e = end else { return false }
        return (start >= 100 && e <= 104) || (start >= 200 && e <= 204)
    }

    /// virtlockd's lock: byte 0, length 1 (libvirt src/locking/lock_driver_lockd.c).
    public var isByteZero: Bool { start == 0 && end == 0 }

    public func overlaps(_ range: ByteRange) -> Bool { range.overlaps(start: start, end: end) }
}

extension KernelLock {
    /// The KIND column of the kernel's lock table (fs/locks.c, lock_get_status). A struct
    /// of known values rather than an enum, as swift-system's `Errno` is: a kind a newer
    /// kernel prints is kept as printed, not lost.
    public struct Kind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A classic POSIX record lock (fcntl F_SETLK), owned by a process.
        public static let posix = Kind(rawValue: "POSIX")
        /// An open file description lock (F_OFD_SETLK), owned by an open file.
        public static let ofd = Kind(rawValue: "OFDLCK")
        /// A flock(2) lock.
        public static let flock = Kind(rawValue: "FLOCK")
        /// A file lease (F_SETLEASE).
        public static let lease = Kind(rawValue: "LEASE")
        /// An NFS delegation.
        public static let delegation = Kind(rawValue: "DELEG")
        /// A share-mode (ACCESS) lock.
        public static let access = Kind(rawValue: "ACCESS")
    }
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
        var t = String(text)
        guard let info = t.withUTF8({ FDInfo.parse($0) }) else { return nil }
        self = info
    }

    /// Parses the bytes of an fdinfo file; nil when it has no `flags:` line.
    public static func parse(_ text: UnsafeBufferPointer<UInt8>) -> FDInfo? {
        var flags: UInt32?
        var inode: UInt64?
        var mnt: Int?
        var locks: [KernelLock] = []
        func value(_ line: UnsafeBufferPointer<UInt8>, after key: StaticString) -> UnsafeBufferPointer<UInt8>? {
            let k = key.utf8CodeUnitCount
            guard line.count >= k, memcmp(line.baseAddress!, key.utf8Start, k) == 0 else { return nil }
            var s = k
            var e = line.count
            while s < e && (line[s] == 0x20 || line[s] == 0x09) { s += 1 }
            while e > s && (line[e - 1] == 0x20 || line[e - 1] == 0x09) { e -= 1 }
            return UnsafeBufferPointer(rebasing: line[s..<e])
        }
        var s = 0
        while s < text.count {
            var e = s
            while e < text.count && text[e] != 0x0a { e += 1 }
            let line = UnsafeBufferPointer(rebasing: text[s..<e])
            s = e + 1
            guard let c = line.first else { continue }
            if c == UInt8(ascii: "f"), let v = value(line, after: "flags:") {
                flags = octal(v)
            } else if c == UInt8(ascii: "i"), let v = value(line, after: "ino:") {
                inode = decimal(v, as: UInt64.self)
            } else if c == UInt8(ascii: "m"), let v = value(line, after: "mnt_id:") {
                mnt = decimal(v, as: Int.self)
            } else if c == UInt8(ascii: "l"), line.count > 5, memcmp(line.baseAddress!, "lock:", 5) == 0 {
                if let l = KernelLock.parse(UnsafeBufferPointer(rebasing: line[5...])) { locks.append(l) }
            }
        }
        guard let f = flags else { return nil }
        return FDInfo(flags: f, inode: inode, mountID: mnt, locks: locks)
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

/// A decimal integer, optionally signed, as Swift's `Int(_: String)` reads it; nil on
/// anything else or on overflow.
func decimal<T: FixedWidthInteger>(_ b: UnsafeBufferPointer<UInt8>, as: T.Type) -> T? {
    var i = 0
    var negative = false
    if let c = b.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
        negative = c == UInt8(ascii: "-")
        i = 1
    }
    guard i < b.count else { return nil }
    var v: T = 0
    while i < b.count {
        let d = b[i] &- UInt8(ascii: "0")
        guard d < 10 else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (r, o2) = negative ? m.subtractingReportingOverflow(T(d)) : m.addingReportingOverflow(T(d))
        guard !o1, !o2 else { return nil }
        v = r
        i += 1
    }
    return v
}

/// A hexadecimal UInt32 (device numbers); nil on anything else or on overflow.
func hex(_ b: UnsafeBufferPointer<UInt8>) -> UInt32? {
    guard !b.isEmpty else { return nil }
    var v: UInt32 = 0
    for c in b {
        let d: UInt8
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
        default: return nil
        }
        let (m, o) = v.multipliedReportingOverflow(by: 16)
        guard !o else { return nil }
        v = m | UInt32(d)
    }
    return v
}

/// An octal UInt32 (open flags); nil on anything else or on overflow.
func octal(_ b: UnsafeBufferPointer<UInt8>) -> UInt32? {
    guard !b.isEmpty else { return nil }
    var v: UInt32 = 0
    for c in b {
        let d = c &- UInt8(ascii: "0")
        guard d < 8 else { return nil }
        let (m, o) = v.multipliedReportingOverflow(by: 8)
        guard !o else { return nil }
        v = m | UInt32(d)
    }
    return v
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s = s.dropLast() }
        return s
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

/// Names the processes behind kernel locks for try and hold (the targeted search of
/// `HolderSearch`): the pid column for classic POSIX locks and flock, the fdinfo `lock:`
/// lines for OFD locks (whose pid the kernel reports as -1).
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

    /// Attributes each lock to its holder(s): the pid column for POSIX and flock rows, the
    /// fdinfo of the fds on the locked inodes for OFD rows (`HolderSearch.ofdHolders`), one
    /// pass over the processes however many there are.
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
        var commands: [Int32: String] = [:]
        HolderSearch.ofdHolders(of: ofd, procRoot: procRoot) { pid, fd, lock in
            if commands[pid] == nil { commands[pid] = ProcFS.command(pid: pid, procRoot: procRoot) ?? "?" }
            add(LockHolder(pid: pid, command: commands[pid]!, fd: fd, lock: lock))
        }
        return result
    }
}
