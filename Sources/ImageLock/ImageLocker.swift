#if canImport(Glibc)
import Glibc
#endif

/// Where an image's lock lives and who takes it (README.md "Lock schemes").
public enum LockScheme: String, CaseIterable, Sendable, Codable {
    /// `<lock-dir>/.qemu-<sha1 of realpath>.lock`, whole-file fcntl lock (the 2016 series).
    case lockfile
    /// QEMU >= 2.10's permission byte locks inside the image.
    case qemu
    /// The image on a Gluster volume, locked through glfs_posix_lock.
    case gluster
    /// libvirt's virtlockd: byte 0 of the image, or a lease file. Recognised, never taken.
    case virtlockd
}

/// How strongly the lock is taken.
public enum LockMode: String, CaseIterable, Sendable, Codable {
    /// A read-write user: F_WRLCK on the lock file, or QEMU's read-write permissions.
    case exclusive
    /// A read-only user: F_RDLCK on the lock file, or QEMU's read-only permissions.
    case shared
    /// Take nothing (the seed's lock-image=off).
    case off
}

/// Why a lock could not be taken: what stands in the way and who holds it.
public struct Contention: Sendable, Hashable {
    /// The lock(s) F_GETLK reported.
    public var blocking: [BlockingLock]
    /// The processes holding conflicting locks (may be empty if they cannot be seen).
    public var holders: [LockHolder]
    /// For the qemu scheme: the failed checks in QEMU's order; the first is what QEMU prints.
    public var qemuConflicts: [QemuConflict]
    /// For the gluster scheme: the holders on the volume (pid from F_GETLK; host, owner and
    /// client pid once named from a statedump, see `GlusterLockHolder.conflicting`).
    public var glusterHolders: [GlusterLockHolder]

    public init(blocking: [BlockingLock], holders: [LockHolder], qemuConflicts: [QemuConflict] = [],
                glusterHolders: [GlusterLockHolder] = []) {
        self.blocking = blocking
        self.holders = holders
        self.qemuConflicts = qemuConflicts
        self.glusterHolders = glusterHolders
    }
}

/// A lock held other than through a local fd (the gluster backend).
protocol HeldRemoteLock: AnyObject, Sendable {
    func release()
}

/// A lock the core holds. It is released by `release()` or when the value is destroyed.
/// The lock fd is close-on-exec: a child process never inherits it. A gluster lock is
/// held on the volume through a client connection of its own; releasing it waits at most
/// the locker's gluster timeout.
public final class HeldImageLock: @unchecked Sendable {
    public let image: String
    public let scheme: LockScheme
    public let mode: LockMode
    public let flavor: LockFlavor?
    /// The lock file (lockfile scheme).
    public let lockFile: String?
    /// Whether the core created the lock file for this lock.
    public let createdLockFile: Bool
    private var fd: Int32
    private var remote: (any HeldRemoteLock)?

    init(image: String, scheme: LockScheme, mode: LockMode, flavor: LockFlavor?, lockFile: String?,
         createdLockFile: Bool, fd: Int32) {
        self.image = image
        self.scheme = scheme
        self.mode = mode
        self.flavor = flavor
        self.lockFile = lockFile
        self.createdLockFile = createdLockFile
        self.fd = fd
    }

    init(image: String, scheme: LockScheme, mode: LockMode, remote: (any HeldRemoteLock)?) {
        self.image = image
        self.scheme = scheme
        self.mode = mode
        self.flavor = nil
        self.lockFile = nil
        self.createdLockFile = false
        self.fd = -1
        self.remote = remote
    }

    /// Drops the lock (closing its fd drops every fcntl lock taken through it). The lock
    /// file is kept: it is never deleted unless proven stale (`audit --fix`).
    public func release() {
        if fd >= 0 {
            Sys.close(fd)
            fd = -1
        }
        if let r = remote {
            remote = nil
            r.release()
        }
    }

    deinit { release() }
}

/// The outcome of an acquire: held, or busy with who holds it.
public enum LockOutcome: Sendable {
    case acquired(HeldImageLock)
    case busy(Contention)
}

/// The outcome of a test-acquire (`locksmith try`): the lock was taken and released at
/// once, or could not be taken.
public struct ProbeResult: Sendable {
    public var image: String
    public var scheme: LockScheme
    public var mode: LockMode
    public var lockFile: String?
    /// False when the lock file does not exist: it is then free, and was not created.
    public var lockFileExists: Bool
    public var flavor: LockFlavor?
    /// nil when the lock could be taken.
    public var contention: Contention?
    public var acquired: Bool { contention == nil }
}

/// The locking core: lock paths, acquire, test-acquire and release for one lock dir.
public struct ImageLocker: Sendable {
    public var lockDirectory: String
    public var flavorPolicy: LockFlavorPolicy
    public var procRoot: String
    /// Seconds that each step against a Gluster server (connect, open, lock, release) may
    /// take before it is given up with `ImageLockError.glusterTimedOut`.
    public var glusterTimeout: Double

    public init(lockDirectory: String = "/var/tmp", flavorPolicy: LockFlavorPolicy = .automatic,
                procRoot: String = "/proc", glusterTimeout: Double = 5) {
        self.lockDirectory = lockDirectory
        self.flavorPolicy = flavorPolicy
        self.procRoot = procRoot
        self.glusterTimeout = glusterTimeout
    }

    // MARK: - Paths

    /// `.qemu-<lowercase hex SHA-1 of the realpath bytes>.lock`: the path's exact bytes
    /// (`PathBytes`), also when they are not UTF-8.
    public static func lockFileName(realPath: String) -> String {
        ".qemu-\(Digest.sha1Hex(PathBytes.bytes(realPath))).lock"
    }

    /// The lock file of `realPath` in this locker's lock dir.
    public func lockFilePath(realPath: String) -> String {
        let dir = lockDirectory.hasSuffix("/") && lockDirectory.count > 1 ? String(lockDirectory.dropLast()) : lockDirectory
        return (dir == "/" ? "" : dir) + "/" + ImageLocker.lockFileName(realPath: realPath)
    }

    /// Resolves an image name to its realpath and checks it can be a disk: a regular file
    /// or a block device. The corresponding C function is `realpath`.
    public static func resolveImage(_ image: String) throws -> (path: String, status: FileStatus) {
        let real: String
        switch Sys.realpath(image) {
        case .success(let p): real = p
        case .failure(let e) where e.code == ENOENT || e.code == ENOTDIR: throw ImageLockError.imageMissing(path: image)
        case .failure(let e): throw ImageLockError.system(operation: "realpath", path: image, errno: e.code)
        }
        let st: FileStatus
        switch Sys.stat(real) {
        case .success(let s): st = s
        case .failure(let e): throw ImageLockError.system(operation: "stat", path: real, errno: e.code)
        }
        guard st.kind == .regular || st.kind == .blockDevice else {
            throw ImageLockError.notAnImage(path: real, kind: st.kind)
        }
        return (real, st)
    }

    // MARK: - Lock dir

    /// Whether a directory's mode lets every user unlink or rename any entry in it:
    /// world-writable (o+w) without the sticky bit (rename(2), unlink(2): with S_ISVTX only
    /// the entry's owner, the dir's owner or root may).
    public static func isUnprotected(directoryMode mode: UInt32) -> Bool {
        mode & 0o002 != 0 && mode & 0o1000 == 0
    }

    /// Why this locker's lock dir does not protect a held lock file from other users, in one
    /// line; nil when it does (or cannot be stat'ed: taking the lock reports that). In a
    /// world-writable dir without the sticky bit anyone can delete the lock file while it is
    /// held; the next locker then creates a new file and locks it, and two exclusive holders
    /// run at the same time. The corresponding C function is `stat`.
    public func lockDirectoryHazard() -> String? {
        guard case .success(let s) = Sys.stat(lockDirectory), s.kind == .directory,
              ImageLocker.isUnprotected(directoryMode: s.mode) else { return nil }
        let octal = String(s.mode & 0o7777, radix: 8)
        return "lock dir \(lockDirectory) is world-writable without the sticky bit (mode "
            + String(repeating: "0", count: max(0, 4 - octal.count)) + octal + "): any user can delete the held lock file, and a second "
            + "exclusive holder then runs at the same time (chmod +t \(lockDirectory))"
    }

    // MARK: - Acquire / probe

    /// Takes the lock. Without `wait` it does not wait; with `wait` it retries until that
    /// many seconds have passed. A busy lock is `.busy`, not an error.
    /// An image named `gluster://HOST[:PORT]/VOLUME/PATH` is locked with the gluster scheme
    /// whatever `scheme` says (except `off` mode, which takes nothing and connects nowhere).
    public func acquire(_ image: String, scheme: LockScheme, mode: LockMode, wait: Double? = nil) throws -> LockOutcome {
        if let url = try ImageLocker.glusterImage(image, scheme: scheme) {
            try ImageLocker.requireGlusterSupport(url)
            if mode == .off {
                return .acquired(HeldImageLock(image: url.description, scheme: .gluster, mode: .off, remote: nil))
            }
            return try acquireGluster(url, mode: mode, wait: wait)
        }
        let (real, st) = try ImageLocker.resolveImage(image)
        if mode == .off {
            return .acquired(HeldImageLock(image: real, scheme: scheme, mode: .off, flavor: nil, lockFile: nil,
                                           createdLockFile: false, fd: -1))
        }
        let deadline = wait.map { Sys.monotonicSeconds() + max(0, $0) }
        var pause: UInt32 = 10_000
        while true {
            let outcome: LockOutcome
            switch scheme {
            case .lockfile: outcome = try acquireLockFile(real: real, mode: mode, create: true)
            case .qemu: outcome = try acquireQemu(real: real, status: st, mode: mode)
            case .gluster, .virtlockd:
                throw ImageLockError.unsupported("the \(scheme.rawValue) scheme cannot lock a local image")
            }
            if case .busy = outcome, let d = deadline, Sys.monotonicSeconds() < d {
                usleep(pause)
                pause = min(pause * 2, 100_000)
                continue
            }
            return outcome
        }
    }

    /// Takes the lock and releases it at once (`locksmith try`). A lock file that does
    /// not exist is reported free and is not created.
    /// A gluster:// image is tested with F_GETLK through glfs_posix_lock: nothing is taken.
    public func probe(_ image: String, scheme: LockScheme, mode: LockMode) throws -> ProbeResult {
        if let url = try ImageLocker.glusterImage(image, scheme: scheme) {
            try ImageLocker.requireGlusterSupport(url)
            return try probeGluster(url, mode: mode)
        }
        let (real, st) = try ImageLocker.resolveImage(image)
        var result = ProbeResult(image: real, scheme: scheme, mode: mode, lockFile: nil, lockFileExists: false,
                                 flavor: mode == .off ? nil : flavorPolicy.flavor, contention: nil)
        if mode == .off { return result }
        let outcome: LockOutcome
        switch scheme {
        case .lockfile:
            let path = lockFilePath(realPath: real)
            result.lockFile = path
            try checkLockDirectory()
            if case .failure(let e) = Sys.lstat(path), e.code == ENOENT {
                return result
            }
            result.lockFileExists = true
            outcome = try acquireLockFile(real: real, mode: mode, create: false)
        case .qemu:
            outcome = try acquireQemu(real: real, status: st, mode: mode)
        case .gluster, .virtlockd:
            throw ImageLockError.unsupported("the \(scheme.rawValue) scheme cannot lock a local image")
        }
        switch outcome {
        case .acquired(let held): held.release()
        case .busy(let c): result.contention = c
        }
        return result
    }

    // MARK: - lockfile scheme

    private func checkLockDirectory() throws {
        switch Sys.stat(lockDirectory) {
        case .success(let s) where s.kind == .directory: return
        case .success: throw ImageLockError.lockDirectoryMissing(path: lockDirectory)
        case .failure(let e) where e.code == ENOENT || e.code == ENOTDIR:
            throw ImageLockError.lockDirectoryMissing(path: lockDirectory)
        case .failure(let e): throw ImageLockError.system(operation: "stat", path: lockDirectory, errno: e.code)
        }
    }

    /// Opens the lock file without following links or blocking; refuses anything that is
    /// not a regular file. Returns the fd and whether this call created the file. An
    /// existing file is opened read-write only for an exclusive lock (F_WRLCK needs it);
    /// a shared lock needs only read access, so non-owners can share root's lock file.
    private func openLockFile(_ path: String, write: Bool, create: Bool) throws -> (fd: Int32, created: Bool)? {
        let base = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY
        // Refuse non-regular entries before opening them: opening a device can have effects.
        switch Sys.lstat(path) {
        case .success(let s) where s.kind == .symlink: throw ImageLockError.lockFileIsSymlink(path: path)
        case .success(let s) where s.kind != .regular: throw ImageLockError.lockFileNotRegular(path: path, kind: s.kind)
        case .success: break
        case .failure(let e) where e.code == ENOENT:
            guard create else { return nil }
            switch Sys.open(path, O_RDWR | O_CREAT | O_EXCL | base, 0o644) {
            case .success(let fd):
                _ = fchmod(fd, 0o644)
                return (fd, true)
            case .failure(let e) where e.code == EEXIST: break  // lost a race: open theirs
            case .failure(let e) where e.code == EACCES || e.code == EROFS || e.code == EPERM:
                throw ImageLockError.system(operation: "create lock file", path: path, errno: e.code)
            case .failure(let e): throw ImageLockError.system(operation: "create lock file", path: path, errno: e.code)
            }
        case .failure(let e): throw ImageLockError.system(operation: "lstat", path: path, errno: e.code)
        }
        // Still a regular file when opened (`SafeOpen`): one swapped in for a FIFO or a
        // device since the lstat is refused without being opened.
        switch SafeOpen.open(path, flags: write ? O_RDWR : O_RDONLY, links: .notFinal, blockDevices: false) {
        case .success(let opened): return (opened.fd, false)
        case .failure(.refused(.symlink)): throw ImageLockError.lockFileIsSymlink(path: path)
        case .failure(.refused(let kind)): throw ImageLockError.lockFileNotRegular(path: path, kind: kind)
        case .failure(.system(let e)) where e.code == EACCES || e.code == EPERM || e.code == EROFS:
            throw ImageLockError.lockFileNotAccessible(path: path, needsWrite: write, errno: e.code)
        case .failure(.system(let e)) where e.code == ENOENT && create: return try openLockFile(path, write: write, create: create)
        case .failure(.system(let e)): throw ImageLockError.system(operation: "open", path: path, errno: e.code)
        }
    }

    private func acquireLockFile(real: String, mode: LockMode, create: Bool) throws -> LockOutcome {
        try checkLockDirectory()
        let path = lockFilePath(realPath: real)
        let type: LockType = mode == .exclusive ? .write : .read
        let flavor = flavorPolicy.flavor
        for _ in 0..<8 {
            guard let (fd, created) = try openLockFile(path, write: mode == .exclusive, create: create) else {
                throw ImageLockError.system(operation: "open", path: path, errno: ENOENT)
            }
            let got: Bool
            switch RangeLocks.set(fd: fd, flavor: flavor, type: type, range: .wholeFile) {
            case .success(let g): got = g
            case .failure(let e):
                Sys.close(fd)
                throw ImageLockError.system(operation: "lock", path: path, errno: e.code)
            }
            guard got else {
                let c = contention(fd: fd, flavor: flavor, type: type, ranges: [.wholeFile], statusOf: path)
                Sys.close(fd)
                return .busy(c)
            }
            // The path must still name the file we locked: a stale lock file may have been
            // removed (`audit --fix`) between our open and our lock. Then start over.
            if case .success(let onDisk) = Sys.lstat(path), case .success(let mine) = Sys.fstat(fd),
               onDisk.inode == mine.inode, onDisk.device == mine.device {
                if created {
                    _ = Sys.writeAll(fd, PathBytes.bytes(real) + [10])
                }
                return .acquired(HeldImageLock(image: real, scheme: .lockfile, mode: mode, flavor: flavor,
                                               lockFile: path, createdLockFile: created, fd: fd))
            }
            Sys.close(fd)
            guard create else { break }
        }
        throw ImageLockError.system(operation: "lock (the lock file keeps being replaced)", path: path, errno: EAGAIN)
    }

    // MARK: - qemu scheme

    private func acquireQemu(real: String, status: FileStatus, mode: LockMode) throws -> LockOutcome {
        let write = mode == .exclusive
        let fd: Int32
        // The realpath, opened only if it is still a disk and reached through no link: what
        // was stat'ed may have been swapped for a FIFO or a link to a device since.
        switch SafeOpen.open(real, flags: write ? O_RDWR : O_RDONLY, links: .none, blockDevices: true) {
        case .success(let opened): fd = opened.fd
        case .failure(.refused(let kind)): throw ImageLockError.notAnImage(path: real, kind: kind)
        case .failure(.system(let e)) where e.code == EACCES || e.code == EPERM || e.code == EROFS:
            throw ImageLockError.imageNotAccessible(path: real, needsWrite: write, errno: e.code)
        case .failure(.system(let e)): throw ImageLockError.system(operation: "open", path: real, errno: e.code)
        }
        let flavor = flavorPolicy.flavor
        let perms = write ? QemuPermissions.readWrite : QemuPermissions.readOnly
        // raw_apply_lock_bytes: a shared 1-byte lock per held / unshared permission.
        for byte in perms.bytes {
            let range = ByteRange(start: byte, length: 1)
            switch RangeLocks.set(fd: fd, flavor: flavor, type: .read, range: range) {
            case .success(true): continue
            case .success(false):
                // Someone holds a write lock on QEMU's byte: not QEMU, but it blocks us.
                let c = contention(fd: fd, flavor: flavor, type: .read, ranges: [range], statusOf: real)
                Sys.close(fd)
                return .busy(c)
            case .failure(let e):
                Sys.close(fd)
                throw ImageLockError.system(operation: "lock", path: real, errno: e.code)
            }
        }
        // raw_check_lock_bytes: a write-lock test on each byte that must be free of others.
        var failed: [QemuConflict] = []
        var blocking: [BlockingLock] = []
        for check in QemuConflict.checks(for: perms) {
            switch RangeLocks.test(fd: fd, flavor: flavor, type: .write, range: ByteRange(start: check.byte, length: 1)) {
            case .success(nil): continue
            case .success(let b?):
                failed.append(check)
                blocking.append(b)
            case .failure(let e):
                Sys.close(fd)
                throw ImageLockError.system(operation: "test lock", path: real, errno: e.code)
            }
        }
        if failed.isEmpty {
            return .acquired(HeldImageLock(image: real, scheme: .qemu, mode: mode, flavor: flavor, lockFile: nil,
                                           createdLockFile: false, fd: fd))
        }
        let holders = LockHolderFinder.holders(of: status, conflictingWith: .write,
                                               ranges: failed.map { ByteRange(start: $0.byte, length: 1) },
                                               procRoot: procRoot)
        Sys.close(fd)
        return .busy(Contention(blocking: blocking, holders: Self.unique(holders), qemuConflicts: failed))
    }

    // MARK: - Holders

    private func contention(fd: Int32, flavor: LockFlavor, type: LockType, ranges: [ByteRange], statusOf path: String) -> Contention {
        var blocking: [BlockingLock] = []
        var holders: [LockHolder] = []
        guard case .success(let st) = Sys.fstat(fd) else { return Contention(blocking: [], holders: []) }
        for r in ranges {
            if case .success(let b?) = RangeLocks.test(fd: fd, flavor: flavor, type: type, range: r) { blocking.append(b) }
        }
        holders = LockHolderFinder.holders(of: st, conflictingWith: type, ranges: ranges, procRoot: procRoot)
        return Contention(blocking: blocking, holders: Self.unique(holders))
    }

    /// One entry per holding process (and fd), in order of first appearance.
    static func unique(_ holders: [LockHolder]) -> [LockHolder] {
        var seen = Set<String>()
        return holders.filter { seen.insert("\($0.pid)/\($0.fd ?? -1)").inserted }
    }
}
