import Foundation
import ImageLock

/// One pass over the system: every image lock found, who holds it, and what could not be
/// seen. The CLI table, `--json` and the TUI all render this one value.
public struct Snapshot: Sendable, Equatable {
    public var host: String
    public var generated: Date
    /// Images with locks (or lock files), in a stable order: known paths sorted, then unknown.
    public var images: [ImageLocks]
    /// Every `.qemu-*.lock` entry found in the lock dirs, held or not.
    public var lockFiles: [LockFileEntry]
    /// What the scan could not look at, and why (EACCES on /proc/PID/fd, unreadable dirs...).
    public var unseen: [Unseen]

    public init(host: String, generated: Date, images: [ImageLocks], lockFiles: [LockFileEntry], unseen: [Unseen]) {
        self.host = host
        self.generated = generated
        self.images = images
        self.lockFiles = lockFiles
        self.unseen = unseen
    }

    public var holderCount: Int { images.reduce(0) { $0 + $1.holders.count } }
    public var waiterCount: Int { images.reduce(0) { $0 + $1.waiters.count } }
}

/// An image and everything that locks it, in every scheme.
public struct ImageLocks: Sendable, Equatable, Identifiable {
    /// Stable across snapshots: the path, else the lock file, else `dev:inode`.
    public var id: String
    /// The image's absolute path; nil when a lock file's image could not be found.
    public var path: String?
    public var device: DeviceID?
    public var inode: UInt64?
    public var schemes: [LockScheme]
    /// Lock files of this image (lockfile scheme), and virtlockd lease files.
    public var lockFiles: [String]
    /// Processes holding a lock on the image (or its lock file), one entry per process and fd.
    public var holders: [Holder]
    /// Processes blocked waiting for a lock on it.
    public var waiters: [Holder]
    /// The kernel's lock rows on the image and its lock files, as /proc/locks lists them.
    public var locks: [KernelLock]

    public init(id: String, path: String?, device: DeviceID? = nil, inode: UInt64? = nil, schemes: [LockScheme],
                lockFiles: [String] = [], holders: [Holder] = [], waiters: [Holder] = [], locks: [KernelLock] = []) {
        self.id = id
        self.path = path
        self.device = device
        self.inode = inode
        self.schemes = schemes
        self.lockFiles = lockFiles
        self.holders = holders
        self.waiters = waiters
        self.locks = locks
    }
}

/// A process holding (or waiting for) a lock on an image.
public struct Holder: Sendable, Equatable, Hashable {
    public var pid: Int32
    public var command: String
    public var args: [String]
    public var user: String?
    public var uid: UInt32?
    /// When the process started (from /proc/PID/stat and the boot time).
    public var started: Date?
    /// The fd through which it holds the lock; nil for classic POSIX locks found only by pid.
    public var fd: Int32?
    public var openMode: OpenMode?
    /// The VM name from QEMU's `-name guest=NAME` (or `-name NAME`).
    public var vm: String?
    public var scheme: LockScheme
    /// Read or write lock (lockfile, gluster, virtlockd schemes).
    public var lockType: LockType?
    /// QEMU permissions held and not shared (qemu scheme).
    public var qemu: QemuPermissions?
    /// The host of the holder when it is not this one (gluster).
    public var host: String?

    public init(pid: Int32, command: String, args: [String] = [], user: String? = nil, uid: UInt32? = nil,
                started: Date? = nil, fd: Int32? = nil, openMode: OpenMode? = nil, vm: String? = nil,
                scheme: LockScheme, lockType: LockType? = nil, qemu: QemuPermissions? = nil, host: String? = nil) {
        self.pid = pid
        self.command = command
        self.args = args
        self.user = user
        self.uid = uid
        self.started = started
        self.fd = fd
        self.openMode = openMode
        self.vm = vm
        self.scheme = scheme
        self.lockType = lockType
        self.qemu = qemu
        self.host = host
    }

    /// A short word for the lock: `write`/`read` for whole-file locks, `rw`/`ro` for QEMU
    /// users (a writer is present exactly when the write permission is held).
    public var modeSummary: String {
        if let q = qemu { return q.held.contains(.write) ? "rw" : "ro" }
        switch lockType {
        case .write?: return "write"
        case .read?: return "read"
        case nil: return "-"
        }
    }
}

/// An entry in a lock dir that looks like a lock file (`.qemu-*.lock`).
public struct LockFileEntry: Sendable, Equatable {
    public var path: String
    public var kind: FileKind
    public var device: DeviceID?
    public var inode: UInt64
    public var uid: UInt32?
    public var mode: UInt32?
    public var links: UInt64?
    /// Whether any kernel lock sits on it now.
    public var held: Bool
    /// The image it belongs to, when found.
    public var image: String?
    /// How the image was found: `content`, `open file`, `images dir`, `libvirt`, `qemu args`.
    public var mappedBy: String?

    public init(path: String, kind: FileKind, device: DeviceID?, inode: UInt64, uid: UInt32? = nil, mode: UInt32? = nil,
                links: UInt64? = nil, held: Bool, image: String? = nil, mappedBy: String? = nil) {
        self.path = path
        self.kind = kind
        self.device = device
        self.inode = inode
        self.uid = uid
        self.mode = mode
        self.links = links
        self.held = held
        self.image = image
        self.mappedBy = mappedBy
    }
}

/// Something the scan could not look at.
public struct Unseen: Sendable, Equatable, Hashable {
    public var what: String
    public var why: String
    public init(what: String, why: String) {
        self.what = what
        self.why = why
    }
}
