// The one place where the inspector calls the C library. Every read here is safe to make
// on a live host: nothing is created, nothing is locked, no link is followed where a file
// is opened, no open can block (O_NONBLOCK), and only regular files are ever opened.
// Paths go in and come out as carrier strings (`PathBytes`): their exact bytes.
import Foundation
import ImageLock
#if canImport(Glibc)
import Glibc
#endif

/// One directory entry as readdir(3) returns it: no stat needed for the inode.
struct DirEntry {
    var name: String
    var inode: UInt64
    /// From d_type; nil when the filesystem says DT_UNKNOWN.
    var kind: FileKind?
}

/// Why a directory or file could not be read.
struct ReadFailure: Error {
    var errno: Int32
    var text: String { String(cString: strerror(errno)) }
}

/// One fd of one process and the file it refers to, as the fd pass saw it.
struct OpenFD {
    var pid: Int32
    var fd: Int32
    /// The target's inode: from statx on the live /proc, else from fdinfo's `ino:`.
    var inode: UInt64
    /// The target's device (st_dev); nil when read from fdinfo.
    var device: DeviceID?
    /// nil when read from fdinfo (a /proc copy or fixture).
    var kind: FileKind?
    /// The parsed fdinfo, when the pass had to read it anyway (not the live /proc).
    var info: FDInfo?
}

enum SystemReads {
    /// The same from a /proc that is not the live one: inodes from fdinfo (`ino:`), which
    /// is read and parsed here once.
    static func openFilesFromFDInfo(procRoot: String, pid: Int32, buffer: inout [UInt8],
                                    into out: inout [OpenFD]) -> ReadFailure? {
        let entries: [DirEntry]
        switch SystemReads.entries("\(procRoot)/\(pid)/fd") {
        case .success(let e): entries = e
        case .failure(let e): return e
        }
        for e in entries {
            guard let fd = Int32(e.name), let n = readSmallProcFile("\(procRoot)/\(pid)/fdinfo/\(fd)", into: &buffer),
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
    static func openFlags(linkMode mode: mode_t) -> UInt32 {
        let read = mode & S_IRUSR != 0, write = mode & S_IWUSR != 0
        return write ? (read ? 2 : 1) : 0
    }

    /// A decimal fd number from a directory entry name; nil for `.`, `..` and anything else.
    static func fdNumber(_ name: UnsafePointer<CChar>) -> Int32? {
        var v: Int32 = 0
        var p = name
        guard p.pointee != 0 else { return nil }
        while p.pointee != 0 {
            let d = UInt8(bitPattern: p.pointee) &- UInt8(ascii: "0")
            guard d < 10, v < Int32.max / 10 else { return nil }
            v = v * 10 + Int32(d)
            p += 1
        }
        return v
    }

    /// The entries of a directory, without `.` and `..`. The corresponding C functions are
    /// `opendir` and `readdir`.
    static func entries(_ path: String) -> Result<[DirEntry], ReadFailure> {
        guard let dir = PathBytes.withCString(path, { opendir($0) }) else { return .failure(ReadFailure(errno: errno)) }
        defer { closedir(dir) }
        var out: [DirEntry] = []
        while true {
            errno = 0
            guard let ent = readdir(dir) else {
                if errno != 0 && out.isEmpty { return .failure(ReadFailure(errno: errno)) }
                break
            }
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { PathBytes.string(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            out.append(DirEntry(name: name, inode: UInt64(ent.pointee.d_ino), kind: kind(dType: ent.pointee.d_type)))
        }
        return .success(out)
    }

    /// Only the names that satisfy `keep`, each as `prefix` + name (one string per entry,
    /// made at once): saves building entries for a big /var/tmp.
    static func entries(_ path: String, prefix: String, where keep: (UnsafePointer<CChar>) -> Bool) -> Result<[DirEntry], ReadFailure> {
        guard let dir = PathBytes.withCString(path, { opendir($0) }) else { return .failure(ReadFailure(errno: errno)) }
        defer { closedir(dir) }
        var out: [DirEntry] = []
        var head = prefix
        head.withUTF8 { head in
            while let ent = readdir(dir) {
                let entry: DirEntry? = withUnsafePointer(to: ent.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { p in
                        guard keep(p) else { return nil }
                        let n = strlen(p)
                        // A name that is not plain ASCII: its carrier string (`PathBytes`).
                        if UnsafeRawBufferPointer(start: p, count: n).contains(where: { $0 >= 0x80 }) {
                            let name = String(decoding: head, as: UTF8.self) + PathBytes.string(cString: p)
                            return DirEntry(name: name, inode: UInt64(ent.pointee.d_ino), kind: kind(dType: ent.pointee.d_type))
                        }
                        let name = String(unsafeUninitializedCapacity: head.count + n) { buf in
                            UnsafeMutableRawBufferPointer(buf).copyBytes(from: head)
                            UnsafeMutableRawPointer(buf.baseAddress! + head.count).copyMemory(from: p, byteCount: n)
                            return head.count + n
                        }
                        return DirEntry(name: name, inode: UInt64(ent.pointee.d_ino), kind: kind(dType: ent.pointee.d_type))
                    }
                }
                if let e = entry { out.append(e) }
            }
        }
        return .success(out)
    }

    static func kind(dType: UInt8) -> FileKind? {
        switch Int32(dType) {
        case Int32(DT_REG): return .regular
        case Int32(DT_DIR): return .directory
        case Int32(DT_LNK): return .symlink
        case Int32(DT_FIFO): return .fifo
        case Int32(DT_SOCK): return .socket
        case Int32(DT_BLK): return .blockDevice
        case Int32(DT_CHR): return .characterDevice
        default: return nil
        }
    }

    static func kind(mode: UInt32) -> FileKind {
        switch mode & UInt32(S_IFMT) {
        case UInt32(S_IFREG): return .regular
        case UInt32(S_IFDIR): return .directory
        case UInt32(S_IFLNK): return .symlink
        case UInt32(S_IFIFO): return .fifo
        case UInt32(S_IFSOCK): return .socket
        case UInt32(S_IFBLK): return .blockDevice
        case UInt32(S_IFCHR): return .characterDevice
        default: return .unknown
        }
    }

    struct Status {
        var kind: FileKind
        var device: DeviceID
        var inode: UInt64
        var uid: UInt32
        var mode: UInt32
        var links: UInt64
        var size: Int64
    }

    private static func status(_ st: stat) -> Status {
        Status(kind: kind(mode: UInt32(st.st_mode)), device: deviceID(UInt64(st.st_dev)), inode: UInt64(st.st_ino),
               uid: st.st_uid, mode: UInt32(st.st_mode) & 0o7777, links: UInt64(st.st_nlink), size: Int64(st.st_size))
    }

    /// lstat(2): never follows a final symlink.
    static func lstatus(_ path: String) -> Result<Status, ReadFailure> {
        var st = stat()
        return PathBytes.withCString(path, { lstat($0, &st) }) == 0 ? .success(status(st)) : .failure(ReadFailure(errno: errno))
    }

    /// stat(2), following links (for directories the user named).
    static func status(_ path: String) -> Result<Status, ReadFailure> {
        var st = stat()
        return PathBytes.withCString(path, { stat($0, &st) }) == 0 ? .success(status(st)) : .failure(ReadFailure(errno: errno))
    }

    /// The device as /proc/locks prints it. glibc's gnu_dev_major / gnu_dev_minor.
    static func deviceID(_ dev: UInt64) -> DeviceID {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        return DeviceID(major: UInt32(truncatingIfNeeded: major), minor: UInt32(truncatingIfNeeded: minor))
    }

    /// The target of a symlink (a /proc/PID/fd entry): the kernel's d_path, no filesystem
    /// access. The corresponding C function is `readlink`.
    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = PathBytes.withCString(path) { readlink($0, &buf, buf.count) }
        guard n >= 0 else { return nil }
        return PathBytes.string(buf[0..<n].map { UInt8(bitPattern: $0) })
    }

    static func realPath(_ path: String) -> String? {
        guard let p = PathBytes.withCString(path, { realpath($0, nil) }) else { return nil }
        defer { free(p) }
        return PathBytes.string(cString: p)
    }

    /// Reads at most `limit` bytes of a regular file without following a final link,
    /// without opening anything else (`SafeOpen`: a FIFO or device planted there is never
    /// opened; ELOOP for a link, EINVAL for any other kind), without blocking (a lease
    /// holder makes the open fail, not wait) and without updating its access time where the
    /// kernel allows O_NOATIME.
    static func readRegularFile(_ path: String, limit: Int) -> Result<[UInt8], ReadFailure> {
        // O_NOATIME is hidden behind _GNU_SOURCE; 01000000 on Linux (asm-generic/fcntl.h).
        let noATime: Int32 = 0o1000000
        var opened = SafeOpen.open(path, flags: O_RDONLY | noATime, links: .notFinal, blockDevices: false)
        if case .failure(.system(let e)) = opened, e.code == EPERM {
            opened = SafeOpen.open(path, flags: O_RDONLY, links: .notFinal, blockDevices: false)
        }
        let fd: Int32
        switch opened {
        case .success(let o): fd = o.fd
        case .failure(.refused(.symlink)): return .failure(ReadFailure(errno: ELOOP))
        case .failure(.refused): return .failure(ReadFailure(errno: EINVAL))
        case .failure(.system(let e)): return .failure(ReadFailure(errno: e.code))
        }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: limit)
        var got = 0
        while got < limit {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, limit - got) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(errno: errno))
            }
            if n == 0 { break }
            got += n
        }
        return .success(Array(out[0..<got]))
    }

    /// A /proc pseudo-file (small), or nil when unreadable or gone.
    static func readProc(_ path: String) -> String? { ProcFS.read(path) }

    /// A /proc pseudo-file as raw bytes (cmdline has NULs).
    static func readProcBytes(_ path: String) -> [UInt8]? {
        ProcFS.readBytes(path)
    }

    /// Reads a /proc file made by one `show` call (fdinfo, status): a read shorter than the
    /// buffer is the whole file, which saves the read that would return 0. Returns the byte
    /// count, or nil when it cannot be read; a file larger than the buffer is cut short.
    static func readSmallProcFile(_ path: String, into buffer: inout [UInt8]) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var got = 0
        while got < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                return got > 0 ? got : nil
            }
            got += n
            if n == 0 || got < buffer.count { break }
        }
        return got
    }

    /// Whether `needle` occurs in the first `count` bytes of `bytes`.
    static func contains(_ bytes: [UInt8], count: Int, _ needle: StaticString) -> Bool {
        let k = needle.utf8CodeUnitCount
        guard count >= k, k > 0 else { return false }
        return bytes.withUnsafeBufferPointer { b in
            needle.withUTF8Buffer { nd in
                let first = nd[0]
                var i = 0
                while i <= count - k {
                    if b[i] == first {
                        var j = 1
                        while j < k && b[i + j] == nd[j] { j += 1 }
                        if j == k { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }

    /// The user name of a uid on this host, or nil. The corresponding C function is `getpwuid_r`.
    static func userName(_ uid: UInt32) -> String? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buf = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pw, &buf, buf.count, &result) == 0, result != nil, let name = pw.pw_name else { return nil }
        return String(cString: name)
    }

    static var clockTicks: Int { max(1, sysconf(Int32(_SC_CLK_TCK))) }

    static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
