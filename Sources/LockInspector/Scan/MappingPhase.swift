// Phase 4 of a scan (Scan.swift): candidate images (open files, --images dirs, libvirt
// domain XML, QEMU's `file=` arguments) and the mapping of lock files to them, by the SHA-1
// of a candidate's realpath (the lockfile scheme's name) or by the file's content.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

extension Scan {
    /// What phases 4 and 5 made.
    struct Assembled {
        var images: [ImageLocks]
        var candidates: Candidates
    }

    /// Phases 4 and 5: candidate images, lock files and lease files mapped to them, the
    /// images assembled (with their libvirt domains and other hosts' holders), and the
    /// processes writing image files.
    /// `early`: the lock files looked up among the directories' candidates while the kernel's
    /// table was read (`startEarlyMapping`); it has waited for `imageDirs` then.
    mutating func mapAndAssemble(_ rows: Rows, files: inout LockFiles, procs: ProcessScan,
                                 imageDirs: ThreadWork<ImageDirectories>?, early: ThreadWork<EarlyMapping>?,
                                 timings t: inout SnapshotTimings) -> (Assembled, [ImageWriter]) {
        var candidates = Candidates()
        for f in rows.focusedImages { candidates.addImageFile(f.key, path: f.path) }
        var earlyMapping = early?.wait()
        var directories = early == nil ? imageDirs?.wait() : earlyMapping?.directories.take()
        imageStatuses = directories?.statuses
        let domains = directories?.domains  // libvirt hook
        let paths = needPaths(files)
        var reopened = Set<SHA1Digest>()
        if paths {
            var base = earlyMapping?.candidates.take()
            (candidates, reopened) = buildCandidates(openPaths: procs.openPaths, qemuArgs: earlyMapping == nil ? qemuArgImages ?? [] : [],
                                                     directories: &directories, base: &base)
        }
        // A held lock file whose key the kernel did not list under the dir's device
        // (btrfs subvolumes, overlayfs) is still found through its holder's fd link.
        let lockFileByPath = procs.keyByLink.isEmpty ? [:]
            : Dictionary(files.lockFiles.indices.map { (PathKey(files.lockFiles[$0].path), $0) }, uniquingKeysWith: { a, _ in a })
        for (link, k) in procs.keyByLink {
            guard let i = lockFileByPath[link] else { continue }
            if !files.lockFiles[i].held {
                files.lockFiles[i].held = true
                files.lockFiles[i].device = k.device
            }
            files.keys[k] = i
        }
        do {  // (the early lookups freed before the images are built, when the scan's memory peaks; off this thread)
            let looked = earlyMapping.take().flatMap { e in e.digests.count == files.lockFiles.count ? (e.digests, e.named, reopened) : nil }
            mapLockFiles(&files.lockFiles, candidates: candidates, rowsByFile: rows.byFile, early: looked, timings: &t)
            Parallel.release(looked, entries: files.lockFiles.count)
        }
        let bySHA256 = files.leaseFiles.isEmpty ? [:] : candidates.bySHA256()
        for i in files.leaseFiles.indices {
            let name = String(files.leaseFiles[i].path.split(separator: "/").last ?? "")
            if let c = bySHA256[name] {
                files.leaseFiles[i].image = c.path
                files.leaseFiles[i].mappedBy = c.source
            }
        }
        // The SHA-1 table (a candidate per file under --images: 17 MB at 100k) has named the
        // lock and lease files; only the writers' check reads it again. Freed before the
        // images are built, when the scan's memory peaks.
        if procs.writeOpens.isEmpty { candidates.dropNames() }
        // The files under --images are looked up only by a locked file's key.
        candidates.keepImageFiles { rows.byFile[$0] != nil }
        var images = assemble(rowsByFile: rows.byFile, lockFiles: files.lockFiles, lockFileKeys: files.keys,
                              leaseFiles: files.leaseFiles, procs: procs, candidates: candidates)
        nameDomains(&images, domains: domains)  // libvirt hook
        // After the domains are named: a remote holder's pid numbers a process of its own host.
        if !serverLocks.isEmpty { ServerLocks.addRemoteHolders(serverLocks, to: &images) }
        let allLockFiles = files.leaseFiles.isEmpty ? files.lockFiles : files.lockFiles + files.leaseFiles
        let writers = imageWriters(procs.writeOpens, images: images, lockFiles: allLockFiles,
                                   candidates: paths ? candidates : nil, directories: directories)
        return (Assembled(images: images, candidates: candidates), writers)
    }


    struct Candidate {
        var path: String
        var source: String
        /// Named as an image by an --images dir, libvirt XML or QEMU's args (not merely open).
        var namedAsImage = true
    }

    struct Candidates {
        /// By the SHA-1 of the realpath (the lockfile scheme's name), the most trusted source
        /// kept.
        var bySHA1: [SHA1Digest: Candidate] = [:]
        /// Candidates as written where that is not their realpath: virtlockd names lease
        /// files by the SHA-256 of the path as the domain XML writes it, without
        /// canonicalising. Hashed only when there are lease files (`bySHA256()`).
        var aliases: [Candidate] = []
        /// Files under --images, by key (for locks on them that fit no other scheme).
        /// (Listed as walked, indexed by key on the first lookup: most scans never look one
        /// up, and 100k insertions would cost ~20 ms.)
        private var imageFileList: [(key: FileKey, path: String)] = []
        private var imageFileIndex = MadeOnce<[FileKey: String]>()

        /// A candidate less trusted than those already added.
        mutating func add(_ path: String, source: String, realPath: String? = nil, sha1: SHA1Digest? = nil) {
            let real = realPath ?? path
            let h1 = sha1 ?? Digest.sha1(real)
            if let i = bySHA1.index(forKey: h1) {
                bySHA1.values[i].namedAsImage = true
            } else {
                bySHA1[h1] = Candidate(path: real, source: source)
            }
            if path != real { aliases.append(Candidate(path: path, source: source)) }
        }

        /// Open files: more trusted than what the directories named. Returns their SHA-1s.
        @discardableResult
        mutating func putFirst(openFiles paths: [String]) -> Set<SHA1Digest> {
            var set = Set<SHA1Digest>(minimumCapacity: paths.count)
            for path in paths {
                let h = Digest.sha1(path)
                bySHA1[h] = Candidate(path: path, source: "open file", namedAsImage: bySHA1[h]?.namedAsImage ?? false)
                set.insert(h)
            }
            return set
        }

        /// Realpaths named as images by --images dirs, libvirt XML or QEMU args.
        var namedAsImages: Set<String> { Set(bySHA1.values.lazy.filter(\.namedAsImage).map(\.path)) }

        /// A file under an --images dir; of several names for one key (hard links), the
        /// first in byte order, whatever order the directory lists them in.
        mutating func addImageFile(_ key: FileKey, path: String) {
            imageFileList.append((key, path))
            imageFileIndex = MadeOnce()
        }

        /// The file under an --images dir with this key, if any.
        func imageFile(_ key: FileKey) -> String? {
            imageFileIndex.get {
                var index: [FileKey: String] = [:]
                index.reserveCapacity(imageFileList.count)
                for (k, path) in imageFileList {
                    if let old = index[k], !ByteOrder.precedes(path, old) { continue }
                    index[k] = path
                }
                return index
            }[key]
        }

        /// Keeps only the files under --images whose key passes `keep` (the index of 100k
        /// keys would be made for the few locked ones).
        mutating func keepImageFiles(_ keep: (FileKey) -> Bool) {
            imageFileList = imageFileList.filter { keep($0.key) }  // (a new array: removeAll keeps the capacity)
            imageFileIndex = MadeOnce()
        }

        /// Forgets the candidates by name (`bySHA1`, `aliases`); the files under --images stay.
        mutating func dropNames() {
            bySHA1 = [:]
            aliases = []
        }

        mutating func reserve(_ n: Int) {
            bySHA1.reserveCapacity(bySHA1.count + n)
            imageFileList.reserveCapacity(imageFileList.count + n)
        }

        func bySHA256() -> [String: Candidate] {
            var out: [String: Candidate] = [:]
            for c in bySHA1.values { out[Digest.sha256Hex(c.path)] = c }
            for c in aliases {
                let h = Digest.sha256Hex(c.path)
                if out[h] == nil { out[h] = c }
            }
            return out
        }
    }

    /// Candidate images, in the order of trust: open files, --images dirs, libvirt XML, QEMU
    /// args; with the SHA-1s of the open files. `qemuArgs`: the images QEMU's arguments name
    /// (`readQemuArgImages`, read before the kernel's table was waited for). `directories`:
    /// the directories' candidates, when already read (else read here); taken over (left
    /// nil), to be extended in place. `base`: the directories' and QEMU's arguments'
    /// candidates already made (`EarlyMapping`), taken over likewise (the same table: the
    /// open files replace what they name, and a QEMU argument only adds what nothing named).
    mutating func buildCandidates(openPaths: [PathKey: Int32], qemuArgs: [(path: String, realPath: String)],
                                  directories: inout ImageDirectories?, base: inout Candidates?) -> (Candidates, Set<SHA1Digest>) {
        var dirs = directories.take() ?? ImageDirectories.read(imageDirectories: options.imageDirectories,
                                                         libvirtDirectories: options.libvirtDirectories)
        unseen += dirs.unseen
        // Taken out of `dirs` (or `base`), not copied: a second reference would make the first
        // insertion copy the whole table (100k candidates, ~17 MB).
        var c = Candidates()
        if base != nil { swap(&c, &base!) } else { swap(&c, &dirs.candidates) }
        let deleted = " (deleted)"
        // Open lock files are not images: hashing them (100k on a busy host) buys nothing.
        let opened = c.putFirst(openFiles: openPaths.keys.lazy.map(\.path).filter { !$0.hasSuffix(deleted) && !$0.hasSuffix(".lock") })
        for a in qemuArgs {
            c.add(a.path, source: "qemu args", realPath: a.realPath)
        }
        return (c, opened)
    }

    /// The lock files looked up by name among the candidates that need none of the kernel's
    /// rows (--images dirs, libvirt's XML, QEMU's arguments), made on a thread of its own.
    struct EarlyMapping: Sendable {
        /// The directories read, their candidates taken out (into `candidates`).
        var directories: ImageDirectories?
        var candidates: Candidates?
        /// Per lock file: the SHA-1 its name carries, and the candidate with it, if any.
        var digests: [SHA1Digest?]
        var named: [Candidate?]
    }

    /// Starts `EarlyMapping` as soon as QEMU's arguments are read, if the kernel's table is
    /// still being read then: a core is soon idle until it comes (the table is read on the
    /// other, in time quadratic in its size: up to ~150 ms alone at 100k locks). Only for
    /// many lock files and --images or libvirt dirs; not for the audit's scan, whose lstat of
    /// every lock file runs then (at 10k its audit/list went from 1.37-1.40 to 1.41-1.46 with
    /// it). The open files, known after the table, are more trusted: `mapLockFiles` looks up
    /// again only the lock files of their SHA-1s.
    func startEarlyMapping(_ started: StartedDirectories, files: LockFiles, table: KernelTableReader) -> ThreadWork<EarlyMapping>? {
        // (Without lock or lease files nothing is mapped, and the writers' check takes the
        // directories' candidates as they are.)
        guard scope.isHost, needPaths(files), let imageDirs = started.imageDirs else { return nil }
        guard options.earlyMapping.mapsEarly(lockFiles: files.lockFiles.count, auditScan: options.lockFileStatus,
                                             tableReady: { table.isReady }) else { return nil }
        let lockFiles = files.lockFiles, qemuArgs = qemuArgImages ?? []
        return ThreadWork {
            var dirs = imageDirs.wait()
            var c = Candidates()
            swap(&c, &dirs.candidates)
            for a in qemuArgs { c.add(a.path, source: "qemu args", realPath: a.realPath) }
            var digests: [SHA1Digest?] = [], named: [Candidate?] = []
            digests.reserveCapacity(lockFiles.count)
            named.reserveCapacity(lockFiles.count)
            for i in lockFiles.indices {
                let d = Self.nameDigest(lockFiles[i].path)
                digests.append(d)
                named.append(d.flatMap { c.bySHA1[$0] })
            }
            return EarlyMapping(directories: dirs, candidates: c, digests: digests, named: named)
        }
    }

    /// The SHA-1 a lock file's name carries: `.qemu-` + 40 hex digits + `.lock`, at the end
    /// of the path.
    static func nameDigest(_ path: String) -> SHA1Digest? {
        func digest(_ p: UnsafeBufferPointer<UInt8>) -> SHA1Digest? {
            // The name is exactly 51 bytes (`.qemu-` + 40 + `.lock`).
            guard p.count == 51 || (p.count > 51 && p[p.count - 52] == UInt8(ascii: "/")) else { return nil }
            return SHA1Digest(hex: UnsafeBufferPointer(rebasing: p[(p.count - 45)..<(p.count - 5)]))
        }
        return path.utf8.withContiguousStorageIfAvailable(digest) ?? {
            var path = path
            return path.withUTF8(digest)
        }()
    }

    /// The images QEMU's processes name in their arguments, made absolute against each
    /// one's cwd, with their realpaths. `Scan.run` reads them while the kernel's table is
    /// still being read (nothing here needs its rows: a cmdline read per process).
    mutating func readQemuArgImages(pids: [Int32]) -> [(path: String, realPath: String)] {
        var out: [(path: String, realPath: String)] = []
        for pid in pids {
            guard let bytes = ProcFS.readBytes("\(procRoot)/\(pid)/cmdline") else { continue }
            let args = ProcessDetails.splitCmdline(bytes)
            guard QemuArgs.isQemu(args) else { continue }
            qemuPids.append(pid)
            let cwd = Sys.readlink("\(procRoot)/\(pid)/cwd")
            for p in QemuArgs.filePaths(args) {
                let abs = p.hasPrefix("/") ? p : cwd.map { $0 + "/" + p }
                if let a = abs { out.append((a, (try? Sys.realpath(a).get()) ?? a)) }
            }
        }
        return out
    }


    /// Names each lock file's image: a candidate whose SHA-1 is in the name (no file opened);
    /// else the realpath written inside, trusted only when its SHA-1 matches the name.
    /// `early`: each lock file's SHA-1 and candidate as `EarlyMapping` found them, and the
    /// SHA-1s the open files have since taken (looked up again).
    mutating func mapLockFiles(_ files: inout [LockFileEntry], candidates: Candidates, rowsByFile: [FileKey: [KernelLock]],
                               early: (digests: [SHA1Digest?], named: [Candidate?], reopened: Set<SHA1Digest>)? = nil,
                               timings t: inout SnapshotTimings) {
        // The lock files no candidate names, whose content may name their image.
        var unnamed: [(index: Int, digest: SHA1Digest)] = []
        let isEarly = early != nil, digests = early?.digests ?? [], earlyNamed = early?.named ?? []
        let reopened = early?.reopened ?? []
        for i in files.indices {
            guard let digest = isEarly ? digests[i] : Self.nameDigest(files[i].path) else { continue }
            let named: Candidate?
            if isEarly && (reopened.isEmpty || !reopened.contains(digest)) { named = earlyNamed[i] } else { named = candidates.bySHA1[digest] }
            if let c = named {
                files[i].image = c.path
                files[i].mappedBy = c.source
                continue
            }
            guard files[i].kind == .regular else { continue }
            // Opening a file with a lease would start breaking the lease: leave it alone.
            if let rows = rowsByFile[FileKey(device: files[i].device, inode: files[i].inode)],
               rows.contains(where: { $0.kind == .lease || $0.kind == .delegation }) { continue }
            unnamed.append((i, digest))
        }
        // An empty one (the scheme creates them empty) names nothing: an lstat, no read. The
        // audit's scan has lstat'ed each lock file already; else the lstats relative to each
        // dir (no path walk), on every core (10k empty lock files).
        let statuses: [FileStatus?]
        if !unnamed.isEmpty, let known = lockFileStatusResult()?.0, known.count == files.count {
            statuses = unnamed.map { known[$0.index] }
        } else {
            let entries = unnamed.map { files[$0.index] }
            statuses = Parallel.chunks(entries.count, chunk: 1024) { r in LockDirectories.statuses(of: Array(entries[r])) }
        }
        for (k, (i, digest)) in unnamed.enumerated() {
            if let s = statuses[k], s.kind == .regular, s.size == 0 { continue }
            t.contentReads += 1
            switch Sys.readRegularFile(files[i].path, limit: 4097) {
            case .success(let bytes):
                guard !bytes.isEmpty, bytes.count <= 4096 else { continue }
                var line = bytes[...]
                if let nl = line.firstIndex(of: 10) { line = line[..<nl] }
                if Digest.sha1Hex(Array(line)) == digest.hex {
                    files[i].image = PathBytes.string(line)
                    files[i].mappedBy = "content"
                }
            case .failure(let e) where e.code == ENOENT:
                break  // removed since the dir was read
            case .failure(let e):
                unseen.append(Unseen(what: "content of lock file \(files[i].path)", why: e.description))
            }
        }
    }

}
