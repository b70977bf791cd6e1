// The system calls of `why`: stat, access(2) and the qcow2 header of the chain. Nothing
// here takes a lock or opens anything but regular files, read-only and non-blocking.
import Foundation
import ImageLock
#if canImport(Glibc)
import Glibc
#endif

public enum WhyFacts {
    /// The facts `why` needs about an image, its backing chain and its lock files. The
    /// locks themselves come from a snapshot (`WhyInput.images`).
    public static func gather(named: String, intent: OpenIntent, lockDirectories: [String]) -> WhyInput {
        let chain = backingChain(named: named)
        let real = chain[0].file.path
        let dirs = chain[0].file.exists ? lockDirectories.map { lockDirFacts($0, realPath: real) } : []
        return WhyInput(named: named, intent: intent, chain: chain, lockDirs: dirs)
    }

    // MARK: - Files

    /// realpath and stat (following links) of a file, and access(2) with the effective ids.
    /// The corresponding C functions are `realpath`, `stat` and `faccessat(..., AT_EACCESS)`.
    public static func file(_ path: String) -> FileFacts {
        guard let rp = PathBytes.withCString(path, { realpath($0, nil) }) else {
            let e = errno
            if e == ENOENT || e == ENOTDIR { return FileFacts(path: absolute(path), kind: nil, readable: false, writable: false) }
            return FileFacts(path: absolute(path), kind: nil, readable: false, writable: false, error: String(cString: strerror(e)))
        }
        let real = PathBytes.string(cString: rp)
        free(rp)
        var st = stat()
        guard PathBytes.withCString(real, { stat($0, &st) }) == 0 else {
            let e = errno
            if e == ENOENT { return FileFacts(path: real, kind: nil, readable: false, writable: false) }
            return FileFacts(path: real, kind: nil, readable: false, writable: false, error: String(cString: strerror(e)))
        }
        return FileFacts(path: real, kind: kind(st.st_mode), device: deviceID(st.st_dev), inode: UInt64(st.st_ino),
                         readable: PathBytes.withCString(real) { faccessat(AT_FDCWD, $0, R_OK, AT_EACCESS) } == 0,
                         writable: PathBytes.withCString(real) { faccessat(AT_FDCWD, $0, W_OK, AT_EACCESS) } == 0,
                         sharedFilesystem: SharedFilesystem.of(path: real))
    }

    /// lstat of a lock file: a symbolic link is reported as one, never followed.
    static func lockFile(_ path: String) -> FileFacts {
        var st = stat()
        guard PathBytes.withCString(path, { lstat($0, &st) }) == 0 else {
            let e = errno
            if e == ENOENT { return FileFacts(path: path, kind: nil, readable: false, writable: false) }
            return FileFacts(path: path, kind: nil, readable: false, writable: false, error: String(cString: strerror(e)))
        }
        let k = kind(st.st_mode)
        let regular = k == .regular
        return FileFacts(path: path, kind: k, device: deviceID(st.st_dev), inode: UInt64(st.st_ino),
                         readable: regular && PathBytes.withCString(path) { faccessat(AT_FDCWD, $0, R_OK, AT_EACCESS) } == 0,
                         writable: regular && PathBytes.withCString(path) { faccessat(AT_FDCWD, $0, W_OK, AT_EACCESS) } == 0)
    }

    static func lockDirFacts(_ named: String, realPath: String) -> LockDirFacts {
        let dir = absolute(named)
        var st = stat()
        let isDir = stat(dir, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        let lf = ImageLocker(lockDirectory: dir).lockFilePath(realPath: realPath)
        return LockDirFacts(directory: dir, exists: isDir,
                            writable: isDir && faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0,
                            lockFile: lf, lockFileFacts: isDir ? lockFile(lf) : FileFacts(path: lf, kind: nil))
    }

    static func kind(_ mode: mode_t) -> FileKind {
        switch mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        case S_IFIFO: return .fifo
        case S_IFSOCK: return .socket
        case S_IFBLK: return .blockDevice
        case S_IFCHR: return .characterDevice
        default: return .unknown
        }
    }

    static func deviceID(_ dev: dev_t) -> DeviceID {
        DeviceID(major: UInt32((dev >> 8) & 0xfff) | UInt32((dev >> 32) & ~0xfff),
                 minor: UInt32(dev & 0xff) | UInt32((dev >> 12) & ~0xff))
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    // MARK: - Backing chain

    /// The deepest chain followed; QEMU itself allows more, admins rarely have it.
    public static let maxChainDepth = 16

    /// The image and its backing files, read from each qcow2 header. Relative backing names
    /// are combined with the overlay's name as QEMU does (block.c, path_combine), so the
    /// names match QEMU's messages. Stops at a loop, at depth 16, at a file that is not a
    /// regular file, at a protocol name (`nbd:`, `json:`) and at an unreadable header.
    public static func backingChain(named: String) -> [ChainLink] {
        var chain: [ChainLink] = []
        var name = named
        var backingName: String?
        var seen = Set<String>()
        while true {
            let f = file(name)
            var link = ChainLink(name: name, backingName: backingName, file: f)
            if chain.count >= maxChainDepth {
                link.problem = "the chain is deeper than \(maxChainDepth); not followed further"
                chain.append(link)
                break
            }
            if f.exists && !seen.insert(f.path).inserted {
                link.problem = "backing loop: \(f.path) is already in the chain"
                link.closesLoop = true
                chain.append(link)
                break
            }
            guard f.exists, f.kind == .regular, f.error == nil else {
                chain.append(link)
                break
            }
            switch qcow2Backing(f.path) {
            case .notQcow2:
                chain.append(link)
                return chain
            case .failed(let why):
                link.problem = "cannot read its header: \(why)"
                chain.append(link)
                return chain
            case .qcow2(nil):
                link.format = "qcow2"
                chain.append(link)
                return chain
            case .qcow2(let b?):
                link.format = "qcow2"
                chain.append(link)
                if hasProtocol(b) {
                    chain.append(ChainLink(name: b, backingName: b, file: FileFacts(path: b, kind: nil),
                                           problem: "not a local file (\(b)); not followed"))
                    return chain
                }
                name = pathCombine(name, b)
                backingName = b
            }
        }
        return chain
    }

    enum Header {
        case notQcow2
        case qcow2(String?)
        case failed(String)
    }

    /// Reads a qcow2 header (docs/interop/qcow2.txt): magic `QFI\xfb`, backing_file_offset
    /// (u64 big-endian at 8), backing_file_size (u32 big-endian at 16). `path` is a realpath
    /// that stat said is a regular file; by now another user may have put something else
    /// there: it is opened only if it is still a regular file, through no symbolic link
    /// (`SafeOpen`), so a FIFO or device swapped in is never opened, and never blocks.
    static func qcow2Backing(_ path: String) -> Header {
        let fd: Int32
        switch SafeOpen.open(path, flags: O_RDONLY, links: .none, blockDevices: false) {
        case .success(let opened): fd = opened.fd
        case .failure(.refused(.blockDevice)): return .notQcow2
        case .failure(let e): return .failed(e.description)
        }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 20)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 20, 0) }
        guard n == 20, head[0..<4] == [0x51, 0x46, 0x49, 0xfb] else { return n < 0 ? .failed(String(cString: strerror(errno))) : .notQcow2 }
        let offset = head[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let size = head[16..<20].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard offset != 0, size != 0 else { return .qcow2(nil) }
        // QEMU refuses backing names longer than 1023 bytes.
        guard size <= 1023, offset < UInt64(Int64.max) else { return .failed("backing file name of \(size) bytes") }
        var name = [UInt8](repeating: 0, count: Int(size))
        let r = name.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(size), off_t(offset)) }
        guard r == Int(size) else { return .failed("short header") }
        return .qcow2(PathBytes.string(name))  // the name's bytes, as QEMU opens them
    }

    /// QEMU's path_has_protocol: a `:` before any `/`.
    static func hasProtocol(_ name: String) -> Bool {
        guard let i = name.firstIndex(where: { $0 == ":" || $0 == "/" }) else { return false }
        return name[i] == ":"
    }

    /// QEMU's path_combine: an absolute name stays; a relative one goes into the
    /// directory part of `base` (none when `base` has no slash).
    public static func pathCombine(_ base: String, _ name: String) -> String {
        if name.hasPrefix("/") { return name }
        guard let slash = base.lastIndex(of: "/") else { return name }
        return String(base[...slash]) + name
    }
}
