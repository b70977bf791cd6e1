// Part of phase 5 of a scan (Scan.swift), for the audit's writer rules: the processes with an
// image file open for writing (`Snapshot.writers`, with `InspectorOptions.findWriters`).
import FoundationEssentials
import ImageLock

/// An fd open for writing, as the one pass over /proc/PID/fd found it (before it is known
/// whether its file is an image).
struct WriteOpen {
    var pid: Int32
    var fd: Int32
    var link: String
    var flags: UInt32
    var inode: UInt64?

    /// From the bytes of /proc/PID/fdinfo/FD: nil unless `flags & 3` says write-only or
    /// read-write and the link could name an image (not a terminal, /dev/null,
    /// /proc or /sys, a memfd, a deleted file).
    init?(pid: Int32, fd: Int32, link: String, fdinfo buffer: [UInt8], count: Int) {
        guard let flags = WriteOpen.field(buffer, count: count, "flags:").flatMap({ UInt32($0, radix: 8) }),
              flags & 3 != 0, WriteOpen.mayBeImage(link) else { return nil }
        self.pid = pid
        self.fd = fd
        self.link = link
        self.flags = flags
        self.inode = WriteOpen.field(buffer, count: count, "ino:").flatMap { UInt64($0) }
    }

    init(pid: Int32, fd: Int32, link: String, flags: UInt32, inode: UInt64?) {
        self.pid = pid
        self.fd = fd
        self.link = link
        self.flags = flags
        self.inode = inode
    }

    static func mayBeImage(_ link: String) -> Bool {
        for prefix in ["/dev/null", "/dev/pts/", "/dev/tty", "/dev/console", "/dev/ptmx", "/dev/shm/", "/proc/", "/sys/", "/memfd:"]
        where link.hasPrefix(prefix) { return false }
        return !link.hasSuffix(" (deleted)")
    }

    /// The value of a `NAME:\tVALUE` line of fdinfo (`flags:` is its second line).
    static func field(_ b: [UInt8], count: Int, _ name: StaticString) -> String? {
        let key = name.withUTF8Buffer { Array($0) }
        var lineStart = 0
        while lineStart < count {
            var end = lineStart
            while end < count && b[end] != 10 { end += 1 }
            if end - lineStart > key.count && Array(b[lineStart..<lineStart + key.count]) == key {
                var v = lineStart + key.count
                while v < end && (b[v] == 32 || b[v] == 9) { v += 1 }
                return String(decoding: b[v..<end], as: UTF8.self)
            }
            lineStart = end + 1
        }
        return nil
    }
}

/// File name endings of disk images (QEMU's formats and the usual raw names).
enum ImageNames {
    static let suffixes = [".qcow2", ".qcow", ".qed", ".raw", ".img", ".iso", ".vmdk", ".vdi", ".vhd", ".vhdx",
                           ".hdd", ".luks", ".dmg", ".bochs", ".cloop"]

    /// Whether `path` ends in one of `suffixes`, in any case (every write open's path is
    /// asked: no lowercased copy where its last bytes are ASCII).
    static func looksLikeImage(_ path: String) -> Bool {
        path.hasLowercasedSuffix(suffixes)
    }
}

extension Scan {
    /// The write-mode opens whose file is a candidate image: an image the snapshot already
    /// lists (it has QEMU, virtlockd or lock-file locks), a file under an --images dir, a
    /// disk source in libvirt XML, a `file=` of the writer's own QEMU arguments, or a file
    /// named like an image. Lock and lease files are not images. Regular files and block
    /// devices only (one stat through the fd link each, no open). `directories`: the
    /// directories' candidates when already read.
    mutating func imageWriters(_ opens: [WriteOpen], images: [ImageLocks], lockFiles: [LockFileEntry],
                               candidates: Candidates?, directories: ImageDirectories?) -> [ImageWriter] {
        var dirs = directories
        guard !opens.isEmpty else { return [] }
        // The tables by path and inode are made on first need, not per scan: most opens are
        // told apart by their name or place alone (10k images are 10k hashed paths).
        var lockFilePaths: Set<String>?
        // The dirs the lock and lease files were listed from, as their paths begin.
        let lockFileDirs = (options.lockDirectories + options.leaseDirectories).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        var imagePaths: Set<String>?
        var imageInodes: Set<UInt64>?
        let imageDirs = options.imageDirectories.compactMap { (try? Sys.realpath($0).get()) }
            .map { $0.hasSuffix("/") ? $0 : $0 + "/" }
        var namedAsImages: Set<String>?
        var named: Candidates?
        // Whether an open that is neither named nor placed like an image is one the snapshot
        // lists or that --images, libvirt or QEMU's arguments name: decided once per file
        // (a log file is open for writing by many processes). For the first few files by a
        // pass over the images and the candidates; for more, by tables of them (100k images
        // are 100k hashed paths, made for nothing when one log file is open).
        struct OpenFile: Hashable {
            var link: String
            var inode: UInt64?
        }
        var listed: [OpenFile: Bool] = [:]
        var qemuArgs: [Int32: [String]] = [:]
        var out: [ImageWriter] = []
        for w in opens {
            // The last component, found by byte (not by Character: 50k opens on a busy host).
            let slash = w.link.utf8.lastIndex(of: UInt8(ascii: "/"))
            let name = slash.map { String(w.link[w.link.utf8.index(after: $0)...]) } ?? w.link
            if ImageLocker.isLockFileName(name) { continue }
            var candidate = ImageNames.looksLikeImage(w.link) || imageDirs.contains { w.link.hasPrefix($0) }
            if !candidate {
                let file = OpenFile(link: w.link, inode: w.inode)
                if let known = listed[file] {
                    candidate = known
                } else {
                    let few = listed.count < 8
                    // By path, or by inode alone, of any device (as the kernel's rows may name another).
                    if few {
                        candidate = images.contains { PathBytes.same($0.path, w.link) || (w.inode != nil && $0.inode == w.inode) }
                    } else {
                        if imagePaths == nil {
                            var paths = Set<String>(), inodes = Set<UInt64>()
                            for n in images.indices {
                                if let p = images[n].path { paths.insert(p) }
                                if let ino = images[n].inode { inodes.insert(ino) }
                            }
                            (imagePaths, imageInodes) = (paths, inodes)
                        }
                        candidate = imagePaths!.contains(w.link) || (w.inode.map { imageInodes!.contains($0) } ?? false)
                    }
                    if !candidate {
                        if named == nil {
                            var none: Candidates?
                            named = candidates ?? buildCandidates(openPaths: [:], qemuArgs: [], directories: &dirs, base: &none).0
                        }
                        if few {
                            candidate = named!.bySHA1.values.contains { $0.namedAsImage && PathBytes.same($0.path, w.link) }
                        } else {
                            if namedAsImages == nil { namedAsImages = named!.namedAsImages }
                            candidate = namedAsImages!.contains(w.link)
                        }
                    }
                    listed[file] = candidate
                }
            }
            if !candidate {
                if qemuArgs[w.pid] == nil {
                    // One read of cmdline per writing process; only QEMU's are kept.
                    let args = ProcFS.readBytes("\(procRoot)/\(w.pid)/cmdline").map(ProcessDetails.splitCmdline) ?? []
                    qemuArgs[w.pid] = QemuArgs.isQemu(args) ? args : []
                }
                let args = qemuArgs[w.pid]!
                let cwd = args.isEmpty ? nil : Sys.readlink("\(procRoot)/\(w.pid)/cwd")
                candidate = QemuArgs.filePaths(args).contains { p in
                    let abs = p.hasPrefix("/") ? p : (cwd ?? "") + "/" + p
                    return abs == w.link || (try? Sys.realpath(abs).get()) == w.link
                }
            }
            guard candidate else { continue }
            // Lock and lease files are not images (a lock file opened by another name). Their
            // paths are in the lock and lease dirs only: their table (100k paths) is made
            // only for an open in one of those.
            let parent = w.link[..<(slash ?? w.link.startIndex)]
            if lockFileDirs.contains(where: { $0 == parent }) {
                if lockFilePaths == nil { lockFilePaths = Set(lockFiles.map(\.path)) }
                if lockFilePaths!.contains(w.link) { continue }
            }
            guard case .success(let st) = Sys.stat("\(procRoot)/\(w.pid)/fd/\(w.fd)"),
                  st.kind == .regular || st.kind == .blockDevice else { continue }
            let d = process(w.pid)
            out.append(ImageWriter(path: w.link, device: st.deviceID, inode: st.inode, pid: w.pid, fd: w.fd,
                                   openMode: OpenMode(flags: w.flags), command: d?.command ?? "?", args: d?.args ?? [],
                                   user: d?.user, uid: d?.uid, started: d?.started, vm: d?.vm))
        }
        return out.sorted { ($0.path, $0.pid, $0.fd) < ($1.path, $1.pid, $1.fd) }
    }
}
