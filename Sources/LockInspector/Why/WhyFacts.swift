// The system calls of `why`: stat, access(2) and the qcow2 header of the chain. Nothing
// here takes a lock or opens anything but regular files, read-only and non-blocking.
import FoundationEssentials
import ImageLock
#if canImport(Glibc)
import Glibc
#endif

public enum WhyFacts {
    /// The facts `why` needs about an image, its backing chain and its lock files. The
    /// locks themselves come from a snapshot (`WhyInput.images`).
    public static func gather(imageAsGiven: String, intent: OpenIntent, lockDirectories: [String]) -> WhyInput {
        let chain = backingChain(of: imageAsGiven)
        let real = chain[0].file.path
        let dirs = chain[0].file.exists ? lockDirectories.map { lockDirFacts($0, realPath: real) } : []
        return WhyInput(imageAsGiven: imageAsGiven, intent: intent, chain: chain, lockDirs: dirs)
    }

    // MARK: - Files

    /// realpath and stat (following links) of a file, and access(2) with the effective ids.
    /// The corresponding C functions are `realpath`, `stat` and `faccessat(..., AT_EACCESS)`.
    public static func file(_ path: String) -> FileFacts {
        let real: String
        switch Sys.realpath(path) {
        case .success(let r): real = r
        case .failure(let e) where e.code == ENOENT || e.code == ENOTDIR:
            return FileFacts(path: absolute(path), kind: nil, readable: false, writable: false)
        case .failure(let e): return FileFacts(path: absolute(path), kind: nil, readable: false, writable: false, error: e.description)
        }
        let st: FileStatus
        switch Sys.stat(real) {
        case .success(let s): st = s
        case .failure(let e) where e.code == ENOENT: return FileFacts(path: real, kind: nil, readable: false, writable: false)
        case .failure(let e): return FileFacts(path: real, kind: nil, readable: false, writable: false, error: e.description)
        }
        return FileFacts(path: real, kind: st.kind, device: st.deviceID, inode: st.inode,
                         readable: Sys.effectiveAccess(real, R_OK), writable: Sys.effectiveAccess(real, W_OK),
                         sharedFilesystem: SharedFilesystem.of(path: real))
    }

    /// lstat of a lock file: a symbolic link is reported as one, never followed.
    static func lockFile(_ path: String) -> FileFacts {
        let st: FileStatus
        switch Sys.lstat(path) {
        case .success(let s): st = s
        case .failure(let e) where e.code == ENOENT: return FileFacts(path: path, kind: nil, readable: false, writable: false)
        case .failure(let e): return FileFacts(path: path, kind: nil, readable: false, writable: false, error: e.description)
        }
        let regular = st.kind == .regular
        return FileFacts(path: path, kind: st.kind, device: st.deviceID, inode: st.inode,
                         readable: regular && Sys.effectiveAccess(path, R_OK),
                         writable: regular && Sys.effectiveAccess(path, W_OK))
    }

    static func lockDirFacts(_ directory: String, realPath: String) -> LockDirFacts {
        let dir = absolute(directory)
        let isDir = (try? Sys.stat(dir).get())?.kind == .directory
        let lf = ImageLocker(lockDirectory: dir).lockFilePath(realPath: realPath)
        return LockDirFacts(directory: dir, exists: isDir,
                            writable: isDir && Sys.effectiveAccess(dir, W_OK | X_OK),
                            lockFile: lf, lockFileFacts: isDir ? lockFile(lf) : FileFacts(path: lf, kind: nil))
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
    public static func backingChain(of imageAsGiven: String) -> [ChainLink] {
        var chain: [ChainLink] = []
        var name = imageAsGiven
        var backingName: String?
        var seen = Set<PathKey>()
        while true {
            let f = file(name)
            var link = ChainLink(name: name, backingName: backingName, file: f)
            if chain.count >= maxChainDepth {
                link.problem = "the chain is deeper than \(maxChainDepth); not followed further"
                chain.append(link)
                break
            }
            if f.exists && !seen.insert(PathKey(f.path)).inserted {
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
        defer { Sys.close(fd) }
        let head: [UInt8]
        switch Sys.read(fd, count: 20, at: 0) {
        case .success(let h): head = h
        case .failure(let e): return .failed(e.description)
        }
        guard head.count == 20, head[0..<4] == [0x51, 0x46, 0x49, 0xfb] else { return .notQcow2 }
        let offset = head[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let size = head[16..<20].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard offset != 0, size != 0 else { return .qcow2(nil) }
        // QEMU refuses backing names longer than 1023 bytes.
        guard size <= 1023, offset < UInt64(Int64.max) else { return .failed("backing file name of \(size) bytes") }
        guard case .success(let name) = Sys.read(fd, count: Int(size), at: Int64(offset)), name.count == Int(size) else {
            return .failed("short header")
        }
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
