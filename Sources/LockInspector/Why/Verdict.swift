import FoundationEssentials
import ImageLock

/// The answer of `locksmith why`: whether the open would succeed, in QEMU's words when it
/// would not, who stands in the way and what to do about it.
public struct Verdict: Sendable, Equatable {
    public enum Outcome: String, Sendable, Codable {
        /// Nothing stands in the way.
        case opens
        /// A lock or a file problem stands in the way.
        case fails
        /// Something could not be looked at, and nothing else blocks.
        case unknown
    }

    /// The image's realpath (as named when it does not resolve).
    public var image: String
    /// The image as the caller named it.
    public var imageAsGiven: String
    public var intent: OpenIntent
    public var outcome: Outcome
    /// QEMU's first failure for this open, as `qemu-io`/`qemu-img` print it after
    /// `can't open device NAME: ` (`Failed to get "write" lock`, possibly behind
    /// `Could not open backing file: `); nil when QEMU would not fail on a lock.
    public var qemuMessage: String?
    /// QEMU's hint line after a failed check: `Is another process using the image [NAME]?`.
    public var qemuHint: String?
    /// Every failed QEMU check on every image QEMU would open, in QEMU's order.
    public var qemuFailures: [QemuFailure]
    /// Everyone whose lock stands in the way (all of them, not only the first).
    public var blockers: [Blocker]
    /// Problems that are not locks.
    public var reasons: [Reason]
    public var chain: [ChainEntry]
    /// Processes queued on a lock of the image or its chain (/proc/locks `->` lines).
    public var waiters: [Waiter]
    /// What the verdict rests on, each proven (test-acquired) or inferred (from /proc).
    public var facts: [Fact]

    public var opens: Bool { outcome == .opens }
    /// True when the verdict was test-acquired (`--force`) and every probe ran.
    public var proven: Bool { !facts.isEmpty && facts.allSatisfy(\.proven) }
}

/// One failed step of QEMU's open of one image of the chain.
public struct QemuFailure: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// raw_apply_lock_bytes: the shared lock on `byte` is refused (someone holds a
        /// write lock over it). QEMU prints `Failed to lock byte N`, without a hint.
        case lockByte(Int64)
        /// raw_check_lock_bytes: a check failed.
        case check(QemuConflict)
    }
    public var step: Step
    /// The chain member's realpath.
    public var image: String
    /// Its name as QEMU prints it.
    public var name: String
    /// 0 for the image, 1 for its backing file, ...
    public var depth: Int
    /// Pids standing in the way (nil entries: locks whose holder cannot be seen).
    public var holders: [Int32?]

    public var byte: Int64 {
        switch step {
        case .lockByte(let b): return b
        case .check(let c): return c.byte
        }
    }

    /// QEMU's text for this failure alone.
    public var text: String {
        switch step {
        case .lockByte(let b): return "Failed to lock byte \(b)"
        case .check(let c): return c.message
        }
    }

    /// The text with QEMU's prefix for a backing file (`Could not open backing file: `,
    /// once per level), as `qemu-io` prints it after `can't open device NAME: `.
    public var message: String {
        String(repeating: "Could not open backing file: ", count: depth) + text
    }

    /// QEMU's hint line; only a failed check gets one.
    public var hint: String? {
        if case .check = step { return QemuConflict.hint(image: name) }
        return nil
    }
}

/// A process (or an unseen lock) that stands in the way.
public struct Blocker: Sendable, Equatable {
    /// nil when the lock's holder cannot be seen (an OFD lock whose fdinfo is unreadable).
    public var pid: Int32?
    public var command: String?
    public var args: [String]
    public var vm: String?
    public var user: String?
    public var started: Date?
    public var fd: Int32?
    public var openMode: OpenMode?
    public var scheme: LockScheme
    /// The file it holds: a chain member's realpath, or a lock file.
    public var holds: String
    /// The overlay through which it reaches `holds`, when `holds` is a backing file.
    public var via: String?
    /// What it holds: `rw`/`ro` for QEMU users, `write`/`read` for whole-file locks.
    public var lock: String
    /// The permissions (qemu) or lock kinds (`exclusive`, `shared`) that conflict.
    public var conflict: [String]
    public var remedy: String
    /// Confirmed by a test-acquire (`--force`).
    public var proven: Bool
    /// The holder's host when it is not a local process (gluster): from a statedump.
    public var host: String? = nil
    /// The holder's uid, as a holder's (a user without a name still shows which one).
    public var uid: UInt32? = nil
}

/// A reason that is not a lock.
public struct Reason: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case imageMissing = "image-missing"
        case notADisk = "not-a-disk"
        case notReadable = "not-readable"
        case notWritable = "not-writable"
        case backingMissing = "backing-missing"
        case backingNotReadable = "backing-not-readable"
        case chainProblem = "chain-problem"
        case backingLoop = "backing-loop"
        case lockDirMissing = "lock-dir-missing"
        case lockDirNotWritable = "lock-dir-not-writable"
        case lockFileSymlink = "lock-file-symlink"
        case lockFileNotRegular = "lock-file-not-regular"
        case lockFileNotWritable = "lock-file-not-writable"
        case lockFileNotReadable = "lock-file-not-readable"
        case cannotInspect = "cannot-inspect"
    }
    public var kind: Kind
    public var path: String
    /// One line.
    public var message: String
    /// One line.
    public var remedy: String
    /// True: the open would fail because of it. False: it keeps `why` from telling.
    public var blocks: Bool
}

/// One image of the backing chain, with who holds it.
public struct ChainEntry: Sendable, Equatable {
    public var path: String
    public var name: String
    public var backingName: String?
    public var format: String
    public var exists: Bool
    public var problem: String?
    /// The holders of this member, as `pid (command)` with their QEMU mode.
    public var holders: [ChainHolder]
    /// Whether the open asked about opens this member (qemu-img info opens only the top).
    public var opened: Bool

    public struct ChainHolder: Sendable, Equatable {
        public var pid: Int32
        public var command: String
        public var vm: String?
        public var lock: String
        public var via: String?
    }
}

/// A process queued on a lock.
public struct Waiter: Sendable, Equatable {
    public var pid: Int32?
    public var command: String?
    public var started: Date?
    public var waitsOn: String
    public var lockType: String?
}

/// One statement the verdict rests on.
public struct Fact: Sendable, Equatable {
    public var statement: String
    /// Proven by a test-acquire through the core, rather than inferred from /proc.
    public var proven: Bool
}
