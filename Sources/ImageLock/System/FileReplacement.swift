#if canImport(Glibc)
import Glibc
#endif

/// Writes a whole file so that readers see the old content or the new, never a part:
/// the node_exporter textfile-collector convention (write `FILE.tmp`, then rename it over
/// `FILE`). The temporary file is created afresh (O_CREAT|O_EXCL|O_NOFOLLOW, a stale one
/// unlinked first), so a link or FIFO planted at `FILE.tmp` is never followed or opened;
/// `rename` replaces a link at `FILE` itself rather than writing through it.
/// The corresponding C functions are `open`, `write`, `fsync` and `rename`.
public enum FileReplacement {
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o644) throws {
        let tmp = path + ".tmp"
        switch Sys.unlink(tmp) {
        case .success: break
        case .failure(let e) where e.code == ENOENT: break
        case .failure(let e): throw ImageLockError.system(operation: "unlink", path: tmp, errno: e.code)
        }
        let fd: Int32
        switch Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode) {
        case .success(let f): fd = f
        case .failure(let e): throw ImageLockError.system(operation: "create", path: tmp, errno: e.code)
        }
        var failure: ImageLockError?
        if case .failure(let e) = Sys.writeAll(fd, bytes) {
            failure = .system(operation: "write", path: tmp, errno: e.code)
        } else if fchmod(fd, mode) != 0 {  // O_CREAT's mode is cut by the umask
            failure = .system(operation: "chmod", path: tmp, errno: errno)
        } else if fsync(fd) != 0 {
            failure = .system(operation: "fsync", path: tmp, errno: errno)
        }
        Sys.close(fd)
        if failure == nil, rename(tmp, path) != 0 { failure = .system(operation: "rename", path: tmp, errno: errno) }
        if let failure {
            _ = Sys.unlink(tmp)
            throw failure
        }
    }
}
