import FoundationEssentials
import ImageLock

/// One pass over the system: every image lock found, who holds it, and what could not be
/// seen. The CLI table, `--json` and the TUI all render this one value. It is built once,
/// by the scan (`Scan.run`) or by a cluster view (`ClusterView`), and read afterwards: the
/// audit's findings ride beside it (`AuditedSnapshot`), a live view's repeat flag with the
/// cache's answer (`PolledSnapshot`).
public struct Snapshot: Sendable, Equatable {
    public var host: String
    public var generated: Date
    /// Images with locks (or lock files), in a stable order: known paths sorted, then unknown.
    public var images: [ImageLocks]
    /// Every lock file (`.qemu-<40 lowercase hex>.lock`) found in the lock dirs, held or not;
    /// other `.qemu-*.lock` names are listed in `unseen` instead.
    public var lockFiles: [LockFileEntry]
    /// What the scan could not look at, and why (EACCES on /proc/PID/fd, unreadable dirs...).
    public var unseen: [Unseen]
    /// Every fd open for writing (fdinfo `flags & 3 != 0`) on a file that is a candidate
    /// image, locked or not: the facts behind the `unlocked-writer` and
    /// `concurrent-writers` audit rules.
    public var writers: [ImageWriter]
    /// Open files on filesystems whose locks the lock table does not show in full (FUSE,
    /// NFS...): what F_GETLK said of each. Their locks held by local processes with the
    /// file open are in `images` like any other; the rest only here.
    public var serverLocks: [ServerLockFacts] = []

    public init(host: String, generated: Date, images: [ImageLocks], lockFiles: [LockFileEntry], unseen: [Unseen],
                writers: [ImageWriter] = []) {
        self.host = host
        self.generated = generated
        self.images = images
        self.lockFiles = lockFiles
        self.unseen = unseen
        self.writers = writers
    }

    public var holderCount: Int { images.reduce(0) { $0 + $1.holders.count } }
    public var waiterCount: Int { images.reduce(0) { $0 + $1.waiters.count } }
}

/// A snapshot and the audit's findings on it, most severe first (`Auditor`), carried beside
/// it: what `audit`, `list --audit`, `watch`, `metrics` and the TUI render. Findings are
/// empty when nothing was audited (a cluster view's `list` without `--audit`).
public struct AuditedSnapshot: Sendable, Equatable {
    public let snapshot: Snapshot
    public let findings: [Finding]

    public init(_ snapshot: Snapshot, findings: [Finding] = []) {
        self.snapshot = snapshot
        self.findings = findings
    }
}

/// What a live view's poll returns (`SnapshotCache`, the TUI): the audited snapshot, whether
/// it repeats the last one because nothing it depends on changed (the view keeps its rows as
/// they are), and when it was taken or found unchanged.
public struct PolledSnapshot: Sendable, Equatable {
    public let audited: AuditedSnapshot
    public let isRepeat: Bool
    public let refreshed: Date

    public init(_ audited: AuditedSnapshot, isRepeat: Bool = false, refreshed: Date? = nil) {
        self.audited = audited
        self.isRepeat = isRepeat
        self.refreshed = refreshed ?? audited.snapshot.generated
    }
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
    /// The file's identity on shared storage, the same from every host that mounts it:
    /// `gluster:VOLUME/PATH` for a GlusterFS file (FUSE mount or gluster://), else
    /// `FSTYPE:SOURCE:PATH` from the mount's source in mountinfo (NFS, CephFS, SMB...);
    /// nil for a file on a local filesystem (`StorageIdentity`).
    public var storage: String?
    /// The host whose scan found it, in a cluster view; nil for an image on shared storage
    /// seen from several hosts, and in a one-host view.
    public var host: String?

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
public struct Holder: Sendable, Equatable, Hashable, ProcessLike {
    /// Its pid, command, arguments, user and start time (read through `pid`, `command`...).
    public var process: ProcessIdentity
    /// The fd through which it holds the lock; nil for classic POSIX locks found only by pid.
    public var fd: Int32?
    public var openMode: OpenMode?
    /// The VM: the libvirt domain's name (LibvirtDomains.swift), else QEMU's `-name guest=NAME`
    /// (or `-name NAME`). For virtlockd, the domains whose disk it locks.
    public var vm: String?
    public var scheme: LockScheme
    /// Read or write lock (lockfile, gluster, virtlockd schemes).
    public var lockType: LockType?
    /// QEMU permissions held and not shared (qemu scheme).
    public var qemu: QemuPermissions?
    /// The host of the holder when it is not this one (gluster).
    public var host: String?
    /// The libvirt domain's UUID, when libvirt's domain XML names the VM.
    public var vmUUID: String?
    /// The domain's disk target (`vda`) through which it uses the image, from libvirt's XML.
    public var diskTarget: String?
    /// Field 22 of /proc/PID/stat (clock ticks after boot) when the scan saw it: with the
    /// pid, what tells this process from a later one given the same pid.
    public var startTicks: UInt64?
    /// The file the lock is on, as the kernel lists it (device and inode).
    public var lockedDevice: DeviceID?
    public var lockedInode: UInt64?
    /// A Gluster lock's holder checked against its host's process table in a cluster view
    /// (`GlusterStaleness`); nil when not checked.
    public var liveness: HolderLiveness?
    /// What a brick statedump said of a Gluster lock's holder it named (nil otherwise).
    public var statedump: StatedumpNaming?

    public init(pid: Int32, command: String, args: [String] = [], user: String? = nil, uid: UInt32? = nil,
                started: Date? = nil, fd: Int32? = nil, openMode: OpenMode? = nil, vm: String? = nil,
                scheme: LockScheme, lockType: LockType? = nil, qemu: QemuPermissions? = nil, host: String? = nil,
                vmUUID: String? = nil, diskTarget: String? = nil,
                startTicks: UInt64? = nil, lockedDevice: DeviceID? = nil, lockedInode: UInt64? = nil) {
        self.startTicks = startTicks
        self.lockedDevice = lockedDevice
        self.lockedInode = lockedInode
        process = ProcessIdentity(pid: pid, command: command, args: args, user: user, uid: uid, started: started)
        self.fd = fd
        self.openMode = openMode
        self.vm = vm
        self.scheme = scheme
        self.lockType = lockType
        self.qemu = qemu
        self.host = host
        self.vmUUID = vmUUID
        self.diskTarget = diskTarget
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

/// A lock file in a lock dir (`.qemu-<40 lowercase hex>.lock`), or a virtlockd lease file.
public struct LockFileEntry: Sendable, Equatable {
    public var path: String
    public var kind: FileKind
    public var device: DeviceID?
    public var inode: UInt64
    /// What lstat said of the entry when the scan was asked for it
    /// (`InspectorOptions.lockFileStatus`: the audit's lock-file facts): owner, group, the
    /// whole `st_mode` (type and permission bits) and the link count; nil otherwise.
    public var uid: UInt32?
    public var gid: UInt32?
    public var mode: UInt32?
    public var links: UInt64?
    /// Whether any kernel lock sits on it now.
    public var held: Bool
    /// The image it belongs to, when found.
    public var image: String?
    /// How the image was found: `content`, `open file`, `images dir`, `libvirt`, `qemu args`.
    public var mappedBy: String?
    /// The host whose lock dir holds it, in a cluster view.
    public var host: String?

    public init(path: String, kind: FileKind, device: DeviceID?, inode: UInt64, uid: UInt32? = nil, mode: UInt32? = nil,
                links: UInt64? = nil, held: Bool, image: String? = nil, mappedBy: String? = nil, gid: UInt32? = nil) {
        self.path = path
        self.kind = kind
        self.device = device
        self.inode = inode
        self.uid = uid
        self.gid = gid
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

/// A process with a candidate image open for writing, through one fd.
public struct ImageWriter: Sendable, Equatable, Hashable, ProcessLike {
    /// The file as the fd names it (the kernel's path of the open file).
    public var path: String
    public var device: DeviceID?
    public var inode: UInt64?
    public var process: ProcessIdentity
    public var fd: Int32
    public var openMode: OpenMode
    public var vm: String?
    /// The file's identity on shared storage (as `ImageLocks.storage`).
    public var storage: String?
    /// The writer's host, in a cluster view.
    public var host: String?

    public init(path: String, device: DeviceID? = nil, inode: UInt64? = nil, pid: Int32, fd: Int32,
                openMode: OpenMode = .readWrite, command: String, args: [String] = [], user: String? = nil,
                uid: UInt32? = nil, started: Date? = nil, vm: String? = nil) {
        self.path = path
        self.device = device
        self.inode = inode
        process = ProcessIdentity(pid: pid, command: command, args: args, user: user, uid: uid, started: started)
        self.fd = fd
        self.openMode = openMode
        self.vm = vm
    }
}

/// How bad an audit finding is. Ordered: `info` < `warning` < `critical`.
public enum Severity: String, Sendable, CaseIterable, Comparable, Codable {
    case info, warning, critical

    public static func < (a: Severity, b: Severity) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The audit rules (the man page describes each).
public enum AuditRule: String, Sendable, CaseIterable, Codable {
    case unlockedWriter = "unlocked-writer"
    case concurrentWriters = "concurrent-writers"
    case unsafeLockFile = "unsafe-lock-file"
    case unwritableLockFile = "unwritable-lock-file"
    case foreignHolder = "foreign-holder"
    case localLockOnSharedStorage = "local-lock-on-shared-storage"
    case blockedWaiter = "blocked-waiter"
    case staleLockFile = "stale-lock-file"
    case unmappedLockFile = "unmapped-lock-file"
    /// Cluster view: two hosts each hold one shared image's lock file exclusively.
    case splitLock = "split-lock"
    /// Cluster view: one shared image open for writing on two hosts.
    case crossHostWriters = "cross-host-writers"
}

/// One hazard the audit found: which rule, how bad, on what, who and what is involved,
/// and what to do about it.
public struct Finding: Sendable, Equatable, Hashable, Identifiable {
    public var rule: AuditRule
    public var severity: Severity
    /// The image's path; nil when it is unknown or the finding is about a lock dir.
    public var image: String?
    /// The processes involved (writers, holders, waiters), each with its role.
    public var holders: [InvolvedProcess]
    /// The files involved: lock files, lock dirs.
    public var files: [String]
    /// What was seen, in one or two sentences.
    public var evidence: String
    /// What to do, in one line.
    public var remedy: String
    /// The host it was found on, in a cluster view; nil for a cross-host finding.
    public var host: String?

    public init(rule: AuditRule, severity: Severity, image: String?, holders: [InvolvedProcess] = [],
                files: [String] = [], evidence: String, remedy: String) {
        self.rule = rule
        self.severity = severity
        self.image = image
        self.holders = holders
        self.files = files
        // Copied to a string of its own length: one built by interpolation and `+` keeps up
        // to as much again in spare capacity (10k unmapped lock files: ~430 bytes for ~230
        // of text, twice over while the TUI's rescan keeps the old findings beside the new).
        self.evidence = String(decoding: evidence.utf8, as: UTF8.self)
        self.remedy = remedy
    }

    /// Stable across snapshots while the same hazard persists: rule, image and files
    /// (not the processes, which may come and go while the hazard stays).
    /// In a cluster view, the host too: one hazard on two hosts is two findings.
    public var id: String { "\(rule.rawValue) \(image ?? "-") \(files.joined(separator: " "))" + (host.map { " @\($0)" } ?? "") }
}

/// A process named as evidence by a finding.
public struct InvolvedProcess: Sendable, Equatable, Hashable, ProcessLike {
    public enum Role: String, Sendable, Codable {
        /// Has the image open for writing.
        case writer
        /// Holds a lock on the image or its lock file.
        case holder
        /// Is blocked waiting for a lock.
        case waiter
    }

    public var role: Role
    public var process: ProcessIdentity
    public var fd: Int32?
    public var openMode: OpenMode?
    public var vm: String?
    /// The scheme of the lock it holds or waits for; nil for a writer without a lock.
    public var scheme: LockScheme?
    /// `write`/`read`, `rw`/`ro` (as `Holder.modeSummary`); nil for a writer.
    public var mode: String?
    /// For a waiter: how long it has been blocked, when known.
    public var waitedSeconds: Double?
    /// The process's host, in a cluster view.
    public var host: String?

    public init(role: Role, pid: Int32, command: String, args: [String] = [], user: String? = nil,
                uid: UInt32? = nil, started: Date? = nil, fd: Int32? = nil, openMode: OpenMode? = nil,
                vm: String? = nil, scheme: LockScheme? = nil, mode: String? = nil, waitedSeconds: Double? = nil) {
        self.init(role: role, process: ProcessIdentity(pid: pid, command: command, args: args, user: user, uid: uid, started: started),
                  fd: fd, openMode: openMode, vm: vm, scheme: scheme, mode: mode, waitedSeconds: waitedSeconds)
    }

    public init(role: Role, process: ProcessIdentity, fd: Int32? = nil, openMode: OpenMode? = nil,
                vm: String? = nil, scheme: LockScheme? = nil, mode: String? = nil, waitedSeconds: Double? = nil) {
        self.role = role
        self.process = process
        self.fd = fd
        self.openMode = openMode
        self.vm = vm
        self.scheme = scheme
        self.mode = mode
        self.waitedSeconds = waitedSeconds
    }

    public init(holder h: Holder, role: Role = .holder, waitedSeconds: Double? = nil) {
        self.init(role: role, process: h.process, fd: h.fd, openMode: h.openMode, vm: h.vm, scheme: h.scheme,
                  mode: role == .waiter ? h.lockType.map { $0 == .write ? "write" : "read" } : h.modeSummary,
                  waitedSeconds: waitedSeconds)
    }

    public init(writer w: ImageWriter) {
        self.init(role: .writer, process: w.process, fd: w.fd, openMode: w.openMode, vm: w.vm)
    }

    /// `pid 123 (qemu-io, user root)`.
    public var label: String {
        "pid \(pid) (\(command)\(user.map { ", user \($0)" } ?? uid.map { ", uid \($0)" } ?? ""))"
    }
}
