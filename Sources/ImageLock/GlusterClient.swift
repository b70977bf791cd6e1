// The one place where the locking core calls libgfapi (api/src/glfs.h; docs/ARCHITECTURE.md, "Facts"), through CGlusterAPI's
// cgluster_* functions, which load the library on first use. Built only with the package
// trait "Gluster"; without it `GlusterClient.available` is false and nothing here touches
// libgfapi.
#if Gluster
import CGlusterAPI
#endif
#if canImport(Glibc)
import Glibc
#endif

#if Gluster
/// One libgfapi client of a volume (a `glfs_t`): its own connection, its own identity to
/// the bricks' lock table. Locks taken through two clients conflict even with equal
/// lk-owners (the locks translator compares owner and client).
///
/// Every call here can block on the network; callers run them through `DetachedCall`.
/// `glfs_fini` takes ~10 s (upstream wontfix), so it only ever runs on a detached thread.
final class GlusterClient: @unchecked Sendable {
    static let available = true

    /// Why libgfapi cannot be loaded (it is loaded on first use, not at start); nil when it is.
    static var loadFailure: String? { cgluster_unavailable().map { String(cString: $0) } }

    let url: GlusterURL
    private let fs: OpaquePointer

    private init(url: GlusterURL, fs: OpaquePointer) {
        self.url = url
        self.fs = fs
    }

    /// glfs_new + glfs_set_volfile_server + glfs_init. Logs go to $LOCKSMITH_GLUSTER_LOG
    /// (for debugging), else nowhere. Fails with the errno glfs_init left (ENOENT: no such
    /// volume; ENOTCONN: no glusterd).
    /// The corresponding C functions are `glfs_new`, `glfs_set_volfile_server` and `glfs_init`.
    static func connect(_ url: GlusterURL) -> Result<GlusterClient, Errno> {
        guard let fs = cgluster_new(url.volume) else { return .failure(Errno(errno)) }
        if cgluster_set_volfile_server(fs, "tcp", url.host, Int32(url.port)) != 0 {
            let e = errno
            finiInBackground(fs)
            return .failure(Errno(e == 0 ? EINVAL : e))
        }
        let log = getenv("LOCKSMITH_GLUSTER_LOG").map { String(cString: $0) } ?? "/dev/null"
        _ = cgluster_set_logging(fs, log, 7)
        if cgluster_init(fs) != 0 {
            let e = errno
            // A failed glfs_t still owns threads and memory: release it off this path.
            finiInBackground(fs)
            return .failure(Errno(e == 0 ? EIO : e))
        }
        return .success(GlusterClient(url: url, fs: fs))
    }

    /// Opens `path` (read-write for a write lock, else read-only) and checks that it is a
    /// regular file. The corresponding C functions are `glfs_open` and `glfs_fstat`.
    func open(_ path: String, write: Bool) -> Result<GlusterFile, GlusterOpenFailure> {
        guard let fd = cgluster_open(fs, path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC) else {
            return .failure(.errno(Errno(errno)))
        }
        var st = stat()
        if cgluster_fstat(fd, &st) != 0 {
            let e = errno
            _ = cgluster_close(fd)
            return .failure(.errno(Errno(e)))
        }
        let kind = FileKind(mode: st.st_mode)
        guard kind == .regular else {
            _ = cgluster_close(fd)
            return .failure(.notRegular(kind))
        }
        return .success(GlusterFile(fd: fd))
    }

    /// The entries of a directory on the volume, without `.` and `..`, each with its kind
    /// (from the stat that readdirplus returns with it, so no d_type guessing).
    /// The corresponding C functions are `glfs_opendir`, `glfs_readdirplus_r` and `glfs_closedir`.
    func entries(of path: String, limit: Int) -> Result<[(name: String, kind: FileKind)], Errno> {
        guard let dir = cgluster_opendir(fs, path) else { return .failure(Errno(errno)) }
        defer { _ = cgluster_closedir(dir) }
        var out: [(name: String, kind: FileKind)] = []
        var st = stat()
        var entry = dirent()
        var result: UnsafeMutablePointer<dirent>?
        while out.count < limit {
            let rc = cgluster_readdirplus_r(dir, &st, &entry, &result)
            if rc != 0 { return .failure(Errno(rc > 0 ? rc : errno)) }
            guard result != nil else { break }
            let name = withUnsafeBytes(of: entry.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." || name.isEmpty { continue }
            out.append((name, FileKind(mode: st.st_mode)))
        }
        return .success(out)
    }

    /// Ends the connection on a detached thread that nobody waits for: glfs_fini takes
    /// about 10 s. Exiting the process ends the connection just as well.
    func finiInBackground() { GlusterClient.finiInBackground(fs) }

    private static func finiInBackground(_ fs: OpaquePointer) {
        let handle = UncheckedPointer(fs)
        DetachedCall.detach { _ = cgluster_fini(handle.pointer) }
    }
}

enum GlusterOpenFailure: Error {
    case errno(Errno)
    case notRegular(FileKind)
}

/// An open file on a volume (a `glfs_fd_t`) and its fcntl-style locks.
final class GlusterFile: @unchecked Sendable {
    private var fd: OpaquePointer?

    fileprivate init(fd: OpaquePointer) { self.fd = fd }

    /// Sets the lk-owner of every lock taken through this fd (at most 255 bytes).
    /// The corresponding C function is `glfs_fd_set_lkowner`.
    func setOwner(_ owner: [UInt8]) -> Result<Void, Errno> {
        guard let fd else { return .failure(Errno(EBADF)) }
        var bytes = owner
        let rc = bytes.withUnsafeMutableBytes { cgluster_fd_set_lkowner(fd, $0.baseAddress, Int32($0.count)) }
        return rc == 0 ? .success(()) : .failure(Errno(errno))
    }

    /// Tries to take the lock without waiting; false when a conflicting lock is held.
    /// `pid` goes into l_pid, which is what other clients' F_GETLK reports.
    /// The corresponding C call is `glfs_posix_lock(fd, F_SETLK, &flock)`.
    func set(type: LockType, range: ByteRange, pid: Int32) -> Result<Bool, Errno> {
        guard let fd else { return .failure(Errno(EBADF)) }
        var fl = flock(type: type == .write ? Int16(F_WRLCK) : Int16(F_RDLCK), range: range, pid: pid)
        if cgluster_posix_lock(fd, F_SETLK, &fl) == 0 { return .success(true) }
        let e = errno
        return e == EAGAIN || e == EACCES ? .success(false) : .failure(Errno(e))
    }

    /// The lock that would stand in the way of one of `type` on `range`, or nil.
    /// Its pid is the l_pid the holder put in its request (gfapi does not fill it in), or
    /// the holder's client pid once a statedump has been taken (measured, libgfapi 10.3).
    /// The corresponding C call is `glfs_posix_lock(fd, F_GETLK, &flock)`.
    func test(type: LockType, range: ByteRange) -> Result<BlockingLock?, Errno> {
        guard let fd else { return .failure(Errno(EBADF)) }
        var fl = flock(type: type == .write ? Int16(F_WRLCK) : Int16(F_RDLCK), range: range, pid: getpid())
        guard cgluster_posix_lock(fd, F_GETLK, &fl) == 0 else { return .failure(Errno(errno)) }
        if fl.l_type == Int16(F_UNLCK) { return .success(nil) }
        return .success(BlockingLock(type: fl.l_type == Int16(F_RDLCK) ? .read : .write,
                                     range: ByteRange(start: Int64(fl.l_start), length: Int64(fl.l_len)),
                                     pid: fl.l_pid > 0 ? Int32(fl.l_pid) : nil))
    }

    /// Drops a lock taken through this fd.
    func unlock(range: ByteRange) {
        guard let fd else { return }
        var fl = flock(type: Int16(F_UNLCK), range: range, pid: getpid())
        _ = cgluster_posix_lock(fd, F_SETLK, &fl)
    }

    /// The corresponding C function is `glfs_close`.
    func close() {
        guard let fd else { return }
        self.fd = nil
        _ = cgluster_close(fd)
    }
}

/// A C pointer handed to another thread; the caller guarantees the access is safe.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ p: OpaquePointer) { pointer = p }
}
#else
/// Stand-in when the package is built without the "Gluster" trait.
enum GlusterClient {
    static let available = false
    static var loadFailure: String? { nil }
}
#endif
