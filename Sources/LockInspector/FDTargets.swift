// statx of /proc/PID/fd/N through the CLinux shim (Glibc's module does not show statx).
// A file of its own: CLinux and Glibc both export the S_IF* macros.
import CLinux
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

extension SystemReads {
    /// Whether `path` is a mounted procfs (the live /proc), where statx of /proc/PID/fd/N
    /// reaches the real file. In a copy or a fixture the fd links lead elsewhere (or nowhere).
    /// The corresponding C function is `statfs`.
    static func isLiveProc(_ path: String) -> Bool {
        var fs = statfs()
        return statfs(path, &fs) == 0 && fs.f_type == 0x9fa0  // PROC_SUPER_MAGIC
    }

    /// Appends every fd of `pid` with the file it refers to: one readdir of /proc/PID/fd and
    /// one statx per entry, relative to the dir (no readlink, no fdinfo). An fd closed
    /// meanwhile is left out. Returns the failure to list the dir, if any.
    static func openFiles(procRoot: String, pid: Int32, into out: inout [OpenFD]) -> ReadFailure? {
        let dfd = open("\(procRoot)/\(pid)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return ReadFailure(errno: errno) }
        let listing = dup(dfd)
        guard listing >= 0, let dir = fdopendir(listing) else {
            let e = errno
            if listing >= 0 { close(listing) }
            close(dfd)
            return ReadFailure(errno: e)
        }
        defer {
            closedir(dir)
            close(dfd)
        }
        var target = clinux_fd_target()
        while let ent = readdir(dir) {
            let fd: Int32? = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { name -> Int32? in
                    guard let n = fdNumber(name), clinux_fd_target(dfd, name, &target) == 0 else { return nil }
                    return n
                }
            }
            guard let fd else { continue }
            out.append(OpenFD(pid: pid, fd: fd, inode: target.inode,
                              device: DeviceID(major: target.dev_major, minor: target.dev_minor),
                              kind: kind(mode: target.mode), info: nil))
        }
        return nil
    }


    /// Whether anyone holds an fcntl lock (POSIX or OFD) on any byte of a regular file: an
    /// F_OFD_GETLK write-lock probe of the whole file (Linux fs/locks.c: works on an O_RDONLY fd;
    /// flock locks are invisible to it). Opened as `readRegularFile` opens: a regular file
    /// only, no final link followed, no blocking. False when it cannot be opened.
    static func hasFcntlLock(_ path: String) -> Bool {
        guard case .success(let opened) = SafeOpen.open(path, flags: O_RDONLY, links: .notFinal, blockDevices: false) else {
            return false
        }
        let fd = opened.fd
        defer { close(fd) }
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 0
        fl.l_len = 0
        fl.l_pid = 0
        guard clinux_fcntl_lock(fd, clinux_F_OFD_GETLK, &fl) == 0 else { return true }  // cannot tell: look
        return fl.l_type != Int16(F_UNLCK)
    }

    /// Whether two fds are one open file description; nil when the kernel will not say.
    /// The corresponding system call is `kcmp(pid1, pid2, KCMP_FILE, fd1, fd2)`.
    static func sameOpenFile(_ a: (pid: Int32, fd: Int32), _ b: (pid: Int32, fd: Int32)) -> Bool? {
        let r = clinux_kcmp_file(a.pid, b.pid, a.fd, b.fd)
        return r < 0 ? nil : r == 0
    }
}

/// Reads of fd entries relative to their process's /proc/PID/fd and /proc/PID/fdinfo dirs,
/// each opened once per process and kept while the next fds are the same process's (the fd
/// pass lists them by process): one lookup of the fd's name per read, not a path walk from
/// /. Used by one thread; `close()` when done.
struct ProcessFDReader {
    let procRoot: String
    private var pid: Int32 = -1
    private var fdDir: Int32 = -1
    private var infoDir: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 16384)

    init(procRoot: String) {
        self.procRoot = procRoot
    }

    mutating func close() {
        if fdDir >= 0 { Glibc.close(fdDir) }
        if infoDir >= 0 { Glibc.close(infoDir) }
        (fdDir, infoDir, pid) = (-1, -1, -1)
    }

    private mutating func dirs(_ pid: Int32) {
        guard pid != self.pid else { return }
        close()
        self.pid = pid
    }

    private mutating func dir(_ which: WritableKeyPath<ProcessFDReader, Int32>, _ name: String) -> Int32 {
        if self[keyPath: which] < 0 {
            self[keyPath: which] = open("\(procRoot)/\(pid)/\(name)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        return self[keyPath: which]
    }

    /// `body` with the fd number as a C string.
    private func name<T>(_ fd: Int32, _ body: (UnsafePointer<CChar>) -> T) -> T {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 12) { buf in
            var v = UInt32(bitPattern: fd), i = 11
            buf[i] = 0
            repeat {
                i -= 1
                buf[i] = CChar(UInt8(ascii: "0") + UInt8(v % 10))
                v /= 10
            } while v > 0
            return body(buf.baseAddress! + i)
        }
    }

    /// fdinfo of the fd, parsed; nil when it is gone or unreadable.
    mutating func info(pid: Int32, fd: Int32) -> FDInfo? {
        dirs(pid)
        let dir = dir(\.infoDir, "fdinfo")
        guard dir >= 0 else { return nil }
        let file = name(fd) { openat(dir, $0, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) }
        guard file >= 0 else { return nil }
        defer { Glibc.close(file) }
        var n: Int
        repeat { n = buffer.withUnsafeMutableBytes { read(file, $0.baseAddress!, $0.count) } } while n < 0 && errno == EINTR
        guard n > 0 else { return nil }
        return buffer.withUnsafeBufferPointer { FDInfo.parse(UnsafeBufferPointer(rebasing: $0[0..<n])) }
    }

    /// The fd's access mode as open flags, from the mode bits of its link (`SystemReads.openFlags`).
    mutating func openFlags(pid: Int32, fd: Int32) -> UInt32? {
        dirs(pid)
        let dir = dir(\.fdDir, "fd")
        guard dir >= 0 else { return nil }
        var st = stat()
        guard name(fd, { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else { return nil }
        return SystemReads.openFlags(linkMode: st.st_mode)
    }

    /// The fd's link: the path it was opened by (or `pipe:[…]`, `socket:[…]`).
    mutating func link(pid: Int32, fd: Int32) -> String? {
        dirs(pid)
        let dir = dir(\.fdDir, "fd")
        guard dir >= 0 else { return nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buf -> String? in
            let n = name(fd) { readlinkat(dir, $0, UnsafeMutableRawPointer(buf.baseAddress!).assumingMemoryBound(to: CChar.self), 4096) }
            guard n >= 0 else { return nil }
            return PathBytes.string(UnsafeBufferPointer(rebasing: buf[0..<n]))
        }
    }
}
