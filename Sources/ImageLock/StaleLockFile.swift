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
    /// Removes a lock file that nobody holds, safely (`removeStaleLockFile(named:in:)`), by
    /// path: the path must name an entry of this locker's lock dir, which is opened for it
    /// (`OpenedDirectory`). Removing many: open the dir once and call the other form.
    public func removeStaleLockFile(_ path: String) throws -> StaleLockFileRemoval {
        let (dir, name) = ImageLocker.directoryAndName(path)
        guard ImageLocker.isLockFileName(name) else {
            return .refused("\(name) is not named like a lock file (.qemu-<sha1>.lock)")
        }
        guard ImageLocker.sameDirectory(dir, lockDirectory) else {
            return .refused("it is not in the lock dir \(lockDirectory)")
        }
        let opened: OpenedDirectory
        switch OpenedDirectory.open(dir) {
        case .success(let d): opened = d
        case .failure(let e) where e.code == ELOOP:
            return .refused("the path to its dir goes through a symbolic link that root does not own in a dir only root may write")
        case .failure(let e): throw ImageLockError.system(operation: "open lock dir", path: dir, errno: e.code)
        }
        return try removeStaleLockFile(named: name, in: opened)
    }

    /// Removes the lock file `name` of the open lock dir `dir` if nobody holds it, safely:
    /// every step is relative to the dir's fd, so a directory on its path renamed or
    /// swapped for a link meanwhile cannot redirect any of them to another dir. Opens it
    /// O_RDWR only if it is a regular file (`SafeOpen`: no link, FIFO or device is opened),
    /// takes an exclusive whole-file lock on it without waiting (the scheme's own lock, OFD
    /// when the kernel has them) and an exclusive flock (a holder using flock(2) is
    /// invisible to fcntl), checks that the name still names the inode it locked, unlinks
    /// it, and releases. With `expecting` (the device and inode a scan saw), an entry that
    /// is another file by now is kept (`.replaced`). A file that anyone holds is never
    /// removed: every lock-file user of the core locks before it checks the path, so it
    /// either held the file first (and this call finds it held) or finds the path gone or
    /// replaced after this call's release (and starts over with a new file).
    ///
    /// With classic POSIX locks (a kernel without OFD locks, or
    /// `LockFlavorPolicy.posixOnly`) the calling process's own locks are invisible to the
    /// test: do not call this on a lock file the calling process itself holds.
    /// The corresponding C functions are `fstatat`, `openat`, `fcntl(F_OFD_SETLK)`,
    /// `flock`, `fstat` and `unlinkat`.
    public func removeStaleLockFile(named name: String, in dir: OpenedDirectory,
                                    expecting: (device: DeviceID, inode: UInt64)? = nil) throws -> StaleLockFileRemoval {
        let path = (dir.path.hasSuffix("/") ? dir.path : dir.path + "/") + name
        guard ImageLocker.isLockFileName(name) else {
            return .refused("\(name) is not named like a lock file (.qemu-<sha1>.lock)")
        }
        switch dir.entryStatus(name) {
        case .success(let s) where s.kind == .symlink: return .refused("it is a symbolic link")
        case .success(let s) where s.kind != .regular: return .refused("it is a \(s.kind.rawValue), not a regular file")
        case .success(let s):
            if let e = expecting, s.deviceID != e.device || s.inode != e.inode { return .replaced }
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e): throw ImageLockError.system(operation: "lstat", path: path, errno: e.code)
        }
        let fd: Int32
        let mine: FileStatus
        switch SafeOpen.open(at: dir, name, flags: O_RDWR, blockDevices: false) {
        case .success(let opened): (fd, mine) = opened
        case .failure(.refused(.symlink)): return .refused("it is a symbolic link")
        case .failure(.refused(let kind)): return .refused("it is a \(kind.rawValue), not a regular file")
        case .failure(.system(let e)) where e.code == ENOENT: return .gone
        // A lease holder makes a non-blocking open fail instead of breaking the lease.
        case .failure(.system(let e)) where e.code == EWOULDBLOCK: return .refused("a lease is held on it")
        case .failure(.system(let e)) where e.code == EACCES || e.code == EPERM || e.code == EROFS:
            throw ImageLockError.lockFileNotAccessible(path: path, needsWrite: true, errno: e.code)
        case .failure(.system(let e)): throw ImageLockError.system(operation: "open", path: path, errno: e.code)
        }
        defer { Sys.close(fd) }  // closing the fd releases both locks
        if let e = expecting, mine.deviceID != e.device || mine.inode != e.inode { return .replaced }
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
        switch dir.entryStatus(name) {
        case .success(let now) where now.device == mine.device && now.inode == mine.inode: break
        case .success: return .replaced
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e): throw ImageLockError.system(operation: "lstat", path: path, errno: e.code)
        }
        switch dir.unlink(name) {
        case .success: return .removed
        case .failure(let e) where e.code == ENOENT: return .gone
        case .failure(let e): throw ImageLockError.system(operation: "unlink", path: path, errno: e.code)
        }
    }

    /// A path's directory (`.` for a bare name, `/` at the root) and last component.
    public static func directoryAndName(_ path: String) -> (directory: String, name: String) {
        let slash = path.lastIndex(of: "/")
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        return (dir, name)
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
