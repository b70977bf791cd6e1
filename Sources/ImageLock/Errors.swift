#if canImport(Glibc)
import Glibc
#endif

/// Everything the locking core can fail with. A busy lock is not an error: it is a
/// `LockOutcome.busy` result. Each case carries the path and, where the kernel said
/// no, the operation and errno, so that its description is a complete one-line reason.
public enum ImageLockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed: `operation` on `path` gave `errno`.
    case system(operation: String, path: String, errno: Int32)
    /// The image does not exist.
    case imageMissing(path: String)
    /// The image exists but is not something a VM disk can be (directory, FIFO, socket, ...).
    case notAnImage(path: String, kind: FileKind)
    /// The lock directory does not exist or is not a directory.
    case lockDirectoryMissing(path: String)
    /// The lock file is a symbolic link; it is never followed.
    case lockFileIsSymlink(path: String)
    /// The lock file is not a regular file (FIFO, directory, device, socket).
    case lockFileNotRegular(path: String, kind: FileKind)
    /// The lock file cannot be opened for the access the lock needs.
    case lockFileNotAccessible(path: String, needsWrite: Bool, errno: Int32)
    /// The image cannot be opened for the access the lock needs.
    case imageNotAccessible(path: String, needsWrite: Bool, errno: Int32)
    /// The scheme cannot be used with this image or on this build.
    case unsupported(String)

    public var description: String {
        switch self {
        case let .system(operation, path, errno):
            return "\(operation) \(path): \(ImageLockError.text(errno))"
        case let .imageMissing(path):
            return "\(path): no such image"
        case let .notAnImage(path, kind):
            return "\(path): is a \(kind.rawValue), not a disk image"
        case let .lockDirectoryMissing(path):
            return "lock directory \(path) does not exist"
        case let .lockFileIsSymlink(path):
            return "lock file \(path) is a symbolic link; refusing to follow it"
        case let .lockFileNotRegular(path, kind):
            return "lock file \(path) is a \(kind.rawValue), not a regular file; refusing to use it"
        case let .lockFileNotAccessible(path, needsWrite, errno):
            return "lock file \(path) cannot be opened \(needsWrite ? "for writing (an exclusive lock needs it)" : "for reading"): \(ImageLockError.text(errno))"
        case let .imageNotAccessible(path, needsWrite, errno):
            return "\(path) cannot be opened \(needsWrite ? "read-write" : "read-only"): \(ImageLockError.text(errno))"
        case let .unsupported(what):
            return what
        }
    }

    static func text(_ errno: Int32) -> String {
        String(cString: strerror(errno))
    }
}

/// What kind of file a path names, as `stat` tells it.
public enum FileKind: String, Sendable, Codable {
    case regular = "regular file"
    case directory
    case symlink = "symbolic link"
    case fifo = "FIFO"
    case socket
    case blockDevice = "block device"
    case characterDevice = "character device"
    case unknown = "file of unknown type"

    init(mode: mode_t) {
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
}
