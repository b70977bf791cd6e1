// The Linux system layer: every system call that locksmith's modules make on files,
// directories, locks, /proc, processes, clocks and the host goes through the files of
// Sources/ImageLock/System/ (the C shims they call are in Sources/CLinux). The other
// modules see this layer with `package` access; what library users may call is `public`.
//
//   Syscalls.swift      `Sys`: EINTR retry, open/close, stat family, statfs, realpath,
//                       readlink, unlink, write, access, flock, fcntl locks, kcmp, the host
//   Errno.swift         `Errno`: every failure is one errno value with strerror's text
//   FileStatus.swift    `FileStatus`, `FileKind` from st_mode or d_type, `DeviceID` from dev_t
//   SafeOpen.swift      `SafeOpen` (open only the kind of file expected), `OpenedDirectory`
//   Directory.swift     readdir: `Sys.entries`, `Sys.names`
//   FileReads.swift     whole-file reads: /proc pseudo-files, small files into a buffer,
//                       regular files up to a limit
//   ProcFDs.swift       the fd pass over /proc/PID/fd (statx) and `ProcessFDReader`
//   FcntlLock.swift     `struct flock` requests and lock tests
//   Clock.swift         the monotonic clock, clock ticks, user and group names
//   ProcessHandle.swift pidfd_open, pidfd_send_signal
//
// Rules, auditable in this folder and kept nowhere else:
// - EINTR is retried here (`Sys.retrying`, the read loops) and nowhere else; close(2) is
//   never retried (Linux).
// - Never follows a link when opening a file because of what it names: files are opened
//   through `SafeOpen` (O_PATH with O_NOFOLLOW, or openat2 RESOLVE_NO_SYMLINKS, then fstat,
//   then a reopen of that inode) or, for /proc pseudo-files, with O_NOFOLLOW; lock
//   directories are walked component by component (`OpenedDirectory`); stat of a lock
//   file or fd entry is lstat/fstatat(AT_SYMLINK_NOFOLLOW)/statx without following. The
//   exceptions follow on purpose and say so: `Sys.stat` (a directory or image the user
//   named), `Sys.realpath`, `Sys.entries`/`Sys.names` of a directory path.
// - Never blocks: every open for I/O is O_NONBLOCK (a FIFO's open would wait for a
//   writer; a lease makes the open fail instead of waiting), lock requests are F_SETLK /
//   F_OFD_SETLK / F_*GETLK / LOCK_NB (never the waiting forms), statx uses
//   AT_STATX_DONT_SYNC (a hung NFS or FUSE server cannot stall a scan).
// - Paths are carrier strings (`PathBytes`): the kernel gets their exact bytes.
import CLinux
#if canImport(Glibc)
import Glibc
#endif

// The stat functions share their name with `struct stat`; name them apart.
private func c_stat(_ p: String, _ st: inout stat) -> Int32 { PathBytes.withCString(p) { stat($0, &st) } }
private func c_lstat(_ p: String, _ st: inout stat) -> Int32 { PathBytes.withCString(p) { lstat($0, &st) } }
private func c_fstat(_ fd: Int32, _ st: inout stat) -> Int32 { fstat(fd, &st) }
private func c_flock(_ fd: Int32, _ operation: Int32) -> Int32 { flock(fd, operation) }
private func c_fstatfs(_ fd: Int32, _ buf: inout statfs) -> Int32 { fstatfs(fd, &buf) }
private func c_statfs(_ p: String, _ buf: inout statfs) -> Int32 { PathBytes.withCString(p) { statfs($0, &buf) } }

/// The system calls, each with its errno as a typed failure.
package enum Sys {
    /// Runs `body` until it does not fail with EINTR.
    package static func retrying<T: BinaryInteger>(_ body: () -> T) -> Result<T, Errno> {
        while true {
            let r = body()
            if r >= 0 { return .success(r) }
            let e = errno
            if e != EINTR { return .failure(Errno(e)) }
        }
    }

    package static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Result<Int32, Errno> {
        PathBytes.withCString(path) { p in retrying { Glibc.open(p, flags, mode) } }
    }

    /// openat(2) of `name` in the directory `dir` (or AT_FDCWD).
    package static func open(at dir: Int32, _ name: UnsafePointer<CChar>, _ flags: Int32) -> Result<Int32, Errno> {
        retrying { openat(dir, name, flags) }
    }

    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // Linux: never retry close on EINTR.
    }

    /// stat(2): follows links (a directory or image the user named).
    package static func stat(_ path: String) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { c_stat(path, &st) }.map { _ in FileStatus(st) }
    }

    /// lstat(2): never follows a final link.
    package static func lstat(_ path: String) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { c_lstat(path, &st) }.map { _ in FileStatus(st) }
    }

    /// stat(2) of a directory, as a change stamp: its inode, mtime and ctime (an entry
    /// added, removed or renamed changes both times). Follows links, as `stat` does.
    package static func changeStamp(_ path: String) -> Result<String, Errno> {
        var st = Glibc.stat()
        return retrying { c_stat(path, &st) }.map { _ in
            "\(st.st_ino) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        }
    }

    package static func fstat(_ fd: Int32) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { c_fstat(fd, &st) }.map { _ in FileStatus(st) }
    }

    /// fstatat(2) with AT_SYMLINK_NOFOLLOW: an entry of an open directory, never followed.
    package static func lstat(at dir: Int32, _ name: UnsafePointer<CChar>) -> Result<FileStatus, Errno> {
        var st = Glibc.stat()
        return retrying { fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) }.map { _ in FileStatus(st) }
    }

    /// stat(2) (follows links, as `stat`), by statx(2), with the id of the mount the path
    /// ends on (nil before Linux 5.8): files on one mount are on one filesystem, so one
    /// statfs answers for all of them.
    package static func statWithMount(_ path: String) -> Result<(status: FileStatus, mount: UInt64?), Errno> {
        var out = clinux_path_status()
        return PathBytes.withCString(path) { p in retrying { clinux_stat_with_mount(p, &out) } }.map { _ in
            let st = FileStatus(kind: FileKind(mode: mode_t(out.mode)), device: out.dev, inode: out.inode, mode: out.mode,
                                uid: out.uid, gid: out.gid, links: out.links, size: Int64(bitPattern: out.size))
            return (st, out.has_mount != 0 ? out.mount : nil)
        }
    }

    /// statfs(2)'s f_type: the filesystem's magic number (linux/magic.h).
    package static func filesystemMagic(_ path: String) -> Result<UInt32, Errno> {
        var buf = statfs()
        return retrying { c_statfs(path, &buf) }.map { _ in UInt32(truncatingIfNeeded: buf.f_type) }
    }

    package static func filesystemMagic(fd: Int32) -> Result<UInt32, Errno> {
        var buf = statfs()
        return retrying { c_fstatfs(fd, &buf) }.map { _ in UInt32(truncatingIfNeeded: buf.f_type) }
    }

    /// Whether `path` is a mounted procfs (the live /proc), where statx of /proc/PID/fd/N
    /// reaches the real file. In a copy or a fixture the fd links lead elsewhere (or nowhere).
    package static func isLiveProc(_ path: String) -> Bool {
        if case .success(0x9fa0) = filesystemMagic(path) { return true }  // PROC_SUPER_MAGIC
        return false
    }

    package static func realpath(_ path: String) -> Result<String, Errno> {
        guard let p = PathBytes.withCString(path, { Glibc.realpath($0, nil) }) else { return .failure(Errno(errno)) }
        defer { free(p) }
        return .success(PathBytes.string(cString: p))
    }

    /// The target of a symbolic link (a /proc/PID/fd entry: the kernel's d_path, no
    /// filesystem access); nil when it is not one or is gone.
    package static func readlink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = PathBytes.withCString(path) { Glibc.readlink($0, &buf, buf.count) }
        guard n >= 0 else { return nil }
        return PathBytes.string(buf[0..<n].map { UInt8(bitPattern: $0) })
    }

    /// readlinkat(2) of `name` in the directory `dir`, at most `capacity` bytes.
    package static func readlink(at dir: Int32, _ name: UnsafePointer<CChar>, capacity: Int = 4096) -> String? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buf -> String? in
            let n = readlinkat(dir, name, UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), capacity)
            guard n >= 0 else { return nil }
            return PathBytes.string(UnsafeBufferPointer(rebasing: buf[0..<n]))
        }
    }

    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Result<Void, Errno> {
        var offset = 0
        while offset < bytes.count {
            let r = bytes.withUnsafeBytes { buf in
                retrying { Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset) }
            }
            switch r {
            case .success(let n): offset += n
            case .failure(let e): return .failure(e)
            }
        }
        return .success(())
    }

    package static func unlink(_ path: String) -> Result<Void, Errno> {
        PathBytes.withCString(path) { p in retrying { Glibc.unlink(p) } }.map { _ in () }
    }

    /// A non-blocking flock(2) request; false when someone else holds a conflicting one.
    package static func flockNonBlocking(_ fd: Int32, exclusive: Bool) -> Result<Bool, Errno> {
        switch retrying({ c_flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) }) {
        case .success: return .success(true)
        case .failure(let e) where e.code == EWOULDBLOCK: return .success(false)
        case .failure(let e): return .failure(e)
        }
    }

    /// access(2) with the real ids.
    package static func access(_ path: String, _ mode: Int32) -> Bool {
        PathBytes.withCString(path) { Glibc.access($0, mode) } == 0
    }

    /// faccessat(2) with AT_EACCESS: the effective ids, as an open would check.
    package static func effectiveAccess(_ path: String, _ mode: Int32) -> Bool {
        PathBytes.withCString(path) { faccessat(AT_FDCWD, $0, mode, AT_EACCESS) } == 0
    }

    /// fcntl with a `struct flock`. The corresponding C function is `fcntl`.
    package static func fcntlLock(_ fd: Int32, _ cmd: Int32, _ lock: inout flock) -> Result<Void, Errno> {
        retrying { clinux_fcntl_lock(fd, cmd, &lock) }.map { _ in () }
    }

    /// Whether two fds are one open file description; nil when the kernel will not say.
    /// The corresponding system call is `kcmp(pid1, pid2, KCMP_FILE, fd1, fd2)`.
    package static func sameOpenFile(_ a: (pid: Int32, fd: Int32), _ b: (pid: Int32, fd: Int32)) -> Bool? {
        let r = clinux_kcmp_file(a.pid, b.pid, a.fd, b.fd)
        return r < 0 ? nil : r == 0
    }

    /// The host name as the kernel has it (per UTS namespace). The corresponding C
    /// function is `gethostname`.
    package static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
