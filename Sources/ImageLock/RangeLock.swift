import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Read (shared) or write (exclusive) fcntl lock.
public enum LockType: String, Sendable, Codable, Hashable {
    case read = "READ"
    case write = "WRITE"

    var cValue: Int16 { self == .read ? Int16(F_RDLCK) : Int16(F_WRLCK) }

    /// Whether a lock of this type conflicts with one of `other`'s held by someone else.
    public func conflicts(with other: LockType) -> Bool { self == .write || other == .write }
}

/// Which fcntl lock family a lock is taken with.
public enum LockFlavor: String, Sendable, Codable {
    /// Open file description locks (F_OFD_*): owned by the open file, not the process.
    case ofd
    /// Classic POSIX record locks (F_SETLK): owned by the process, all dropped when it
    /// closes any fd of the file.
    case posix
}

/// How the core chooses the flavor.
public enum LockFlavorPolicy: String, Sendable {
    /// OFD when the kernel has them, else POSIX (as QEMU's util/osdep.c does).
    case automatic
    /// Always classic POSIX (for tests of the fallback and for old kernels).
    case posixOnly = "posix"

    /// The flavor this policy gives on this kernel.
    public var flavor: LockFlavor {
        switch self {
        case .posixOnly: return .posix
        case .automatic: return RangeLocks.kernelHasOFD ? .ofd : .posix
        }
    }
}

/// A byte range of a file, as fcntl sees it: `length` 0 means "to end of file".
public struct ByteRange: Hashable, Sendable, Codable {
    public var start: Int64
    public var length: Int64
    public init(start: Int64, length: Int64) {
        self.start = start
        self.length = length
    }
    public static let wholeFile = ByteRange(start: 0, length: 0)

    /// The last byte, inclusive, or nil for end of file (as /proc/locks prints `EOF`).
    public var end: Int64? { length == 0 ? nil : start + length - 1 }

    public func overlaps(start s: Int64, end e: Int64?) -> Bool {
        let myEnd = end ?? Int64.max
        let otherEnd = e ?? Int64.max
        return start <= otherEnd && s <= myEnd
    }
}

/// The lock F_GETLK reported as standing in the way.
public struct BlockingLock: Hashable, Sendable, Codable {
    public var type: LockType
    public var range: ByteRange
    /// The holder's pid for classic POSIX locks; nil for OFD locks (the kernel says -1).
    public var pid: Int32?
}

/// fcntl range locks on an open fd, OFD first with the classic POSIX fallback.
enum RangeLocks {
    /// Whether F_OFD_* work here. Probed as QEMU does: F_OFD_GETLK on /dev/null.
    static let kernelHasOFD: Bool = {
        guard case .success(let fd) = Sys.open("/dev/null", O_RDWR | O_CLOEXEC) else { return false }
        defer { Sys.close(fd) }
        var fl = flock(type: Int16(F_WRLCK), range: .wholeFile)
        if case .success = Sys.fcntlLock(fd, clinux_F_OFD_GETLK, &fl) { return true }
        return false
    }()

    /// Tries to take the lock without waiting. Returns false when someone else holds a
    /// conflicting lock (EAGAIN / EACCES): that is a result, not an error.
    static func set(fd: Int32, flavor: LockFlavor, type: LockType, range: ByteRange) -> Result<Bool, Errno> {
        var fl = flock(type: type.cValue, range: range)
        let cmd = flavor == .ofd ? clinux_F_OFD_SETLK : F_SETLK
        switch Sys.fcntlLock(fd, cmd, &fl) {
        case .success: return .success(true)
        case .failure(let e) where e.code == EAGAIN || e.code == EACCES: return .success(false)
        case .failure(let e): return .failure(e)
        }
    }

    static func unlock(fd: Int32, flavor: LockFlavor, range: ByteRange) {
        var fl = flock(type: Int16(F_UNLCK), range: range)
        let cmd = flavor == .ofd ? clinux_F_OFD_SETLK : F_SETLK
        _ = Sys.fcntlLock(fd, cmd, &fl)
    }

    /// Asks the kernel whether a lock of `type` on `range` would be granted. Works on an
    /// O_RDONLY fd even for a write query (only SETLK checks the open mode).
    /// The corresponding C call is `fcntl(fd, F_OFD_GETLK, &flock)`.
    static func test(fd: Int32, flavor: LockFlavor, type: LockType, range: ByteRange) -> Result<BlockingLock?, Errno> {
        var fl = flock(type: type.cValue, range: range)
        let cmd = flavor == .ofd ? clinux_F_OFD_GETLK : F_GETLK
        return Sys.fcntlLock(fd, cmd, &fl).map { _ in
            if fl.l_type == Int16(F_UNLCK) { return nil }
            return BlockingLock(
                type: fl.l_type == Int16(F_RDLCK) ? .read : .write,
                range: ByteRange(start: Int64(fl.l_start), length: Int64(fl.l_len)),
                pid: fl.l_pid > 0 ? Int32(fl.l_pid) : nil)
        }
    }
}
