// The fd pass's reads of /proc/PID/fd and /proc/PID/fdinfo: one readdir and one statx per
// fd relative to the fd dir (no readlink, no fdinfo, no link followed: statx and fstatat
// of the entry itself, AT_STATX_DONT_SYNC so that a hung server cannot stall the pass),
// and fdinfo/link reads relative to dirs opened once per process.
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// One fd of one process and the file it refers to, as the fd pass saw it.
package struct OpenFD: Sendable {
    package var pid: Int32
    package var fd: Int32
    /// The target's inode: from statx on the live /proc, else from fdinfo's `ino:`.
    package var inode: UInt64
    /// The target's device (st_dev); nil when read from fdinfo.
    package var device: DeviceID?
    /// nil when read from fdinfo (a /proc copy or fixture).
    package var kind: FileKind?
    /// The parsed fdinfo, when the pass had to read it anyway (not the live /proc).
    package var info: FDInfo?

    package init(pid: Int32, fd: Int32, inode: UInt64, device: DeviceID?, kind: FileKind?, info: FDInfo?) {
        self.pid = pid
        self.fd = fd
        self.inode = inode
        self.device = device
        self.kind = kind
        self.info = info
    }
}

extension Sys {
    /// Appends every fd of `pid` with the file it refers to: one readdir of /proc/PID/fd and
    /// one statx per entry, relative to the dir (no readlink, no fdinfo). An fd closed
    /// meanwhile is left out. Returns the failure to list the dir, if any.
    package static func openFiles(procRoot: String, pid: Int32, into out: inout [OpenFD]) -> Errno? {
        let dfd: Int32
        switch open("\(procRoot)/\(pid)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC) {
        case .success(let fd): dfd = fd
        case .failure(let e): return e
        }
        let listing = dup(dfd)
        guard listing >= 0, let dir = fdopendir(listing) else {
            let e = Errno.current
            if listing >= 0 { close(listing) }
            close(dfd)
            return e
        }
        defer {
            closedir(dir)
            close(dfd)
        }
        var target = clinux_fd_target()
        _ = forEachEntry(dir) { name, _, _ in
            guard let fd = decimalName(name), clinux_fd_target(dfd, name, &target) == 0 else { return }
            out.append(OpenFD(pid: pid, fd: fd, inode: target.inode,
                              device: DeviceID(major: target.dev_major, minor: target.dev_minor),
                              kind: FileKind(mode: mode_t(target.mode)), info: nil))
        }
        return nil
    }

    /// The same from a /proc that is not the live one: inodes from fdinfo (`ino:`), which
    /// is read and parsed here once.
    package static func openFilesFromFDInfo(procRoot: String, pid: Int32, buffer: inout [UInt8],
                                            into out: inout [OpenFD]) -> Errno? {
        let entries: [DirEntry]
        switch Sys.entries("\(procRoot)/\(pid)/fd") {
        case .success(let e): entries = e
        case .failure(let e): return e
        }
        for e in entries {
            guard let fd = Int32(e.name), let n = readSmall("\(procRoot)/\(pid)/fdinfo/\(fd)", into: &buffer),
                  let info = buffer.withUnsafeBufferPointer({ FDInfo.parse(UnsafeBufferPointer(rebasing: $0[0..<n])) }),
                  let ino = info.inode else { continue }
            out.append(OpenFD(pid: pid, fd: fd, inode: ino, device: nil, kind: nil, info: info))
        }
        return nil
    }

    /// The access mode of an open fd as open flags (0 read-only, 1 write-only, 2 read-write),
    /// from the mode bits procfs gives the /proc/PID/fd/N link: owner read for FMODE_READ,
    /// owner write for FMODE_WRITE (fs/proc/fd.c, tid_fd_update_inode). One lstat instead
    /// of an fdinfo read (`ProcessFDReader.openFlags`).
    package static func openFlags(linkMode mode: UInt32) -> UInt32 {
        let read = mode & 0o400 != 0, write = mode & 0o200 != 0  // S_IRUSR, S_IWUSR (CLinux and Glibc both export those)
        return write ? (read ? 2 : 1) : 0
    }
}

/// Reads of fd entries relative to their process's /proc/PID/fd and /proc/PID/fdinfo dirs,
/// each opened once per process and kept while the next fds are the same process's (the fd
/// pass lists them by process): one lookup of the fd's name per read, not a path walk from
/// /. Used by one thread; `close()` when done.
package struct ProcessFDReader {
    package let procRoot: String
    private var pid: Int32 = -1
    private var fdDir: Int32 = -1
    private var infoDir: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 16384)

    package init(procRoot: String) {
        self.procRoot = procRoot
    }

    package mutating func close() {
        if fdDir >= 0 { Sys.close(fdDir) }
        if infoDir >= 0 { Sys.close(infoDir) }
        (fdDir, infoDir, pid) = (-1, -1, -1)
    }

    private mutating func dirs(_ pid: Int32) {
        guard pid != self.pid else { return }
        close()
        self.pid = pid
    }

    private mutating func dir(_ which: WritableKeyPath<ProcessFDReader, Int32>, _ name: String) -> Int32 {
        if self[keyPath: which] < 0 {
            self[keyPath: which] = (try? Sys.open("\(procRoot)/\(pid)/\(name)", O_RDONLY | O_DIRECTORY | O_CLOEXEC).get()) ?? -1
        }
        return self[keyPath: which]
    }

    /// `body` with the fd number as a C string.
    private static func name<T>(_ fd: Int32, _ body: (UnsafePointer<CChar>) -> T) -> T {
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
    package mutating func info(pid: Int32, fd: Int32) -> FDInfo? {
        dirs(pid)
        let dir = dir(\.infoDir, "fdinfo")
        guard dir >= 0, let n = Self.name(fd, { Sys.readSmall(at: dir, $0, into: &buffer) }) else { return nil }
        return buffer.withUnsafeBufferPointer { FDInfo.parse(UnsafeBufferPointer(rebasing: $0[0..<n])) }
    }

    /// The fd's access mode as open flags, from the mode bits of its link (`Sys.openFlags`).
    package mutating func openFlags(pid: Int32, fd: Int32) -> UInt32? {
        dirs(pid)
        let dir = dir(\.fdDir, "fd")
        guard dir >= 0, case .success(let st) = Self.name(fd, { Sys.lstat(at: dir, $0) }) else { return nil }
        return Sys.openFlags(linkMode: st.mode)
    }

    /// The fd's link: the path it was opened by (or `pipe:[…]`, `socket:[…]`).
    package mutating func link(pid: Int32, fd: Int32) -> String? {
        dirs(pid)
        let dir = dir(\.fdDir, "fd")
        guard dir >= 0 else { return nil }
        return Self.name(fd) { Sys.readlink(at: dir, $0) }
    }
}
