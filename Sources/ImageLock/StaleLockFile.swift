#if canImport(Glibc)
import Glibc
#endif

/// What `ImageLocker.removeStaleLockFile(_:)` did. Only `.removed` removed anything.
public enum StaleLockFileRemoval: Sendable, Equatable, CustomStringConvertible {
    /// Nobody held it: it was locked, checked and unlinked.
    case removed
    /// Someone holds a lock on it (fcntl or flock): kept.
    case held
    /// It was already gone.
    case gone
    /// The path named another file by the time it was locked (replaced meanwhile): kept.
    case replaced
    /// Not a lock file this call may remove (a symlink, not a regular file, not named
    /// `.qemu-<sha1>.lock`, not in this locker's lock dir, a lease on it): kept.
    case refused(String)

    public var description: String {
        switch self {
        case .removed: return "removed"
        case .held: return "kept: it is held"
        case .gone: return "already gone"
        case .replaced: return "kept: the path was replaced while it was being checked"
        case .refused(let why): return "kept: \(why)"
        }
    }
}

extension ImageLocker {
    /// Removes a lock file that nobody holds, safely: opens it
    /// O_RDWR|O_NOFOLLOW|O_NONBLOCK (no O_CREAT), takes an exclusive whole-file lock on it
    /// without waiting (the scheme's own lock, OFD when the kernel has them) and an
    /// exclusive flock (a holder using flock(2) is invisible to fcntl), checks that the
    /// path still names the inode it locked (lstat against fstat), unlinks it, and
    /// releases. A file that anyone holds is never removed: every lock-file user of the
    /// core locks before it checks the path, so it either held the file first (and this
    /// call finds it held) or finds the path gone or replaced after this call's release
    /// (and starts over with a new file).
    ///
    /// Only entries of this locker's lock dir named `.qemu-<40 hex digits>.lock` are
    /// considered. With classic POSIX locks (a kernel without OFD locks, or
    /// `LockFlavorPolicy.posixOnly`) the calling process's own locks are invisible to the
    /// test: do not call this on a lock file the calling process itself holds.
    /// The corresponding C functions are `open`, `fcntl(F_OFD_SETLK)`, `flock`, `lstat`,
    /// `fstat` and `unlink`.
    public func removeStaleLockFile(_ path: String) throws -> StaleLockFileRemoval {
        let slash = path.lastIndex(of: "/")
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard ImageLocker.isLockFileName(name) else {
            return .refused("\(name) is not named like a lock file (.qemu-<sha1>.lock)")
        }
        guard ImageLocker.sameDirectory(dir, lockDirectory) else {
            return .refused("it is not in the lock dir \(lockDirectory)")
        }
        switch Sys.lstat(path) {
        case .success(let s) where s.kind == .symlink: return .refused("it is a symbolic link")
        case .success(let s) where s.kind != .regular: return .refused("it is a \(s.kind.rawValue), not a regular file")
        case .success: break
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e): throw ImageLockError.system(operation: "lstat", path: path, errno: e.code)
        }
        let fd: Int32
        switch Sys.open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY) {
        case .success(let f): fd = f
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e) where e.code == ELOOP: return .refused("it is a symbolic link")
        // A lease holder makes a non-blocking open fail instead of breaking the lease.
        case .failure(let e) where e.code == EWOULDBLOCK: return .refused("a lease is held on it")
        case .failure(let e) where e.code == EACCES || e.code == EPERM || e.code == EROFS:
            throw ImageLockError.lockFileNotAccessible(path: path, needsWrite: true, errno: e.code)
        case .failure(let e): throw ImageLockError.system(operation: "open", path: path, errno: e.code)
        }
        defer { Sys.close(fd) }  // closing the fd releases both locks
        let mine: FileStatus
        switch Sys.fstat(fd) {
        case .success(let s) where s.kind == .regular: mine = s
        case .success(let s): return .refused("it is a \(s.kind.rawValue), not a regular file")
        case .failure(let e): throw ImageLockError.system(operation: "fstat", path: path, errno: e.code)
        }
        switch RangeLocks.set(fd: fd, flavor: flavorPolicy.flavor, type: .write, range: .wholeFile) {
        case .success(true): break
        case .success(false): return .held
        case .failure(let e): throw ImageLockError.system(operation: "lock", path: path, errno: e.code)
        }
        switch Sys.flockNonBlocking(fd, exclusive: true) {
        case .success(true): break
        case .success(false): return .held
        case .failure(let e): throw ImageLockError.system(operation: "flock", path: path, errno: e.code)
        }
        switch Sys.lstat(path) {
        case .success(let now) where now.device == mine.device && now.inode == mine.inode: break
        case .success: return .replaced
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e): throw ImageLockError.system(operation: "lstat", path: path, errno: e.code)
        }
        switch Sys.unlink(path) {
        case .success: return .removed
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e): throw ImageLockError.system(operation: "unlink", path: path, errno: e.code)
        }
    }

    /// `.qemu-` + 40 lowercase hex digits + `.lock`.
    public static func isLockFileName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard u.count == 51, name.hasPrefix(".qemu-"), name.hasSuffix(".lock") else { return false }
        return u[6..<46].allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    static func sameDirectory(_ a: String, _ b: String) -> Bool {
        func trimmed(_ s: String) -> String {
            var s = s
            while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
            return s
        }
        if trimmed(a) == trimmed(b) { return true }
        guard case .success(let x) = Sys.stat(a), case .success(let y) = Sys.stat(b) else { return false }
        return x.kind == .directory && x.device == y.device && x.inode == y.inode
    }
}
