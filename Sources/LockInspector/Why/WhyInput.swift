import FoundationEssentials
import ImageLock

/// How `why` is asked to open the image.
public enum OpenIntent: String, Sendable, Codable, CaseIterable {
    /// A read-write open, as `qemu-io IMAGE` or a VM's writable disk.
    case write
    /// A read-only look, as `qemu-img info IMAGE`.
    case readOnly = "read-only"

    /// The QEMU permissions the opener of the image itself takes (measured with strace on
    /// QEMU 7.2): `qemu-io` read-write holds consistent read, write, resize and does not
    /// share write, resize (bytes 100-101, 103, 201, 203), exactly as `qemu-nbd`;
    /// `qemu-img info` holds nothing and does not share write, resize (bytes 201, 203 only;
    /// it never tests byte 200).
    public var topPermissions: QemuPermissions {
        switch self {
        case .write: return .readWrite
        case .readOnly: return QemuPermissions(held: [], unshared: [.write, .resize])
        }
    }

    /// Whether QEMU opens the backing chain for this open. `qemu-io` does, read-only
    /// (`QemuPermissions.readOnly` on every backing file); `qemu-img info` without
    /// `--backing-chain` does not.
    public var opensBackingChain: Bool { self == .write }

    /// What a lockfile-scheme user takes: exclusive for read-write, shared for read-only.
    public var lockMode: LockMode { self == .write ? .exclusive : .shared }
}

/// A file as the diagnosis sees it: what stat(2) and access(2) said, gathered by the caller.
public struct FileFacts: Sendable, Equatable {
    /// The realpath when it resolved, else the path as named.
    public var path: String
    /// nil when the file does not exist.
    public var kind: FileKind?
    public var device: DeviceID?
    public var inode: UInt64?
    /// faccessat(..., AT_EACCESS): with the caller's effective ids.
    public var readable: Bool
    public var writable: Bool
    /// Why the file could not be looked at (stat failed with something else than ENOENT).
    public var error: String?
    /// The network or cluster filesystem it is on (statfs f_type); nil for a local one.
    public var sharedFilesystem: SharedFilesystem?

    public init(path: String, kind: FileKind?, device: DeviceID? = nil, inode: UInt64? = nil,
                readable: Bool = true, writable: Bool = true, error: String? = nil,
                sharedFilesystem: SharedFilesystem? = nil) {
        self.sharedFilesystem = sharedFilesystem
        self.path = path
        self.kind = kind
        self.device = device
        self.inode = inode
        self.readable = readable
        self.writable = writable
        self.error = error
    }

    public var exists: Bool { kind != nil }
    /// Something QEMU's file or host_device driver can open as a disk.
    public var isDisk: Bool { kind == .regular || kind == .blockDevice }
}

/// One image of a backing chain: the image itself first, then its backing file, and so on.
public struct ChainLink: Sendable, Equatable {
    /// The name as QEMU prints it in its messages: the image as named, then each backing
    /// name combined with its overlay's name (QEMU's path_combine).
    public var name: String
    /// The backing file name as written in the overlay's qcow2 header (nil for the image).
    public var backingName: String?
    public var file: FileFacts
    /// `qcow2` when the header says so, else `raw` (anything QEMU would have to probe).
    public var format: String
    /// Why the chain stops here, when it stops early: a loop, too deep, a header that
    /// cannot be read, a backing file that is not local.
    public var problem: String?
    /// This member is a file already in the chain: the chain is a loop, which QEMU refuses.
    public var closesLoop: Bool

    public init(name: String, backingName: String? = nil, file: FileFacts, format: String = "raw", problem: String? = nil,
                closesLoop: Bool = false) {
        self.name = name
        self.backingName = backingName
        self.file = file
        self.format = format
        self.problem = problem
        self.closesLoop = closesLoop
    }
}

/// A lock dir of the lockfile scheme and the image's lock file in it.
public struct LockDirFacts: Sendable, Equatable {
    public var directory: String
    /// The directory exists and is a directory.
    public var exists: Bool
    /// The caller could create a lock file in it (W_OK|X_OK, AT_EACCESS).
    public var writable: Bool
    /// `<directory>/.qemu-<sha1 of realpath>.lock`.
    public var lockFile: String
    /// lstat of the lock file, without following a link: kind nil when it does not exist.
    public var lockFileFacts: FileFacts

    public init(directory: String, exists: Bool, writable: Bool, lockFile: String, lockFileFacts: FileFacts) {
        self.directory = directory
        self.exists = exists
        self.writable = writable
        self.lockFile = lockFile
        self.lockFileFacts = lockFileFacts
    }
}

/// A process that holds a chain member because it opened an overlay on top of it.
public struct OverlayUse: Sendable, Equatable, Hashable {
    public var pid: Int32
    /// The overlay the process opened (its realpath).
    public var overlay: String
    /// The image it reaches through that overlay (its realpath).
    public var base: String

    public init(pid: Int32, overlay: String, base: String) {
        self.pid = pid
        self.overlay = overlay
        self.base = base
    }
}

/// What a test-acquire through the core (`--force`) proved for one file.
public struct ProbeProof: Sendable, Equatable {
    public var scheme: LockScheme
    /// The chain member's realpath (qemu) or the lock file (lockfile).
    public var path: String
    public var mode: LockMode
    /// Whether the lock could be taken (it was released at once).
    public var acquired: Bool
    /// QEMU's failed checks as the probe saw them, in QEMU's order.
    public var qemuConflicts: [QemuConflict]
    /// Pids the kernel named as holding what stood in the way.
    public var holderPids: [Int32]
    /// Set when the probe itself could not run; nothing was proven then.
    public var error: String?

    public init(scheme: LockScheme, path: String, mode: LockMode, acquired: Bool, qemuConflicts: [QemuConflict] = [],
                holderPids: [Int32] = [], error: String? = nil) {
        self.scheme = scheme
        self.path = path
        self.mode = mode
        self.acquired = acquired
        self.qemuConflicts = qemuConflicts
        self.holderPids = holderPids
        self.error = error
    }
}

/// Everything `why` needs: the question, the facts about the files, and the locks on them.
/// The locks come from a `Snapshot`; only entries of the chain members and the lock files
/// are looked at.
public struct WhyInput: Sendable, Equatable {
    /// The image as the caller named it: QEMU's messages print this name.
    public var imageAsGiven: String
    public var intent: OpenIntent
    /// The image (always present, possibly missing), then its backing files.
    public var chain: [ChainLink]
    public var lockDirs: [LockDirFacts]
    /// The snapshot's entries; matched to chain members by device and inode, else by path.
    public var images: [ImageLocks]
    /// Holders that reach a chain member through an overlay.
    public var overlayUses: [OverlayUse]
    /// Results of `--force`; nil when nothing was test-acquired.
    public var proofs: [ProbeProof]?
    /// Where the locks in `images` were read: "/proc/locks", or "fdinfo" (their holders'
    /// fdinfo, when that was the whole answer: `FocusedLockSource.holdersFirst`).
    public var locksSource = "/proc/locks"
    /// Something that kept the facts or the locks from being read (no /proc/locks...).
    public var inspectionError: String?
    /// For chain members on a filesystem whose locks /proc/locks does not show in full:
    /// what a probe (F_GETLK) and a statedump said. Their entries in `images` are built
    /// from these (`ServerLocks.merged`).
    public var serverLocks: [ServerLockFacts] = []

    public init(imageAsGiven: String, intent: OpenIntent, chain: [ChainLink], lockDirs: [LockDirFacts] = [],
                images: [ImageLocks] = [], overlayUses: [OverlayUse] = [], proofs: [ProbeProof]? = nil,
                inspectionError: String? = nil) {
        self.imageAsGiven = imageAsGiven
        self.intent = intent
        self.chain = chain
        self.lockDirs = lockDirs
        self.images = images
        self.overlayUses = overlayUses
        self.proofs = proofs
        self.inspectionError = inspectionError
    }

    public init(imageAsGiven: String, intent: OpenIntent, chain: [ChainLink], lockDirs: [LockDirFacts] = [],
                snapshot: Snapshot, overlayUses: [OverlayUse] = [], proofs: [ProbeProof]? = nil) {
        self.init(imageAsGiven: imageAsGiven, intent: intent, chain: chain, lockDirs: lockDirs, images: snapshot.images,
                  overlayUses: overlayUses, proofs: proofs)
    }

    /// The server-side lock facts of a chain member, when it is on such a filesystem.
    public func serverLocks(for file: FileFacts) -> ServerLockFacts? {
        serverLocks.first { PathBytes.same($0.path, file.path) }
    }

    /// The snapshot entry of a file: same device and inode, else same path.
    public func entry(for file: FileFacts) -> ImageLocks? {
        if let ino = file.inode {
            if let e = images.first(where: { $0.inode == ino && ($0.device == nil || file.device == nil || $0.device == file.device) }) {
                return e
            }
        }
        return images.first { PathBytes.same($0.path, file.path) }
    }
}
