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
    /// A `gluster://` image name that is not `gluster://HOST[:PORT]/VOLUME/PATH`.
    case invalidGlusterURL(String, reason: String)
    /// The client could not connect to a Gluster volume: glfs_init failed with `errno`
    /// (ENOENT: no such volume on that server; ENOTCONN: no glusterd answering there).
    case glusterUnreachable(server: String, volume: String, errno: Int32)
    /// A step against a Gluster server (connect, open, lock) did not finish in time.
    case glusterTimedOut(operation: String, server: String, seconds: Double)
    /// The `gluster` command-line tool (statedump, clear-locks) failed or is missing.
    case glusterCommandFailed(command: String, status: Int32, message: String)

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
        case let .invalidGlusterURL(text, reason):
            return "\(text): not a Gluster image name: \(reason)"
        case let .glusterUnreachable(server, volume, errno) where errno == ENOENT:
            return "gluster server \(server) has no volume \(volume) (glfs_init: \(ImageLockError.text(errno)))"
        case let .glusterUnreachable(server, volume, errno) where errno == ENOTCONN:
            return "cannot reach glusterd at \(server) for volume \(volume): \(ImageLockError.text(errno)) (is glusterd running there?)"
        case let .glusterUnreachable(server, volume, errno) where errno == EIO:
            return "cannot connect to gluster volume \(volume) at \(server): \(ImageLockError.text(errno)) (are its bricks up?)"
        case let .glusterUnreachable(server, volume, errno):
            return "cannot connect to gluster volume \(volume) at \(server): \(ImageLockError.text(errno))"
        case let .glusterTimedOut(operation, server, seconds):
            return "gluster server \(server) did not answer within \(ImageLockError.seconds(seconds)) (\(operation)); see --timeout"
        case let .glusterCommandFailed(command, status, message):
            let why = message.isEmpty ? (status == 127 ? "not found" : "exit status \(status)") : message
            return "\(command): \(why)"
        }
    }

    /// "5 s", "0.5 s".
    static func seconds(_ s: Double) -> String {
        s == s.rounded() && abs(s) < 1e9 ? "\(Int(s)) s" : "\(s) s"
    }

    static func text(_ errno: Int32) -> String {
        Errno(errno).description
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
}
