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

}
