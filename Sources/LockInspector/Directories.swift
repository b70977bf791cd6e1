import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

// What the scan learns from directories alone, without /proc: the lock dirs' and lease
// dirs' entries, and the candidate images under --images and in libvirt's domain XML.
// `list` reads them on threads of their own while the processes are scanned (at 10k lock
// files each is a readdir of 10k entries, plus 10k SHA-1s for the images).

/// The lock files and virtlockd lease files, by readdir only: the dir's device plus d_ino is
/// each file's key; nothing is opened or stat'ed per entry unless the filesystem gives no d_type.
/// (The audit's lstat of each entry, `statuses(of:)`, follows on a thread of its own.)
struct LockDirectories: Sendable {
    var lockFiles: [LockFileEntry] = []
    var leaseFiles: [LockFileEntry] = []
    var unseen: [Unseen] = []
    var seconds: Double = 0

    static func read(lockDirectories: [String], leaseDirectories: [String]) -> LockDirectories {
        let t0 = Sys.monotonicSeconds()
        var out = LockDirectories()
        for dir in lockDirectories {
            // Only the scheme's names are lock files (`ImageLocker.isLockFileName`); another
            // `.qemu-*.lock` (uppercase, not hex, another length, an escape or a newline in
            // it) is not one: it is listed under unseen with the reason, and left alone.
            var misnamed: [String] = []
            let files = scan(dir, label: "lock dir", unseen: &out.unseen) { name in
                switch lockFileName(name) {
                case .scheme: return true
                case .misnamed:
                    misnamed.append(PathBytes.string(cString: name))
                    return false
                case .other: return false
                }
            }
            if out.lockFiles.isEmpty { out.lockFiles = files } else { out.lockFiles += files }
            let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            for i in ByteOrder.sortedIndices(misnamed) {
                out.unseen.append(Unseen(what: "lock dir entry \(base)/\(misnamed[i])",
                                         why: "not a lock file: named .qemu-*.lock but not .qemu-<40 lowercase hex digits>.lock"))
            }
        }
        for dir in leaseDirectories {
            var isDir = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else { continue }
            // virtlockd lease files: 64 hex digits.
            out.leaseFiles += scan(dir, label: "virtlockd lease dir", unseen: &out.unseen) { name in strlen(name) == 64 }
        }
        out.seconds = Sys.monotonicSeconds() - t0
        return out
    }

    /// The entries of one dir that `keep` accepts, sorted by path (byte order).
    static func scan(_ dir: String, label: String, unseen: inout [Unseen],
                     keep: (UnsafePointer<CChar>) -> Bool) -> [LockFileEntry] {
        let device: DeviceID
        switch Sys.stat(dir) {
        case .success(let s) where s.kind == .directory: device = s.deviceID
        case .success(let s):
            unseen.append(Unseen(what: "\(label) \(dir)", why: "is a \(s.kind.rawValue), not a directory"))
            return []
        case .failure(let e):
            unseen.append(Unseen(what: "\(label) \(dir)", why: e.description))
            return []
        }
        let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
        let entries: [DirEntry]
        switch Sys.entries(dir, prefix: base + "/", where: keep) {
        case .success(let e): entries = e
        case .failure(let e):
            unseen.append(Unseen(what: "\(label) \(dir)", why: e.description))
            return []
        }
        return ByteOrder.sortedIndices(entries.map(\.name)).map { i in
            let e = entries[i]
            var kind = e.kind
            var dev = device
            var inode = e.inode
            if kind == nil, case .success(let s) = Sys.lstat(e.name) {
                kind = s.kind
                dev = s.deviceID
                inode = s.inode
            }
            return LockFileEntry(path: e.name, kind: kind ?? .unknown, device: dev, inode: inode, held: false)
        }
    }

    /// What lstat says of each entry (nil when it failed: gone since it was listed), for the
    /// audit's lock-file facts: relative to its dir, opened once per run of entries in one
    /// dir (fstatat, AT_SYMLINK_NOFOLLOW: one lookup in the dir, no path walk, never
    /// followed); by path when the dir cannot be opened.
    static func statuses(of entries: [LockFileEntry]) -> [FileStatus?] {
        var out: [FileStatus?] = []
        out.reserveCapacity(entries.count)
        var dir: (path: Substring, fd: Int32)?
        defer { if let fd = dir?.fd, fd >= 0 { Sys.close(fd) } }
        for e in entries {
            let path = e.path
            guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")), slash != path.startIndex else {
                out.append(try? Sys.lstat(path).get())
                continue
            }
            let parent = path[..<slash], name = String(path[path.utf8.index(after: slash)...])
            if dir?.path != parent {
                if let fd = dir?.fd, fd >= 0 { Sys.close(fd) }
                // Opened as opendir opens it (the scan has just listed it so), links in its path followed.
                dir = (parent, (try? Sys.open(String(parent), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK).get()) ?? -1)
            }
            if let fd = dir?.fd, fd >= 0, !name.isEmpty {
                out.append(PathBytes.withCString(name) { try? Sys.lstat(at: fd, $0).get() })
            } else {
                out.append(try? Sys.lstat(path).get())
            }
        }
        return out
    }

    /// The entries with their `statuses(of:)`: owner, group, whole mode, links.
    static func apply(_ statuses: [FileStatus?], to entries: inout [LockFileEntry]) {
        for (i, st) in zip(entries.indices, statuses) {
            guard let st else { continue }
            (entries[i].uid, entries[i].gid, entries[i].mode, entries[i].links) = (st.uid, st.gid, st.mode, st.links)
        }
    }
}

enum LockFileNameKind { case scheme, misnamed, other }

/// Whether a directory entry is a lock file of the scheme (`.qemu-` + 40 lowercase hex
/// digits + `.lock`, as `ImageLocker.isLockFileName`), merely looks like one
/// (`.qemu-*.lock`), or is something else.
func lockFileName(_ name: UnsafePointer<CChar>) -> LockFileNameKind {
    var p = name
    for c in ".qemu-".utf8 {
        guard p.pointee == CChar(bitPattern: c) else { return .other }
        p += 1
    }
    let n = strlen(name)
    guard n > 11 && strcmp(name + n - 5, ".lock") == 0 else { return .other }
    guard n == 51 else { return .misnamed }
    for i in 6..<46 {
        let c = UInt8(bitPattern: name[i])
        guard (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) else { return .misnamed }
    }
    return .scheme
}

extension LockDirectories {
    /// The lock dirs as the scan uses them: each made absolute once (a relative name joined
    /// to the working directory, without following links), and a dir named twice (two
    /// spellings, a link to it) kept once, compared by device and inode. Every path of the
    /// snapshot is built from these, so a holder's fd (whose kernel path is absolute) is
    /// joined to its lock file however the dir was named. A dir that cannot be stat'ed is
    /// kept as named (absolute), for the scan to report.
    static func resolve(_ dirs: [String]) -> [String] {
        var out: [String] = []
        var seen = Set<FileKey>()
        for dir in dirs {
            var abs = dir.hasPrefix("/") ? dir : FileManager.default.currentDirectoryPath + "/" + dir
            while abs.count > 1 && abs.hasSuffix("/") { abs.removeLast() }
            if abs.hasSuffix("/.") { abs.removeLast(2) }
            if abs.isEmpty { abs = "/" }
            if case .success(let s) = Sys.stat(abs) {
                guard seen.insert(FileKey(device: s.deviceID, inode: s.inode)).inserted else { continue }
            }
            out.append(abs)
        }
        return out
    }
}

/// Candidate images named by directories: files under the --images dirs (a few levels deep,
/// symlinks resolved) and the disk sources in libvirt's domain XML, hashed for the lockfile
/// scheme's names.
struct ImageDirectories: Sendable {
    var candidates = Scan.Candidates()
    var unseen: [Unseen] = []
    /// The domains of libvirt's XML (their disks are candidates).
    var domains: [LibvirtDomain] = []
    /// With `statImages`: the stat of every file walked, under way (`ImageStatuses`).
    var statuses: ImageStatuses?

    /// `statImages` (the audit's scan): every file walked is then stat'ed on a thread of its
    /// own, for `AuditFacts.gather`, while the scan goes on.
    static func read(imageDirectories: [String], libvirtDirectories: [String], statImages: Bool = false) -> ImageDirectories {
        var out = ImageDirectories()
        var walkedPaths: [String] = []
        for dir in imageDirectories {
            let real: String
            switch Sys.realpath(dir) {
            case .success(let r): real = r
            case .failure(let e):
                out.unseen.append(Unseen(what: "images dir \(dir)", why: e.description))
                continue
            }
            let dev: DeviceID? = {
                if case .success(let s) = Sys.stat(real) { return s.deviceID }
                return nil
            }()
            // Walk first, then hash on every core (100k paths is ~50 ms of SHA-1 on one).
            var found: [ImageDirEntry] = []
            walk(real, depth: 0, device: dev, into: &found, unseen: &out.unseen)
            let walked = found
            if statImages { walkedPaths += walked.map(\.path) }
            out.candidates.reserve(walked.count)
            let digests = Parallel.chunks(walked.count, chunk: 4096) { range in range.map { Digest.sha1(walked[$0].path) } }
            for (e, d) in zip(walked, digests) {
                out.candidates.add(e.path, source: "images dir", sha1: d)
                if let k = e.key { out.candidates.addImageFile(k, path: e.path) }
            }
        }
        if !walkedPaths.isEmpty { out.statuses = ImageStatuses(walkedPaths) }
        let libvirt = LibvirtDomains.read(libvirtDirectories)
        out.domains = libvirt.domains
        out.unseen += libvirt.unseen
        for d in out.domains {
            for disk in d.disks {
                for src in disk.sources where src.hasPrefix("/") {
                    out.candidates.add(src, source: "libvirt", realPath: (try? Sys.realpath(src).get()) ?? src)
                }
            }
        }
        return out
    }

    /// A file found under an --images dir: its path (symlinks resolved) and, for a file
    /// itself (not a link), its key.
    struct ImageDirEntry: Sendable {
        var path: String
        var key: FileKey?
    }

    /// Files in readdir order (a key's name does not depend on it: `addImageFile`); subdirs
    /// in byte order, so what cannot be read is reported in a stable order.
    /// `entered` is told each dir walked (the first is `dir`).
    static func walk(_ dir: String, depth: Int, device: DeviceID?, into found: inout [ImageDirEntry],
                     unseen: inout [Unseen], entered: (String) -> Void = { _ in }) {
        entered(dir)
        let base = dir == "/" ? "" : dir
        // Each entry as its whole path, made once; not `.`, `..` or another hidden dir.
        switch Sys.entries(dir, prefix: base + "/", where: { name in name[0] != CChar(UInt8(ascii: ".")) || !Sys.isDots(name) }) {
        case .failure(let e):
            unseen.append(Unseen(what: "images dir \(dir)", why: e.description))
        case .success(let entries):
            let nameStart = base.utf8.count + 1
            var subdirs: [String] = []
            for e in entries {
                switch e.kind {
                case .regular?, .blockDevice?:
                    found.append(ImageDirEntry(path: e.name, key: FileKey(device: device, inode: e.inode)))
                case .symlink?:
                    if let real = (try? Sys.realpath(e.name).get()) { found.append(ImageDirEntry(path: real, key: nil)) }
                case .directory? where depth < 3 && e.name.utf8.dropFirst(nameStart).first != UInt8(ascii: "."):
                    subdirs.append(e.name)
                default:
                    break
                }
            }
            for i in ByteOrder.sortedIndices(subdirs) {
                walk(subdirs[i], depth: depth + 1, device: device, into: &found, unseen: &unseen, entered: entered)
            }
        }
    }
}

/// The audit's stat (followed, with the mount id: `Sys.statWithMount`) of the files under the
/// --images dirs, taken on a thread of its own from the end of the walk while the scan goes
/// on, so that `AuditFacts.gather` does not stat them after the scan (10k images: the facts
/// took 14.5-15 ms after the scan, 10-14 ms with these). Every file walked, not only those the
/// snapshot lists: the walk has already listed (and realpath'ed the links of) each. By path
/// (`PathKey`: by its bytes).
final class ImageStatuses: Sendable {
    typealias Status = Result<(status: FileStatus, mount: UInt64?), Errno>
    private let work: ThreadWork<[PathKey: Status]>

    init(_ paths: [String]) {
        work = ThreadWork {
            var out: [PathKey: Status] = [:]
            out.reserveCapacity(paths.count)
            for p in paths { out[PathKey(p)] = Sys.statWithMount(p) }
            return out
        }
    }

    func wait() -> [PathKey: Status] { work.wait() }
}
