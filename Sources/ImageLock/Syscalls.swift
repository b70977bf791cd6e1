// The one place where the locking core calls the C library for files and locks.
// Every failure becomes an errno value; EINTR is retried here and nowhere else.
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The result of `stat`/`lstat`/`fstat`, reduced to what the core needs.
public struct FileStatus: Sendable, Equatable {
    public var kind: FileKind
    public var device: UInt64
    public var inode: UInt64
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var links: UInt64
    public var size: Int64

    init(_ st: stat) {
        kind = FileKind(mode: st.st_mode)
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        mode = UInt32(st.st_mode)
        uid = st.st_uid
        gid = st.st_gid
        links = UInt64(st.st_nlink)
        size = Int64(st.st_size)
    }

    /// The device as /proc/locks prints it: `MAJOR:MINOR` in hex, at least two digits each.
    public var deviceID: DeviceID {
        DeviceID(major: clinux_major(dev_t(device)), minor: clinux_minor(dev_t(device)))
    }
}

// The stat functions share their name with `struct stat`; name them apart.
private func c_stat(_ p: String, _ st: inout stat) -> Int32 { stat(p, &st) }
private func c_lstat(_ p: String, _ st: inout stat) -> Int32 { lstat(p, &st) }
private func c_fstat(_ fd: Int32, _ st: inout stat) -> Int32 { fstat(fd, &st) }
private func c_flock(_ fd: Int32, _ operation: Int32) -> Int32 { flock(fd, operation) }
private func c_fstatfs(_ fd: Int32, _ buf: inout statfs) -> Int32 { fstatfs(fd, &buf) }
private func c_statfs(_ p: String, _ buf: inout statfs) -> Int32 { statfs(p, &buf) }

enum Sys {
    static func retrying<T: BinaryInteger>(_ body: () -> T) -> Result<T, Errno> {
        while true {
            let r = body()
            if r >= 0 { return .success(r) }
            let e = errno
            if e != EINTR { return .failure(Errno(e)) }
        }
    }

    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Result<Int32, Errno> {
        retrying { Glibc.open(path, flags, mode) }
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // Linux: never retry close on EINTR.
    }

    static func stat(_ path: String) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { c_stat(path, &st) }.map { _ in FileStatus(st) }
    }

    static func lstat(_ path: String) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { c_lstat(path, &st) }.map { _ in FileStatus(st) }
    }

    static func fstat(_ fd: Int32) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { c_fstat(fd, &st) }.map { _ in FileStatus(st) }
    }

    /// statfs(2)'s f_type: the filesystem's magic number (linux/magic.h).
    static func filesystemMagic(_ path: String) -> Result<UInt32, Errno> {
        var buf = statfs()
        return retrying { c_statfs(path, &buf) }.map { _ in UInt32(truncatingIfNeeded: buf.f_type) }
    }

    static func filesystemMagic(fd: Int32) -> Result<UInt32, Errno> {
        var buf = statfs()
        return retrying { c_fstatfs(fd, &buf) }.map { _ in UInt32(truncatingIfNeeded: buf.f_type) }
    }

    static func realpath(_ path: String) -> Result<String, Errno> {
        guard let p = Glibc.realpath(path, nil) else { return .failure(Errno(errno)) }
        defer { free(p) }
        return .success(String(cString: p))
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Result<Void, Errno> {
        var offset = 0
        while offset < bytes.count {
            let r = bytes.withUnsafeBytes { buf in
                retrying { Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset) }
            }
            switch r {
            case .success(let n): offset += n
            case .failure(let e): return .failure(e)
            }
        }
        return .success(())
    }

    static func unlink(_ path: String) -> Result<Void, Errno> {
        retrying { Glibc.unlink(path) }.map { _ in () }
    }

    /// A non-blocking flock(2) request; false when someone else holds a conflicting one.
    static func flockNonBlocking(_ fd: Int32, exclusive: Bool) -> Result<Bool, Errno> {
        switch retrying({ c_flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) }) {
        case .success: return .success(true)
        case .failure(let e) where e.code == EWOULDBLOCK: return .success(false)
        case .failure(let e): return .failure(e)
        }
    }

    static func access(_ path: String, _ mode: Int32) -> Bool {
        Glibc.access(path, mode) == 0
    }

    /// fcntl with a `struct flock`. The corresponding C function is `fcntl`.
    static func fcntlLock(_ fd: Int32, _ cmd: Int32, _ lock: inout flock) -> Result<Void, Errno> {
        retrying { clinux_fcntl_lock(fd, cmd, &lock) }.map { _ in () }
    }
}

/// An errno value as a Swift error, with strerror's text.
public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
}

/// A device number as /proc/locks and fdinfo print it (`fe:00`).
public struct DeviceID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public var major: UInt32
    public var minor: UInt32
    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// Parses `MAJ:MIN` in hex.
    public init?(_ text: Substring) {
        guard let colon = text.firstIndex(of: ":"),
              let maj = UInt32(text[..<colon], radix: 16),
              let min = UInt32(text[text.index(after: colon)...], radix: 16) else { return nil }
        self.init(major: maj, minor: min)
    }

    public var description: String {
        func two(_ v: UInt32) -> String {
            let s = String(v, radix: 16)
            return s.count < 2 ? "0" + s : s
        }
        return "\(two(major)):\(two(minor))"
    }

    public static func < (a: DeviceID, b: DeviceID) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = DeviceID(Substring(s)) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad device \(s)")
        }
        self = d
    }
}
