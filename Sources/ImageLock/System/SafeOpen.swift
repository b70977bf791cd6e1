import CLinux
#if canImport(Glibc)
import Glibc
#endif

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
