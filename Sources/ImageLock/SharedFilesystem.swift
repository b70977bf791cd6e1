import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A network or cluster filesystem, told apart by statfs(2)'s f_type (linux/magic.h), and
/// what the local kernel's lock table (/proc/locks, /proc/PID/fdinfo) shows of its fcntl
/// locks. Where it does not show them all, the absence of a row proves nothing: only
/// F_GETLK on the file (which the filesystem answers from wherever its locks live) does.
///
/// | f_type      | name  | local lock table shows                                         |
/// |-------------|-------|----------------------------------------------------------------|
/// | 0x65735546  | fuse  | nothing: a FUSE filesystem that implements locks (GlusterFS's   |
/// |             |       | glusterfs client, ...) keeps them in its server, no host lists  |
/// |             |       | them (fs/fuse/file.c, fuse_setlk)                               |
/// | 0x6969      | nfs   | this host's locks only; other clients' live on the server       |
/// | 0x00c36400  | ceph  | this host's locks only; other clients' live in the MDS          |
/// | 0xfe534d42, | smb   | this host's locks only; other clients' live on the server       |
/// | 0xff534d42  |       |                                                                 |
/// | 0x01161970  | gfs2  | this host's locks only; other nodes' live in the DLM            |
/// | 0x7461636f  | ocfs2 | this host's locks only; other nodes' live in the DLM            |
///
/// Every other filesystem is local: its lock table is the whole truth.
public struct SharedFilesystem: Sendable, Equatable, Hashable {
    public enum LocalTable: String, Sendable, Equatable, Hashable {
        /// No lock on it appears in /proc/locks or fdinfo, whoever holds it.
        case showsNone = "none"
        /// Locks of this host's processes appear; other hosts' do not.
        case showsThisHostOnly = "this host's"
    }

    /// `fuse`, `nfs`, `ceph`, `smb`, `gfs2`, `ocfs2`.
    public var name: String
    public var localTable: LocalTable

    public init(name: String, localTable: LocalTable) {
        self.name = name
        self.localTable = localTable
    }

    /// The filesystem of a statfs f_type; nil for a local one.
    public static func of(magic: UInt32) -> SharedFilesystem? {
        switch magic {
        case UInt32(truncatingIfNeeded: CLINUX_FUSE_SUPER_MAGIC): return SharedFilesystem(name: "fuse", localTable: .showsNone)
        case UInt32(truncatingIfNeeded: CLINUX_NFS_SUPER_MAGIC): return SharedFilesystem(name: "nfs", localTable: .showsThisHostOnly)
        case UInt32(truncatingIfNeeded: CLINUX_CEPH_SUPER_MAGIC): return SharedFilesystem(name: "ceph", localTable: .showsThisHostOnly)
        case UInt32(truncatingIfNeeded: CLINUX_SMB2_MAGIC_NUMBER), UInt32(truncatingIfNeeded: CLINUX_CIFS_MAGIC_NUMBER):
            return SharedFilesystem(name: "smb", localTable: .showsThisHostOnly)
        case UInt32(truncatingIfNeeded: CLINUX_GFS2_MAGIC): return SharedFilesystem(name: "gfs2", localTable: .showsThisHostOnly)
        case UInt32(truncatingIfNeeded: CLINUX_OCFS2_SUPER_MAGIC): return SharedFilesystem(name: "ocfs2", localTable: .showsThisHostOnly)
        default: return nil
        }
    }

    /// The filesystem of a mount's type as /proc/PID/mountinfo names it (`fuse.glusterfs`,
    /// `nfs4`, ...); nil for a local one. Read from mountinfo, it asks nothing of the
    /// filesystem itself (statfs on a hung server would wait for it).
    public static func of(fstype: String) -> SharedFilesystem? {
        switch fstype {
        case _ where fstype == "fuse" || fstype == "fuseblk" || fstype.hasPrefix("fuse."):
            return SharedFilesystem(name: "fuse", localTable: .showsNone)
        case "nfs", "nfs4": return SharedFilesystem(name: "nfs", localTable: .showsThisHostOnly)
        case "ceph": return SharedFilesystem(name: "ceph", localTable: .showsThisHostOnly)
        case "cifs", "smb3": return SharedFilesystem(name: "smb", localTable: .showsThisHostOnly)
        case "gfs2": return SharedFilesystem(name: "gfs2", localTable: .showsThisHostOnly)
        case "ocfs2": return SharedFilesystem(name: "ocfs2", localTable: .showsThisHostOnly)
        default: return nil
        }
    }

    /// The shared filesystem `path` is on (statfs, following links); nil when local or
    /// when statfs fails. The corresponding C function is `statfs`.
    public static func of(path: String) -> SharedFilesystem? {
        guard case .success(let m) = Sys.filesystemMagic(path) else { return nil }
        return of(magic: m)
    }
}

/// One lock F_GETLK found on a file: what a probe sees where the lock table cannot.
public struct ProbedLock: Hashable, Sendable, Codable {
    public var type: LockType
    public var range: ByteRange
    /// l_pid as the filesystem reported it; nil when it gave none (0 or -1). On FUSE it is
    /// the locking process's pid as its own host numbers it (the kernel maps it into this
    /// PID namespace, where it may name no process or another one).
    public var pid: Int32?

    public init(type: LockType, range: ByteRange, pid: Int32?) {
        self.type = type
        self.range = range
        self.pid = pid
    }
}

extension ImageLocker {
    /// The bytes whose locks decide a QEMU open (`QemuPermission` bytes 100-104 and 200-204)
    /// and virtlockd's byte 0.
    public static let probedBytes: [Int64] = [0] + QemuPermission.allCases.map(\.heldByte) + QemuPermission.allCases.map(\.unsharedByte)

    /// Asks the filesystem who holds locks on `bytes` of the file at `path`, with a classic
    /// F_GETLK for a write lock on each byte (it reports any other owner's lock there, with
    /// l_pid; F_OFD_GETLK would report -1): nothing is taken and nothing is created. The
    /// file is opened read-only, non-blocking, without following a final symbolic link, and
    /// only when it is a regular file (or block device); `expect` (device, inode) must
    /// match what is opened, when given. Locks seen on several bytes are listed once.
    /// This process must hold no POSIX lock on the file (F_GETLK does not report its own).
    /// A server that does not answer within `timeout` seconds is an error (ETIMEDOUT); the
    /// call then goes on, unobserved, on a thread of its own.
    public static func probeLocks(path: String, bytes: [Int64] = ImageLocker.probedBytes,
                                  expect: (device: DeviceID, inode: UInt64)? = nil, timeout: Double = 5) throws -> [ProbedLock] {
        let r = DetachedCall.run(seconds: timeout) { () -> Result<[ProbedLock], Error> in
            Result { try probeLocksNow(path: path, bytes: bytes, expect: expect) }
        }
        guard let r else {
            throw ImageLockError.system(operation: "test lock (F_GETLK; no answer within \(ImageLockError.seconds(timeout)))",
                                        path: path, errno: ETIMEDOUT)
        }
        return try r.get()
    }

    /// `probeLocks` on this thread, with no timeout: for a file of a local filesystem.
    /// Without `blockDevices` a block device is refused as a directory is (`why` opens none:
    /// a device whose paths are all dead can hold an open forever).
    package static func probeLocksNow(path: String, bytes: [Int64], expect: (device: DeviceID, inode: UInt64)?,
                                      blockDevices: Bool = true) throws -> [ProbedLock] {
        switch Sys.lstat(path) {
        case .success(let s) where s.kind == .regular || (blockDevices && s.kind == .blockDevice): break
        case .success(let s): throw ImageLockError.notAnImage(path: path, kind: s.kind)
        case .failure(let e) where e.code == ENOENT: throw ImageLockError.imageMissing(path: path)
        case .failure(let e): throw ImageLockError.system(operation: "lstat", path: path, errno: e.code)
        }
        // Through an O_PATH fd whose kind is checked before the file is opened for reading
        // (`SafeOpen`): a FIFO or device swapped in since the lstat is never opened.
        let fd: Int32, st: FileStatus
        switch SafeOpen.open(path, flags: O_RDONLY, links: .notFinal, blockDevices: blockDevices) {
        case .success(let opened): (fd, st) = opened
        case .failure(.system(let e)): throw ImageLockError.system(operation: "open", path: path, errno: e.code)
        case .failure(.refused(let kind)): throw ImageLockError.notAnImage(path: path, kind: kind)
        }
        defer { Sys.close(fd) }
        guard expect.map({ $0.device == st.deviceID && $0.inode == st.inode }) ?? true else {
            throw ImageLockError.system(operation: "open (the file changed under it)", path: path, errno: ESTALE)
        }
        var out: [ProbedLock] = []
        for b in bytes {
            switch RangeLocks.test(fd: fd, flavor: .posix, type: .write, range: ByteRange(start: b, length: 1)) {
            case .success(nil): continue
            case .success(let l?):
                let p = ProbedLock(type: l.type, range: l.range, pid: l.pid)
                if !out.contains(p) { out.append(p) }
            case .failure(let e):
                throw ImageLockError.system(operation: "test lock (F_GETLK)", path: path, errno: e.code)
            }
        }
        return out
    }
}
