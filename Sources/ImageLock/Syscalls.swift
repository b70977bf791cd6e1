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
// Paths are carrier strings (`PathBytes`): the kernel gets their exact bytes.
private func c_stat(_ p: String, _ st: inout stat) -> Int32 { PathBytes.withCString(p) { stat($0, &st) } }
private func c_lstat(_ p: String, _ st: inout stat) -> Int32 { PathBytes.withCString(p) { lstat($0, &st) } }
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
        PathBytes.withCString(path) { p in retrying { Glibc.open(p, flags, mode) } }
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
        guard let p = PathBytes.withCString(path, { Glibc.realpath($0, nil) }) else { return .failure(Errno(errno)) }
        defer { free(p) }
        return .success(PathBytes.string(cString: p))
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
        PathBytes.withCString(path) { p in retrying { Glibc.unlink(p) } }.map { _ in () }
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
        PathBytes.withCString(path) { Glibc.access($0, mode) } == 0
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

/// Opens files that someone else may swap under locksmith's feet (images, backing files,
/// lock-file contents) so that nothing but the expected kind of file is ever opened, not
/// even for an instant: a FIFO, a device, a socket or a symbolic link planted at the path
/// is refused before any open of it runs (a FIFO's open wakes its writer; a device's open
/// runs its driver).
public enum SafeOpen {
    /// Which symbolic links the path may go through.
    public enum Links: Sendable {
        /// None anywhere on the path (openat2 RESOLVE_NO_SYMLINKS): for a realpath, which
        /// has none, so that a component swapped for a link after realpath is refused.
        case none
        /// Any in the directories, but not the file itself (O_NOFOLLOW).
        case notFinal
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The path names something other than the kinds allowed (a symlink included).
        case refused(FileKind)
        case system(Errno)

        public var description: String {
            switch self {
            case .refused(.symlink): return "it is a symbolic link (replaced since it was resolved?); not opened"
            case .refused(let k): return "it is a \(k.rawValue), not a disk image or regular file; not opened"
            case .system(let e): return e.description
            }
        }
    }

    /// Opens `path` with `flags` (O_RDONLY or O_RDWR, plus e.g. O_NOATIME) and
    /// O_NONBLOCK|O_NOCTTY|O_CLOEXEC, only when it is a regular file (or a block device
    /// with `blockDevices`). The path is first opened O_PATH (no file is opened for I/O by
    /// that: no FIFO, device or lease reacts), its kind is checked on that fd with fstat,
    /// and the same file is then reopened through /proc/self/fd. Returns the fd (close it)
    /// and what fstat said of it. The corresponding C functions are `openat2`, `fstat`
    /// and `open`.
    public static func open(_ path: String, flags: Int32, links: Links, blockDevices: Bool)
        -> Result<(fd: Int32, status: FileStatus), Failure> {
        var pathFD: Int32 = -1
        let pathFlags = clinux_O_PATH | O_NOFOLLOW | O_CLOEXEC
        if links == .none {
            switch PathBytes.withCString(path, { p in Sys.retrying({ clinux_open_no_symlinks(p, pathFlags) }) }) {
            case .success(let fd): pathFD = fd
            case .failure(let e) where e.code == ELOOP: return .failure(.refused(.symlink))
            case .failure(let e) where e.code != ENOSYS: return .failure(.system(e))
            case .failure: break
            }
        }
        if pathFD < 0 {
            switch Sys.open(path, pathFlags) {
            case .success(let fd): pathFD = fd
            case .failure(let e): return .failure(.system(e))
            }
        }
        return reopen(pathFD, flags: flags, blockDevices: blockDevices)
    }

    /// The same for the entry `name` of an open directory (no link followed at all).
    /// The corresponding C functions are `openat`, `fstat` and `open`.
    public static func open(at directory: OpenedDirectory, _ name: String, flags: Int32, blockDevices: Bool)
        -> Result<(fd: Int32, status: FileStatus), Failure> {
        switch PathBytes.withCString(name, { n in Sys.retrying({ openat(directory.fd, n, clinux_O_PATH | O_NOFOLLOW | O_CLOEXEC) }) }) {
        case .success(let fd): return reopen(fd, flags: flags, blockDevices: blockDevices)
        case .failure(let e): return .failure(.system(e))
        }
    }

    /// Checks the kind of the O_PATH fd `pathFD` (closed here) and reopens its file.
    private static func reopen(_ pathFD: Int32, flags: Int32, blockDevices: Bool)
        -> Result<(fd: Int32, status: FileStatus), Failure> {
        defer { Sys.close(pathFD) }
        let seen: FileStatus
        switch Sys.fstat(pathFD) {
        case .success(let s): seen = s
        case .failure(let e): return .failure(.system(e))
        }
        guard seen.kind == .regular || (blockDevices && seen.kind == .blockDevice) else {
            return .failure(.refused(seen.kind))
        }
        let fd: Int32
        switch Sys.open("/proc/self/fd/\(pathFD)", flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) {
        case .success(let f): fd = f
        case .failure(let e): return .failure(.system(e))
        }
        switch Sys.fstat(fd) {
        case .success(let s) where s.device == seen.device && s.inode == seen.inode && s.kind == seen.kind:
            return .success((fd, s))
        case .success(let s):
            Sys.close(fd)
            return .failure(.refused(s.kind))
        case .failure(let e):
            Sys.close(fd)
            return .failure(.system(e))
        }
    }
}

/// A process by pidfd (pidfd_open(2)): it names that one process for as long as it is open,
/// even after the process ended and its pid was given to another, so a signal sent
/// through it can reach no other process.
public final class ProcessHandle: @unchecked Sendable {
    public let pid: Int32
    private let fd: Int32

    private init(pid: Int32, fd: Int32) {
        self.pid = pid
        self.fd = fd
    }

    /// A pidfd of the process that has `pid` now (ESRCH: none). The caller must then make
    /// sure it is the process it means (a child not yet waited for; the same start time).
    /// The corresponding system call is `pidfd_open`.
    public static func open(pid: Int32) -> Result<ProcessHandle, Errno> {
        Sys.retrying { clinux_pidfd_open(pid) }.map { ProcessHandle(pid: pid, fd: $0) }
    }

    /// Sends `signal` to the process (ESRCH: it has ended). The corresponding system call
    /// is `pidfd_send_signal`.
    public func signal(_ signal: Int32) -> Result<Void, Errno> {
        Sys.retrying { clinux_pidfd_send_signal(fd, signal) }.map { _ in () }
    }

    deinit { Sys.close(fd) }
}

/// A directory opened once by a walk from / (or from the working directory for a relative
/// name), one component at a time with openat(O_DIRECTORY|O_NOFOLLOW), so that what is
/// then done relative to its fd (fstatat, openat, unlinkat) happens in that directory
/// whatever is renamed or swapped on its path afterwards. A symbolic link on the path is
/// followed only when root owns it and it sits in a directory that root owns and no one
/// else may write (as /var/lock -> /run/lock): a link another user could have put or
/// swapped in is refused (ELOOP).
public final class OpenedDirectory: @unchecked Sendable {
    /// The name it was opened by.
    public let path: String
    let fd: Int32
    /// fstat of the opened directory.
    public let status: FileStatus

    private init(path: String, fd: Int32, status: FileStatus) {
        self.path = path
        self.fd = fd
        self.status = status
    }

    deinit { Sys.close(fd) }

    /// The corresponding C functions are `open`, `openat`, `fstatat` and `readlinkat`.
    public static func open(_ path: String) -> Result<OpenedDirectory, Errno> {
        let dirFlags = clinux_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        var current: Int32
        switch Sys.open(path.hasPrefix("/") ? "/" : ".", dirFlags) {
        case .success(let fd): current = fd
        case .failure(let e): return .failure(e)
        }
        var rest = path.split(separator: "/").map(String.init).reversed() as [String]
        var links = 0
        while let name = rest.popLast() {
            if name.isEmpty || name == "." { continue }
            switch PathBytes.withCString(name, { n in Sys.retrying({ openat(current, n, dirFlags) }) }) {
            case .success(let next):
                Sys.close(current)
                current = next
                continue
            case .failure(let e) where e.code == ENOTDIR || e.code == ELOOP:
                break
            case .failure(let e):
                Sys.close(current)
                return .failure(e)
            }
            // Not a directory: a link this walk may follow, or a refusal.
            var st = stat()
            guard PathBytes.withCString(name, { fstatat(current, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0, FileKind(mode: st.st_mode) == .symlink else {
                Sys.close(current)
                return .failure(Errno(ENOTDIR))
            }
            guard let target = trustedLink(name, in: current) else {
                Sys.close(current)
                return .failure(Errno(ELOOP))
            }
            links += 1
            guard links <= 40 else {
                Sys.close(current)
                return .failure(Errno(ELOOP))
            }
            rest += target.split(separator: "/").map(String.init).reversed()
            if target.hasPrefix("/") {
                switch Sys.open("/", dirFlags) {
                case .success(let root):
                    Sys.close(current)
                    current = root
                case .failure(let e):
                    Sys.close(current)
                    return .failure(e)
                }
            }
        }
        switch Sys.fstat(current) {
        case .success(let s) where s.kind == .directory: return .success(OpenedDirectory(path: path, fd: current, status: s))
        case .success:
            Sys.close(current)
            return .failure(Errno(ENOTDIR))
        case .failure(let e):
            Sys.close(current)
            return .failure(e)
        }
    }

    /// The target of the symbolic link `name` in the directory `dir` when root owns both
    /// and no one else may write the directory; nil otherwise.
    private static func trustedLink(_ name: String, in dir: Int32) -> String? {
        var st = stat()
        guard case .success = Sys.fstat(dir).flatMap({ d -> Result<Void, Errno> in
            d.uid == 0 && d.mode & 0o022 == 0 ? .success(()) : .failure(Errno(EPERM))
        }), PathBytes.withCString(name, { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0,
              FileKind(mode: st.st_mode) == .symlink, st.st_uid == 0 else { return nil }
        var buf = [CChar](repeating: 0, count: 4097)
        let n = PathBytes.withCString(name) { readlinkat(dir, $0, &buf, 4096) }
        guard n > 0 else { return nil }
        return PathBytes.string(buf[0..<n].map { UInt8(bitPattern: $0) })
    }

    /// lstat of an entry. The corresponding C function is `fstatat(..., AT_SYMLINK_NOFOLLOW)`.
    public func entryStatus(_ name: String) -> Result<FileStatus, Errno> {
        var st = stat()
        return PathBytes.withCString(name) { n in Sys.retrying { fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) } }.map { _ in FileStatus(st) }
    }

    /// Removes an entry (not a directory). The corresponding C function is `unlinkat`.
    public func unlink(_ name: String) -> Result<Void, Errno> {
        PathBytes.withCString(name) { n in Sys.retrying { unlinkat(fd, n, 0) } }.map { _ in () }
    }
}
