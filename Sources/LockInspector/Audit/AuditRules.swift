import FoundationEssentials
import ImageLock

/// The audit rules: pure functions of a snapshot and the facts gathered for it.
/// Each returns its findings; `all` runs every rule and orders the result.
public enum AuditRules {
    public static func all(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        let c = LockFileContext(s, f)
        // The rules are independent of each other: run on every core, their findings joined
        // in this order (then sorted).
        let rules: [@Sendable () -> [Finding]] = [
            { unlockedWriter(s, f) }, { concurrentWriters(s, f) }, { unsafeLockFile(s, f, c) },
            { unwritableLockFile(s, f, c) }, { foreignHolder(s, f) }, { localLockOnSharedStorage(s, f, c) },
            { blockedWaiter(s, f) }, { staleLockFile(s, f, c) }, { unmappedLockFile(s, f, c) },
        ]
        // The rules with most to do (one finding per lock file) first, so that the cores finish
        // together; each rule's findings kept as it made them (not joined first: 15k findings
        // copied twice), in rule order.
        let start = [8, 7, 2, 3, 5, 4, 6, 0, 1]
        var parts = [[Finding]](repeating: [], count: rules.count)
        for (n, found) in Parallel.chunks(rules.count, chunk: 1, { range in range.map { (start[$0], rules[start[$0]]()) } }) {
            parts[n] = found
        }
        return sorted(parts: consume parts)
    }

    /// Most severe first, then in rule order, then by image and files; ties keep their order
    /// (a stable sort). The findings are put in groups of one severity and rule first (a
    /// number each), and only a group not already in order is sorted, by its findings' image
    /// and files, each made once (15k findings are ~200k comparisons).
    public static func sorted(_ findings: [Finding]) -> [Finding] {
        sorted(parts: [findings])
    }

    /// The findings of `parts`, one after the other, in that order, sorted: those of the
    /// largest part not copied at all (a finding copied retains a dozen references).
    static func sorted(parts: consuming [[Finding]]) -> [Finding] {
        let rules = AuditRule.allCases, severities = Severity.allCases
        // Each finding by its place in `parts` joined: (part, index) at `place[n]`.
        var place: [(part: Int, index: Int)] = []
        place.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts.indices { for i in parts[p].indices { place.append((p, i)) } }
        var groups = [[Int]](repeating: [], count: rules.count * severities.count)
        var images: [String] = [], files: [String] = []
        images.reserveCapacity(place.count)
        files.reserveCapacity(place.count)
        for p in parts.indices {
            for i in parts[p].indices {  // each field read in place: a finding copied retains a dozen references
                let severity = severities.firstIndex(of: parts[p][i].severity)!
                let rank = rules.firstIndex(of: parts[p][i].rule)!
                groups[(severities.count - 1 - severity) * rules.count + rank].append(images.count)
                images.append(parts[p][i].image ?? "")
                let f = parts[p][i].files
                files.append(f.count == 1 ? f[0] : f.joined(separator: " "))
            }
        }
        var order: [Int] = []
        order.reserveCapacity(place.count)
        images.withUnsafeBufferPointer { images in
            files.withUnsafeBufferPointer { files in
                func before(_ a: Int, _ b: Int) -> Bool {
                    if images[a] != images[b] { return images[a] < images[b] }
                    if files[a] != files[b] { return files[a] < files[b] }
                    return a < b
                }
                for var group in groups where !group.isEmpty {
                    if !zip(group, group.dropFirst()).allSatisfy({ before($0, $1) }) { group.sort(by: before) }
                    order += group
                }
            }
        }
        // The largest part is taken over and the others appended to it (theirs copied once);
        // then each finding is moved to its place, not copied (`permute`).
        guard let big = parts.indices.max(by: { parts[$0].count < parts[$1].count }) else { return [] }
        var out: [Finding] = []
        swap(&out, &parts[big])
        var start = [Int](repeating: 0, count: parts.count)  // where each part begins in `out`
        for p in parts.indices where p != big {
            start[p] = out.count
            out += parts[p]
        }
        out.permute(to: order.map { start[place[$0].part] + place[$0].index })
        return out
    }

    // MARK: - Writers

    /// Writers grouped by file (device and inode, else path), in path order.
    static func writersByFile(_ s: Snapshot) -> [[ImageWriter]] {
        var groups: [PathKey: [ImageWriter]] = [:]
        var order: [PathKey] = []
        for w in s.writers {
            let key = PathKey(w.inode.map { "\(w.device?.description ?? "?"):\($0)" } ?? w.path)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(w)
        }
        return order.map { groups[$0]! }
    }

    /// The snapshot's images that are a writer's file, by device and inode and by path,
    /// made once per rule: a lookup per writer group instead of a pass over every image
    /// (which others can multiply by planting lock files). Only images a writer can look up
    /// are indexed (most hosts have a few writers and thousands of images).
    struct ImageIndex {
        var byFile: [FileKey: [Int]] = [:]
        var byPath: [PathKey: [Int]] = [:]
        let images: [ImageLocks]

        init(_ s: Snapshot) {
            images = s.images
            guard !s.writers.isEmpty else { return }
            var keys = Set<FileKey>(), paths = Set<PathKey>()
            for w in s.writers {
                if let ino = w.inode, let d = w.device { keys.insert(FileKey(device: d, inode: ino)) }
                paths.insert(PathKey(w.path))
            }
            for n in s.images.indices {
                if let ino = s.images[n].inode, let d = s.images[n].device, case let k = FileKey(device: d, inode: ino),
                   keys.contains(k) {
                    byFile[k, default: []].append(n)
                }
                if let p = s.images[n].path.map(PathKey.init), paths.contains(p) { byPath[p, default: []].append(n) }
            }
        }

        /// The images that are the writer's file: same device and inode, or (when either
        /// side lacks them) same path. In snapshot order.
        func images(of w: ImageWriter) -> [ImageLocks] {
            var hits: [Int] = []
            if let wino = w.inode, let wd = w.device { hits += byFile[FileKey(device: wd, inode: wino)] ?? [] }
            hits += (byPath[PathKey(w.path)] ?? []).filter { n in
                let i = images[n]
                return !(i.inode != nil && i.device != nil && w.inode != nil && w.device != nil)
            }
            return hits.sorted().map { images[$0] }
        }
    }

    /// What F_GETLK said of each file on a filesystem whose locks the lock table does not
    /// show in full, by device and inode and by path, made once per rule.
    struct ServerLockIndex {
        var byFile: [FileKey: Int] = [:]
        var byPath: [PathKey: Int] = [:]
        let facts: [ServerLockFacts]

        init(_ s: Snapshot) {
            facts = s.serverLocks
            for (n, f) in s.serverLocks.enumerated() {
                if let ino = f.inode, let d = f.device, byFile[FileKey(device: d, inode: ino)] == nil {
                    byFile[FileKey(device: d, inode: ino)] = n
                }
                if byPath[PathKey(f.path)] == nil { byPath[PathKey(f.path)] = n }
            }
        }

        /// The facts of the writer's file: same device and inode, or (when either side
        /// lacks them) same path.
        func facts(of w: ImageWriter) -> ServerLockFacts? {
            if let wino = w.inode, let wd = w.device, let n = byFile[FileKey(device: wd, inode: wino)] { return facts[n] }
            guard let n = byPath[PathKey(w.path)] else { return nil }
            let f = facts[n]
            return f.inode != nil && f.device != nil && w.inode != nil && w.device != nil ? nil : f
        }
    }

    /// `unlocked-writer` (critical): a process has an image open for writing and holds no
    /// lock on it in any scheme — neither it nor a parent (`locksmith hold -- CMD` holds the
    /// lock for CMD), and no virtlockd lock covers the image.
    public static func unlockedWriter(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        var out: [Finding] = []
        let index = ImageIndex(s)
        let serverIndex = ServerLockIndex(s)
        for group in writersByFile(s) {
            let imgs = index.images(of: group[0])
            let holders = imgs.flatMap(\.holders)
            if holders.contains(where: { $0.scheme == .virtlockd }) { continue }
            let holderPids = Set(holders.map(\.pid))
            var seen = Set<Int32>()
            let unlocked = group.filter { w in
                let line = [w.pid] + (f.processes[w.pid]?.ancestors ?? [])
                return !line.contains(where: holderPids.contains) && seen.insert(w.pid).inserted
            }
            guard !unlocked.isEmpty else { continue }
            if let server = serverIndex.facts(of: group[0]) {
                // Its locks live on the server: only F_GETLK knows them, and it names one
                // holder per byte (and, on FUSE, pids as their own host numbers them). A
                // probe that found no lock at all proves there is none; anything else
                // cannot tell whether these writers hold some.
                let others = server.probed.filter { l in !(l.pid.map(holderPids.contains) ?? false) }
                if server.probeError != nil || !others.isEmpty {
                    let seen = server.probeError.map { "F_GETLK on it failed (\($0))" }
                        ?? "F_GETLK shows locks held by " + Set(others.map { $0.pid.map { "pid \($0)" } ?? "an unnamed holder" }).sorted().joined(separator: ", ")
                            + ", not by a process here with it open"
                    out.append(Finding(
                        rule: .unlockedWriter, severity: .info, image: group[0].path,
                        holders: unlocked.map(InvolvedProcess.init(writer:)), files: [],
                        evidence: unlocked.map { "\(InvolvedProcess(writer: $0).label) has it open \($0.openMode.rawValue) (fd \($0.fd))" }
                            .joined(separator: "; ") + "; it is on \(server.filesystem.name), whose locks live on the server, and \(seen): "
                            + "cannot tell whether it holds a lock.",
                        remedy: "run `locksmith why \(group[0].path)` here and `locksmith list` on the other hosts of the filesystem"))
                    continue
                }
            }
            let who = unlocked.map {
                "\(InvolvedProcess(writer: $0).label) has it open \($0.openMode.rawValue) (fd \($0.fd)) and holds no lock on it"
            }
            let others = holders.isEmpty ? "nobody holds any lock on it"
                : "its only locks are held by " + Set(holders.map { "pid \($0.pid) (\($0.command))" }).sorted().joined(separator: ", ")
            out.append(Finding(
                rule: .unlockedWriter, severity: .critical, image: group[0].path,
                holders: unlocked.map(InvolvedProcess.init(writer:)) + holders.map { InvolvedProcess(holder: $0) },
                files: [],
                evidence: who.joined(separator: "; ") + " in any scheme (no QEMU byte lock, no lock-file lock, "
                    + "none taken by a parent); \(others). Nothing stops another writer.",
                remedy: "let it finish or stop it, then open the image only with locking on "
                    + "(drop file.locking=off / locking=off, or wrap the tool in `locksmith hold IMAGE -- CMD`)"))
        }
        return out
    }

    /// `concurrent-writers` (critical): two or more processes have one image open for
    /// writing. A warning instead when every writer holds QEMU's write permission and
    /// shares it (share-rw=on): deliberate, and safe only with a cluster filesystem inside.
    public static func concurrentWriters(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        var out: [Finding] = []
        let index = ImageIndex(s)
        for group in writersByFile(s) {
            let pids = Set(group.map(\.pid))
            guard pids.count >= 2 else { continue }
            let holders = index.images(of: group[0]).flatMap(\.holders)
            let sharedOnPurpose = pids.allSatisfy { pid in
                holders.contains { h in
                    h.pid == pid && h.scheme == .qemu && (h.qemu?.held.contains(.write) ?? false)
                        && !(h.qemu?.unshared.contains(.write) ?? true)
                }
            }
            var seen = Set<Int32>()
            let writers = group.filter { seen.insert($0.pid).inserted }
            out.append(Finding(
                rule: .concurrentWriters, severity: sharedOnPurpose ? .warning : .critical, image: group[0].path,
                holders: writers.map(InvolvedProcess.init(writer:)),
                evidence: "\(pids.count) processes have it open for writing: "
                    + writers.map { InvolvedProcess(writer: $0).label + " fd \($0.fd)" }.joined(separator: ", ")
                    + (sharedOnPurpose ? "; each holds QEMU's write permission and shares it (share-rw=on)" : "") + ".",
                remedy: sharedOnPurpose
                    ? "make sure the guests run a cluster filesystem on it; otherwise stop all but one writer"
                    : "stop all but one writer now, then check the image (qemu-img check) before further use"))
        }
        return out
    }

    // MARK: - Lock files

    /// `unsafe-lock-file`: an entry in a lock dir that is a symlink or not a regular file
    /// (critical), or hard-linked, world-writable, or owned by someone other than root or
    /// the image's owner (warning); a lock dir that is world-writable without the sticky
    /// bit (critical).
    public static func unsafeLockFile(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        unsafeLockFile(s, f, LockFileContext(s, f))
    }

    static func unsafeLockFile(_ s: Snapshot, _ f: AuditFacts, _ c: LockFileContext) -> [Finding] {
        var out: [Finding] = []
        for (dir, d) in f.lockDirectories.sorted(by: { $0.key < $1.key }) where d.kind == .directory {
            if ImageLocker.isUnprotected(directoryMode: d.mode) {
                out.append(Finding(
                    rule: .unsafeLockFile, severity: .critical, image: nil, files: [dir],
                    evidence: "lock dir \(dir) is world-writable without the sticky bit (mode \(d.modeText)): any user "
                        + "can delete or replace a held lock file, and the next locker then takes a lock on a new file "
                        + "beside the holder's.",
                    remedy: "chmod +t \(dir) (or chmod o-w \(dir))"))
            }
        }
        for (k, n) in c.lockFileEntries.enumerated() {
            guard let ff = c.lockFacts[k] else { continue }
            // Nothing to say of a root-owned (or image owner's) single-link regular file
            // that is not world-writable: the common case, decided without a copy of the entry.
            if ff.kind == .regular && ff.links <= 1 && ff.mode & 0o002 == 0
                && (ff.uid == 0 || (c.imageFacts[k]?.uid).map { $0 == ff.uid } ?? true) {
                continue
            }
            let e = s.lockFiles[n]
            var problems: [String] = []
            var remedies: [String] = []
            var severity = Severity.warning
            switch ff.kind {
            case .symlink:
                severity = .critical
                problems.append("is a symbolic link" + (ff.linkTarget.map { " to \($0)" } ?? "")
                                + " (lockers refuse it, so the image cannot be locked; a tool that follows it "
                                + "creates or locks the target)")
                remedies.append("find out who planted it, then rm \(e.path)")
            case .regular:
                if ff.links > 1 {
                    problems.append("has \(ff.links) hard links (the same file is another name's lock too)")
                    remedies.append("rm \(e.path) when nobody holds it (audit --fix does)")
                }
                if ff.mode & 0o002 != 0 {
                    problems.append("is world-writable (mode \(ff.modeText)): any user can take the exclusive lock or rewrite the image path inside")
                    remedies.append("chmod o-w \(e.path)")
                }
                let owner = c.imageFacts[k]?.uid
                // Unknown image: its owner is unknown, so the owner is not judged.
                if ff.uid != 0, let owner, ff.uid != owner {
                    problems.append("is owned by uid \(ff.uid), neither root nor the image's owner (uid \(owner)): that user can chmod it and lock others out")
                    remedies.append("chown \(owner) \(e.path)")
                }
            default:
                severity = .critical
                problems.append("is a \(ff.kind.rawValue), not a regular file (lockers refuse it: the image cannot be locked)")
                remedies.append("find out who made it, then remove it")
            }
            guard !problems.isEmpty else { continue }
            out.append(Finding(
                rule: .unsafeLockFile, severity: severity, image: e.image, holders: c.holders(e.path),
                files: [e.path], evidence: "lock file \(e.path) " + problems.joined(separator: "; it ") + ".",
                remedy: remedies.joined(separator: "; ")))
        }
        return out
    }

    /// `unwritable-lock-file` (warning): the image's owner could not open the lock file
    /// for writing, so it cannot take an exclusive lock on its own image.
    public static func unwritableLockFile(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        unwritableLockFile(s, f, LockFileContext(s, f))
    }

    static func unwritableLockFile(_ s: Snapshot, _ f: AuditFacts, _ c: LockFileContext) -> [Finding] {
        var out: [Finding] = []
        for (k, n) in c.lockFileEntries.enumerated() where s.lockFiles[n].kind == .regular && s.lockFiles[n].image != nil {
            guard let img = c.imageFacts[k], img.uid != 0, let lf = c.lockFacts[k], lf.kind == .regular else { continue }
            let e = s.lockFiles[n]
            guard let image = e.image else { continue }
            let groups = f.userGroups[img.uid] ?? []
            guard !lf.permits(uid: img.uid, gid: groups.first ?? img.gid, groups: groups, access: 2) else { continue }
            out.append(Finding(
                rule: .unwritableLockFile, severity: .warning, image: image, holders: c.holders(e.path),
                files: [e.path],
                evidence: "the image's owner (uid \(img.uid)) cannot open lock file \(e.path) for writing (owner uid "
                    + "\(lf.uid), mode \(lf.modeText)): it cannot take an exclusive lock on its own image.",
                remedy: "chown \(img.uid) \(e.path) (or remove it while nobody holds it: audit --fix; the next locker creates its own)"))
        }
        return out
    }

    /// `foreign-holder` (warning): a lock held by a user who cannot read the image: it
    /// blocks the image's users without being able to use the image itself.
    public static func foreignHolder(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        var out: [Finding] = []
        for n in s.images.indices where !s.images[n].holders.isEmpty {
            guard let path = s.images[n].path, let img = f.images[PathKey(path)] else { continue }
            var seen = Set<Int32>()
            // (Read in place: most images have no foreign holder, and an image copied is a
            // dozen references retained.)
            let foreign = s.images[n].holders.filter { h in
                guard let p = f.processes[h.pid] ?? h.uid.map({ AuditProcessFacts(uid: $0, gid: $0) }) else { return false }
                return !img.permits(uid: p.uid, gid: p.gid, groups: p.groups, access: 4) && seen.insert(h.pid).inserted
            }
            guard !foreign.isEmpty else { continue }
            let who = foreign.map { h in "\(InvolvedProcess(holder: h).label) holds a \(h.modeSummary) \(h.scheme.rawValue)-scheme lock" }
            out.append(Finding(
                rule: .foreignHolder, severity: .warning, image: path, holders: foreign.map { InvolvedProcess(holder: $0) },
                files: s.images[n].lockFiles,
                evidence: who.joined(separator: "; ") + " on it, but cannot read the image (owner uid \(img.uid), "
                    + "gid \(img.gid), mode \(img.modeText)): it blocks the image's users without using it.",
                remedy: "find out why that user holds it; stop " + foreign.map { "pid \($0.pid)" }.joined(separator: ", ")
                    + " and make the lock file writable only by the image's owner"))
        }
        return out
    }

    /// `local-lock-on-shared-storage` (warning): a lock file in a lock dir on a local
    /// filesystem for an image on a shared one (NFS, FUSE/Gluster, Ceph, SMB, GFS2, OCFS2):
    /// other hosts never see the lock.
    public static func localLockOnSharedStorage(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        localLockOnSharedStorage(s, f, LockFileContext(s, f))
    }

    static func localLockOnSharedStorage(_ s: Snapshot, _ f: AuditFacts, _ c: LockFileContext) -> [Finding] {
        var out: [Finding] = []
        for (k, n) in c.lockFileEntries.enumerated() where s.lockFiles[n].kind == .regular && s.lockFiles[n].image != nil {
            guard let fs = c.imageFacts[k]?.sharedFilesystem else { continue }
            let e = s.lockFiles[n]
            guard let image = e.image else { continue }
            let dir = directory(of: e.path)
            guard let d = f.lockDirectories[dir], d.sharedFilesystem == nil else { continue }
            out.append(Finding(
                rule: .localLockOnSharedStorage, severity: .warning, image: image, holders: c.holders(e.path),
                files: [e.path],
                evidence: "the image is on a shared filesystem (\(fs)) but its lock file \(e.path) is in \(dir) on a local "
                    + "one: \(e.held ? "the lock held here" : "a lock taken here") is invisible to other hosts, which can open "
                    + "the image at the same time.",
                remedy: "lock where every host looks: QEMU's own byte locks inside the image (they reach the server), "
                    + "or a --lock-dir on the same shared filesystem"))
        }
        return out
    }

    /// `blocked-waiter` (warning): a process has been blocked for at least the threshold
    /// waiting for a lock on an image.
    public static func blockedWaiter(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        var out: [Finding] = []
        for n in s.images.indices where !s.images[n].waiters.isEmpty {
            let i = s.images[n]
            var seen = Set<Int32>()
            let long = i.waiters.filter { w in
                (f.processes[w.pid]?.waitedSeconds ?? -1) >= f.waitThreshold && seen.insert(w.pid).inserted
            }
            guard !long.isEmpty else { continue }
            let waiting = long.map { w in
                "\(InvolvedProcess(holder: w, role: .waiter).label) has been blocked for \(Int(f.processes[w.pid]!.waitedSeconds!)) s "
                    + "waiting for a \(w.lockType == .write ? "write" : "read") lock"
            }
            let by = i.holders.isEmpty ? "a holder this scan could not see"
                : Set(i.holders.map { "pid \($0.pid) (\($0.command))" }).sorted().joined(separator: ", ")
            out.append(Finding(
                rule: .blockedWaiter, severity: .warning, image: i.path ?? i.lockFiles.first,
                holders: long.map { InvolvedProcess(holder: $0, role: .waiter, waitedSeconds: f.processes[$0.pid]?.waitedSeconds) }
                    + i.holders.map { InvolvedProcess(holder: $0) },
                files: i.lockFiles,
                evidence: waiting.joined(separator: "; ") + " on it (threshold \(Int(f.waitThreshold)) s); held by \(by).",
                remedy: "see `locksmith why \(i.path ?? "IMAGE")`; end the holder's use of the image, or stop the waiter"))
        }
        return out
    }

    /// `stale-lock-file` (info): a lock file nobody holds.
    public static func staleLockFile(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        staleLockFile(s, f, LockFileContext(s, f))
    }

    static func staleLockFile(_ s: Snapshot, _ f: AuditFacts, _ c: LockFileContext) -> [Finding] {
        c.lockFileEntries.filter { s.lockFiles[$0].kind == .regular && !s.lockFiles[$0].held }.map { n in
            let e = s.lockFiles[n]
            return Finding(rule: .staleLockFile, severity: .info, image: e.image, files: [e.path],
                           evidence: "lock file \(e.path) is held by nobody" + (e.image.map { " (image \($0))" } ?? " (image unknown)") + ".",
                           remedy: "harmless; `locksmith audit --fix` removes it safely")
        }
    }

    /// `unmapped-lock-file` (info): a lock file whose image cannot be found.
    public static func unmappedLockFile(_ s: Snapshot, _ f: AuditFacts) -> [Finding] {
        unmappedLockFile(s, f, LockFileContext(s, f))
    }

    static func unmappedLockFile(_ s: Snapshot, _ f: AuditFacts, _ c: LockFileContext) -> [Finding] {
        c.lockFileEntries.compactMap { n -> Finding? in
            guard s.lockFiles[n].kind == .regular else { return nil }
            if s.lockFiles[n].image != nil && f.missingImages.isEmpty { return nil }
            let e = s.lockFiles[n]
            let evidence: String
            if let image = e.image {
                guard f.missingImages.contains(PathKey(image)) else { return nil }
                evidence = "lock file \(e.path) names \(image), which no longer exists."
            } else {
                evidence = "no image found for lock file \(e.path): none of the open files, --images dirs, libvirt "
                    + "disks or QEMU arguments has its SHA-1, and it holds no matching path."
            }
            return Finding(rule: .unmappedLockFile, severity: .info, image: nil, holders: c.holders(e.path),
                           files: [e.path], evidence: evidence,
                           remedy: e.held ? "pass the image's directory with --images to name it"
                               : "pass the image's directory with --images to name it; if the image is gone, `locksmith audit --fix` removes the lock file")
        }
    }

    // MARK: - Helpers

    /// A lock-dir entry (`.qemu-<sha1>.lock`), not a virtlockd lease file: its last path
    /// component is one (`ImageLocker.isLockFileName`), read as bytes.
    static func isLockFileEntry(_ e: LockFileEntry) -> Bool {
        e.path.utf8.withContiguousStorageIfAvailable(isLockFilePath)
            ?? Array(e.path.utf8).withUnsafeBufferPointer(isLockFilePath)
    }

    private static func isLockFilePath(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        var end = u.count
        while end > 0 && u[end - 1] == UInt8(ascii: "/") { end -= 1 }
        var start = end
        while start > 0 && u[start - 1] != UInt8(ascii: "/") { start -= 1 }
        guard end - start == 51 else { return false }
        let name = UnsafeBufferPointer(rebasing: u[start..<end])
        guard name.prefix(6).elementsEqual(".qemu-".utf8), name.suffix(5).elementsEqual(".lock".utf8) else { return false }
        return name[6..<46].allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// What the lock-file rules share, made once per audit: which entries are lock files
    /// (not lease files), each one's facts and its image's (one lookup by path each, not one
    /// per rule), and the holders of each lock file's image (made when a finding first
    /// names them: most lock files have nothing to report).
    struct LockFileContext: Sendable {
        /// Indices into `Snapshot.lockFiles`, in order.
        let lockFileEntries: [Int]
        /// For each of them: `AuditFacts.lockFiles` of its path, `AuditFacts.images` of its image.
        let lockFacts: [AuditFileFacts?]
        let imageFacts: [AuditFileFacts?]
        /// `holdersByLockFile` of `snapshot`, made on first use (by whichever rule asks first).
        private let table = MadeOnce<[String: [InvolvedProcess]]>()
        private let snapshot: Snapshot

        init(_ s: Snapshot, _ f: AuditFacts) {
            // Looked up on every core (10k lock files are 20k lookups by path), in order.
            let files = s.lockFiles
            let found = Parallel.chunks(files.count, chunk: 2048) { range in
                range.compactMap { n -> (Int, AuditFileFacts?, AuditFileFacts?)? in
                    guard isLockFileEntry(files[n]) else { return nil }
                    return (n, f.lockFiles[files[n].path], files[n].image.flatMap { f.images[PathKey($0)] })
                }
            }
            lockFileEntries = found.map(\.0)
            lockFacts = found.map(\.1)
            imageFacts = found.map(\.2)
            snapshot = s
        }

        /// The holders of the image the lock file at `path` belongs to.
        func holders(_ path: String) -> [InvolvedProcess] { table.get { holdersByLockFile(snapshot) }[path] ?? [] }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Holders of the image each lock file belongs to, by lock-file path: one pass over the
    /// images, made once per rule (a pass per lock file was quadratic in planted files).
    static func holdersByLockFile(_ s: Snapshot) -> [String: [InvolvedProcess]] {
        var out: [String: [InvolvedProcess]] = [:]
        for n in s.images.indices where !s.images[n].holders.isEmpty {
            let i = s.images[n]
            let involved = i.holders.map { InvolvedProcess(holder: $0) }
            if i.lockFiles.count == 1 {
                out[i.lockFiles[0], default: []] += involved
            } else {
                for f in Set(i.lockFiles) { out[f, default: []] += involved }
            }
        }
        return out
    }
}
