// What stat(2), statx(2) and readdir(3) say of a file, as Swift values: its kind (from
// st_mode or d_type), its device as /proc/locks prints it, its inode and mode.
#if canImport(Glibc)
import Glibc
#endif

/// The result of `stat`/`lstat`/`fstat`, reduced to what the core needs.
public struct FileStatus: Sendable, Equatable {
    public var kind: FileKind
    public var device: UInt64
    public var inode: UInt64
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var links: UInt64
    public var size: Int64

    package init(_ st: stat) {
        kind = FileKind(mode: st.st_mode)
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        mode = UInt32(st.st_mode)
        uid = st.st_uid
        gid = st.st_gid
        links = UInt64(st.st_nlink)
        size = Int64(st.st_size)
    }

    package init(kind: FileKind, device: UInt64, inode: UInt64, mode: UInt32, uid: UInt32, gid: UInt32, links: UInt64,
                 size: Int64) {
        self.kind = kind
        self.device = device
        self.inode = inode
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.links = links
        self.size = size
    }

    /// The device as /proc/locks prints it: `MAJOR:MINOR` in hex, at least two digits each.
    public var deviceID: DeviceID { DeviceID(dev: device) }

    /// The permission bits (and set-id, sticky) of `mode`, without the file type.
    package var permissions: UInt32 { mode & 0o7777 }
}

extension FileKind {
    /// From st_mode's S_IFMT bits.
    package init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFBLK: self = .blockDevice
        case S_IFCHR: self = .characterDevice
        default: self = .unknown
        }
    }

    /// From a directory entry's d_type; nil when the filesystem says DT_UNKNOWN.
    package init?(dType: UInt8) {
        switch Int32(dType) {
        case Int32(DT_REG): self = .regular
        case Int32(DT_DIR): self = .directory
        case Int32(DT_LNK): self = .symlink
        case Int32(DT_FIFO): self = .fifo
        case Int32(DT_SOCK): self = .socket
        case Int32(DT_BLK): self = .blockDevice
        case Int32(DT_CHR): self = .characterDevice
        default: return nil
        }
    }
}

/// A device number as /proc/locks and fdinfo print it (`fe:00`).
public struct DeviceID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public var major: UInt32
    public var minor: UInt32
    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// From a dev_t (st_dev): glibc's gnu_dev_major / gnu_dev_minor.
    package init(dev: UInt64) {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        self.init(major: UInt32(truncatingIfNeeded: major), minor: UInt32(truncatingIfNeeded: minor))
    }

    /// Parses `MAJ:MIN` in hex.
    public init?(_ text: Substring) {
        guard let colon = text.firstIndex(of: ":"),
              let maj = UInt32(text[..<colon], radix: 16),
              let min = UInt32(text[text.index(after: colon)...], radix: 16) else { return nil }
        self.init(major: maj, minor: min)
    }

    public var description: String {
        func two(_ v: UInt32) -> String {
            let s = String(v, radix: 16)
            return s.count < 2 ? "0" + s : s
        }
        return "\(two(major)):\(two(minor))"
    }

    public static func < (a: DeviceID, b: DeviceID) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = DeviceID(Substring(s)) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "bad device \(s)")
        }
        self = d
    }
}

