/// QEMU's block permissions (include/block/block-common.h, BLK_PERM_*), as locked by
/// block/file-posix.c since QEMU 2.10: holding permission i is a 1-byte F_RDLCK on byte
/// 100+i, not sharing it a 1-byte F_RDLCK on byte 200+i.
public enum QemuPermission: Int, CaseIterable, Sendable, Codable, Comparable {
    case consistentRead = 0
    case write = 1
    case writeUnchanged = 2
    case resize = 3
    /// BLK_PERM_GRAPH_MOD, removed in QEMU 6.2; older QEMUs may still lock bytes 104/204.
    case changeChildren = 4

    /// QEMU's own name for the permission, as its error messages print it.
    public var name: String {
        switch self {
        case .consistentRead: return "consistent read"
        case .write: return "write"
        case .writeUnchanged: return "write unchanged"
        case .resize: return "resize"
        case .changeChildren: return "change children"
        }
    }

    public init?(name: String) {
        guard let p = QemuPermission.allCases.first(where: { $0.name == name }) else { return nil }
        self = p
    }

    /// RAW_LOCK_PERM_BASE + i: locked by a user that holds the permission.
    public var heldByte: Int64 { QemuPermission.permBase + Int64(rawValue) }
    /// RAW_LOCK_SHARED_BASE + i: locked by a user that does not share the permission.
    public var unsharedByte: Int64 { QemuPermission.sharedBase + Int64(rawValue) }

    public static let permBase: Int64 = 100
    public static let sharedBase: Int64 = 200
    /// The permissions current QEMU knows (0..3); byte 104/204 is only decoded.
    public static let current: [QemuPermission] = [.consistentRead, .write, .writeUnchanged, .resize]

    public static func < (a: QemuPermission, b: QemuPermission) -> Bool { a.rawValue < b.rawValue }
}

/// What one QEMU-style user of an image holds and refuses to share.
public struct QemuPermissions: Hashable, Sendable, Codable {
    public var held: Set<QemuPermission>
    public var unshared: Set<QemuPermission>

    public init(held: Set<QemuPermission>, unshared: Set<QemuPermission>) {
        self.held = held
        self.unshared = unshared
    }

    /// A read-write user, as qemu-nbd or a running VM: holds consistent read, write and
    /// resize; shares everything but write and resize (bytes 100-101, 103, 201, 203).
    public static let readWrite = QemuPermissions(held: [.consistentRead, .write, .resize], unshared: [.write, .resize])
    /// A read-only user, as `qemu-io -r` or `qemu-nbd --read-only`: holds consistent read;
    /// does not share write or resize (bytes 100, 201, 203).
    public static let readOnly = QemuPermissions(held: [.consistentRead], unshared: [.write, .resize])

    /// The byte locks this user takes, in QEMU's order (raw_apply_lock_bytes).
    public var bytes: [Int64] {
        held.sorted().map(\.heldByte) + unshared.sorted().map(\.unsharedByte)
    }

    /// Decodes the permissions from locked byte ranges (inclusive ends, nil = EOF), as the
    /// kernel may merge adjacent bytes of one owner (`100 101`).
    public init(lockedRanges: [(start: Int64, end: Int64?)]) {
        var held = Set<QemuPermission>(), unshared = Set<QemuPermission>()
        for p in QemuPermission.allCases {
            for r in lockedRanges {
                let end = r.end ?? Int64.max
                if r.start <= p.heldByte && p.heldByte <= end { held.insert(p) }
                if r.start <= p.unsharedByte && p.unsharedByte <= end { unshared.insert(p) }
            }
        }
        self.init(held: held, unshared: unshared)
    }
}

/// One failed check of QEMU's raw_check_lock_bytes, in QEMU's words.
public struct QemuConflict: Hashable, Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// We need `permission` and someone does not share it (byte 200+i is locked).
        case unshared
        /// We won't share `permission` and someone holds it (byte 100+i is locked).
        case held
    }
    public var kind: Kind
    public var permission: QemuPermission
    public var byte: Int64

    public init(kind: Kind, permission: QemuPermission) {
        self.kind = kind
        self.permission = permission
        self.byte = kind == .unshared ? permission.unsharedByte : permission.heldByte
    }

    /// QEMU's message: `Failed to get "write" lock` or `Failed to get shared "write" lock`.
    public var message: String {
        kind == .unshared
            ? "Failed to get \"\(permission.name)\" lock"
            : "Failed to get shared \"\(permission.name)\" lock"
    }

    /// QEMU's hint line that follows the message.
    public static func hint(image: String) -> String { "Is another process using the image [\(image)]?" }

    /// The checks QEMU makes for a user with `perms`, in its order: first, for each held
    /// permission, byte 200+i; then, for each unshared permission, byte 100+i.
    public static func checks(for perms: QemuPermissions) -> [QemuConflict] {
        perms.held.sorted().map { QemuConflict(kind: .unshared, permission: $0) }
            + perms.unshared.sorted().map { QemuConflict(kind: .held, permission: $0) }
    }
}
