// Phase 5 of a scan (Scan.swift): locked files classified by scheme (QEMU's byte locks,
// virtlockd's byte 0, lock files), `ImageLocks` assembled with their holders and waiters,
// and ordered.
import FoundationEssentials
import ImageLock

extension Scan {
    /// Which scheme a locked file belongs to, if any.
    /// (`lockFile`, `leaseFile`: the file's index among the lock or lease files, if it is one.)
    func classify(_ key: FileKey, rows: [KernelLock], holders: [OpenFileLocks], lockFile: Int?,
                  leaseFile: Int?, candidates: Candidates) -> LockScheme? {
        if lockFile != nil { return .lockfile }
        if leaseFile != nil { return .virtlockd }
        if rows.contains(where: \.isQemuByteLock) || holders.contains(where: { $0.locks.contains(where: \.isQemuByteLock) }) {
            return .qemu
        }
        if rows.contains(where: { $0.isByteZero && $0.kind == .posix }) {
            let byVirtlockd = rows.contains { r in
                r.isByteZero && r.pid.flatMap { details[$0] ?? nil }?.command == "virtlockd"
            } && !isDaemonPidFile(holders)  // libvirt hook
            if byVirtlockd || candidates.imageFile(key) != nil { return .virtlockd }
        }
        if candidates.imageFile(key) != nil { return .qemu }
        return nil
    }

    /// `lockFileKeys`: the lock files by key, also the keys only their holders' fd links
    /// gave (device mismatch); only regular files count.
    mutating func assemble(rowsByFile: [FileKey: [KernelLock]], lockFiles: [LockFileEntry],
                           lockFileKeys allKeys: [FileKey: Int], leaseFiles: [LockFileEntry], procs: ProcessScan,
                           candidates: Candidates) -> [ImageLocks] {
        let lockFileKeys = !lockFiles.indices.contains { lockFiles[$0].kind != .regular } ? allKeys
            : allKeys.filter { lockFiles[$0.value].kind == .regular }
        var leaseKeys: [FileKey: Int] = [:]
        for (i, f) in leaseFiles.enumerated() where f.kind == .regular {
            leaseKeys[FileKey(device: f.device, inode: f.inode)] = i
        }

        // Names of POSIX byte-0 holders are needed to recognise virtlockd.
        for fileRows in rowsByFile.values {
            for r in fileRows where r.isByteZero && r.kind == .posix { if let p = r.pid { _ = process(p) } }
        }

        // One entry per lock file and per locked file, in order of sight; entries with the
        // same id (an image with lock files in two dirs, or also locked by QEMU) are merged
        // once sorted, where they are neighbours: no table of 100k ids.
        var images: [ImageLocks] = []
        images.reserveCapacity(lockFiles.count + rowsByFile.count)
        func add(_ file: String, scheme: LockScheme, image: String?) -> Int {
            images.append(ImageLocks(id: image ?? file, path: image,
                                     schemes: scheme == .lockfile ? Self.lockfileOnly : [scheme], lockFiles: [file]))
            return images.count - 1
        }

        // Lock files first: every one is listed, held or not.
        var lockFileImageID = [Int?](repeating: nil, count: lockFiles.count)
        lockFiles.withUnsafeBufferPointer { files in
            for i in files.indices where files[i].kind == .regular {
                lockFileImageID[i] = add(files[i].path, scheme: .lockfile, image: files[i].image)
            }
        }
        var leaseImageID: [Int: Int] = [:]
        for i in leaseFiles.indices where leaseFiles[i].kind == .regular && leaseFiles[i].held {
            leaseImageID[i] = add(leaseFiles[i].path, scheme: .virtlockd, image: leaseFiles[i].image)
        }
        // The lock files' images are put in order on another thread while the locked files
        // are classified (100k paths sort in ~30 ms); a few thousand here, after them.
        // (Each key read in place: `images.map` would copy every image, a dozen references.)
        func orderKey(_ i: Int) -> ImageOrderKey { ImageOrderKey(known: images[i].path != nil, key: images[i].path ?? images[i].id) }
        let firstKeys = images.indices.map(orderKey)
        let firstOrder = firstKeys.count >= Parallel.offThreadFrom ? ThreadWork { Self.imageOrder(firstKeys) } : nil

        for (key, fileRows) in rowsByFile.sorted(by: { $0.key < $1.key }) {
            let openFiles = procs.byFile[key] ?? []
            let lockFile = lockFileKeys[key], leaseFile = leaseFiles.isEmpty ? nil : leaseKeys[key]
            guard let scheme = classify(key, rows: fileRows, holders: openFiles, lockFile: lockFile,
                                        leaseFile: leaseFile, candidates: candidates) else { continue }
            func entry(_ id: String) -> Int {
                images.append(ImageLocks(id: id, path: nil, schemes: []))
                return images.count - 1
            }
            let id: Int
            switch scheme {
            case .lockfile: id = lockFileImageID[lockFile!] ?? entry(lockFiles[lockFile!].path)
            case .virtlockd where leaseFile != nil:
                id = leaseImageID[leaseFile!] ?? entry(leaseFiles[leaseFile!].path)  // waiters only
            default:
                let path = openFiles.lazy.compactMap(\.link).first ?? candidates.imageFile(key)
                images.append(ImageLocks(id: path ?? key.text, path: path, device: key.device, inode: key.inode, schemes: [scheme]))
                id = images.count - 1
            }
            if !images[id].schemes.contains(scheme) { images[id].schemes.append(scheme) }
            let (holders, waiters) = self.holders(of: key, scheme: scheme, rows: fileRows, openFiles: openFiles, procs: procs)
            for h in holders where !images[id].schemes.contains(h.scheme) { images[id].schemes.append(h.scheme) }  // virtlockd beside qemu
            // Most images get one file's rows and holders: take the arrays as they are.
            images[id].locks.append(shared: fileRows)
            images[id].holders.append(shared: holders)
            images[id].waiters.append(shared: waiters)
        }

        // Known paths sorted, then unknown images by id (byte order: indices, not 100k moves).
        let restKeys = images.indices.dropFirst(firstKeys.count).map(orderKey)
        let order = Self.mergeOrders(firstOrder?.wait() ?? Self.imageOrder(firstKeys), firstKeys,
                                     Self.imageOrder(restKeys).map { $0 + firstKeys.count }, restKeys, offset: firstKeys.count)
        images.permute(to: order)
        Self.mergeNeighbours(&images)
        for i in images.indices {
            if images[i].locks.count > 1 {
                images[i].locks.sort { $0.id < $1.id || ($0.id == $1.id && !$0.isWaiter && $1.isWaiter) }
            }
            if images[i].holders.count > 1 { images[i].holders.sort { ($0.pid, $0.fd ?? -1) < ($1.pid, $1.fd ?? -1) } }
            if images[i].schemes.count > 1 {
                images[i].schemes.sort { LockScheme.allCases.firstIndex(of: $0)! < LockScheme.allCases.firstIndex(of: $1)! }
            }
        }
        return images
    }

    static let lockfileOnly: [LockScheme] = [.lockfile]

    /// What an image is ordered by: known paths first, then unknown images by id.
    struct ImageOrderKey: Sendable {
        var known: Bool
        var key: String
    }

    /// The indices of `keys` in image order (byte order within each group); stable.
    static func imageOrder(_ keys: [ImageOrderKey]) -> [Int] {
        let known = keys.indices.filter { keys[$0].known }
        let unknown = keys.indices.filter { !keys[$0].known }
        return ByteOrder.sortedIndices(known.map { keys[$0].key }).map { known[$0] }
            + ByteOrder.sortedIndices(unknown.map { keys[$0].key }).map { unknown[$0] }
    }

    /// Two orders merged into one: `a` of indices into `aKeys` (0...), `b` of indices into
    /// `bKeys` shifted by `offset`; on a tie, `a`'s first (it was seen first).
    static func mergeOrders(_ a: [Int], _ aKeys: [ImageOrderKey], _ b: [Int], _ bKeys: [ImageOrderKey], offset: Int) -> [Int] {
        guard !b.isEmpty else { return a }
        func precedes(_ x: ImageOrderKey, _ y: ImageOrderKey) -> Bool {
            x.known != y.known ? x.known : ByteOrder.precedes(x.key, y.key)
        }
        var out: [Int] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if precedes(bKeys[b[j] - offset], aKeys[a[i]]) {
                out.append(b[j])
                j += 1
            } else {
                out.append(a[i])
                i += 1
            }
        }
        out += a[i...]
        out += b[j...]
        return out
    }

    /// Merges each run of entries with the same id (sorted: they are neighbours, the first
    /// seen first) into its first entry.
    static func mergeNeighbours(_ images: inout [ImageLocks]) {
        guard images.count > 1 else { return }
        var last = 0
        for i in 1..<images.count {
            if PathBytes.same(images[i].id, images[last].id) {
                let other = images[i]
                if images[last].inode == nil {
                    images[last].device = other.device
                    images[last].inode = other.inode
                }
                for s in other.schemes where !images[last].schemes.contains(s) { images[last].schemes.append(s) }
                images[last].lockFiles += other.lockFiles
                images[last].locks += other.locks
                images[last].holders += other.holders
                images[last].waiters += other.waiters
            } else {
                last += 1
                if last != i { images.swapAt(last, i) }
            }
        }
        images.removeLast(images.count - last - 1)
    }

    /// The holders of the locks on one file: each fd whose fdinfo lists them (exact, also
    /// for OFD locks), then POSIX locks no fdinfo named, by the pid /proc/locks gives.
    mutating func holders(of key: FileKey, scheme: LockScheme, rows: [KernelLock], openFiles: [OpenFileLocks],
                          procs: ProcessScan) -> (holders: [Holder], waiters: [Holder]) {
        var holders: [Holder] = []
        holders.reserveCapacity(openFiles.count)
        struct PidShape: Hashable {
            var pid: Int32
            var shape: KernelLock.Identity
        }
        // The fds' own locks, looked up by a scan while they are few (one fd, one lock, on
        // most files) and by a set when many.
        let fdLocks = openFiles.reduce(0) { $0 + $1.locks.count }
        var namedPosix = Set<PidShape>()
        for of in openFiles {
            holders.append(makeHolder(pid: of.pid, fd: of.fd, openMode: OpenMode(flags: of.flags),
                                      locks: of.locks, scheme: scheme))
            if fdLocks > 16 {
                for l in of.locks where l.kind == .posix { namedPosix.insert(PidShape(pid: of.pid, shape: l.identity)) }
            }
        }
        func isNamed(_ pid: Int32, _ shape: KernelLock.Identity) -> Bool {
            fdLocks > 16 ? namedPosix.contains(PidShape(pid: pid, shape: shape))
                : openFiles.contains { $0.pid == pid && $0.locks.contains { $0.kind == .posix && $0.identity == shape } }
        }
        // Whether any fd lists the lock (only this file's fds can: fdinfo lists an fd's own).
        func isListed(_ shape: KernelLock.Identity) -> Bool {
            openFiles.contains { $0.locks.contains { $0.identity == shape } } || procs.shapes[shape] != nil
        }
        var posixOnly: [Int32: [KernelLock]] = [:]
        for r in rows where !r.isWaiter {
            if let pid = r.pid, r.kind == .posix || !isListed(r.identity) {
                if !isNamed(pid, r.identity) { posixOnly[pid, default: []].append(r) }
            } else if !isListed(r.identity) {
                unseen.append(Unseen(
                    what: "holder of \(r.kind) \(r.type) lock on \(key.text) bytes \(r.start)-\(r.end.map(String.init) ?? "EOF")",
                    why: procs.hidden.isEmpty ? "no process lists it in fdinfo (it may have ended during the scan)"
                        : "held through an fd of a process whose fds cannot be read"))
            }
        }
        for (pid, locks) in posixOnly.sorted(by: { $0.key < $1.key }) {
            holders.append(makeHolder(pid: pid, fd: nil, openMode: nil, locks: locks, scheme: scheme))
        }
        var waiters: [Holder] = []
        for r in rows where r.isWaiter {
            if let pid = r.pid {
                waiters.append(makeHolder(pid: pid, fd: nil, openMode: nil, locks: [r], scheme: scheme))
            } else {
                unseen.append(Unseen(
                    what: "waiter for \(r.kind) \(r.type) lock on \(key.text) bytes \(r.start)-\(r.end.map(String.init) ?? "EOF")",
                    why: "the kernel names no pid for a blocked OFD request, and fdinfo lists no blocked requests"))
            }
        }
        return (holders, waiters)
    }

    mutating func makeHolder(pid: Int32, fd: Int32?, openMode: OpenMode?, locks: [KernelLock], scheme: LockScheme) -> Holder {
        let d = process(pid)
        if d == nil {
            unseen.append(Unseen(what: "details of pid \(pid)", why: "the process ended during the scan"))
        }
        let scheme = virtlockdScheme(scheme, locks: locks, command: d?.command)  // libvirt hook
        let type: LockType? = locks.contains { $0.lockType == .write } ? .write : locks.contains { $0.lockType == .read } ? .read : nil
        // Only QEMU's own byte locks say which permissions a user holds: a whole-file lock
        // or an flock(2) lock on an image is no QEMU user (why still counts the fcntl ones).
        var qemu: QemuPermissions?
        if scheme == .qemu {
            let byteLocks = locks.filter { $0.isFcntlLock && $0.isQemuByteLock }
            if !byteLocks.isEmpty { qemu = QemuPermissions(lockedRanges: byteLocks.map { (start: $0.start, end: $0.end) }) }
        }
        return Holder(pid: pid, command: d?.command ?? "?", args: d?.args ?? [], user: d?.user, uid: d?.uid,
                      started: d?.started, fd: fd, openMode: openMode, vm: d?.vm, scheme: scheme, lockType: type,
                      qemu: qemu, startTicks: d?.startTicks, lockedDevice: locks.first?.device, lockedInode: locks.first?.inode)
    }
}

extension Array {
    /// Appends `other`'s elements; to an empty array, `other` itself (its buffer shared, no copy).
    mutating func append(shared other: [Element]) {
        if isEmpty { self = other } else if !other.isEmpty { self += other }
    }

    /// Puts `self[order[i]]` at `i` for every i, by swaps along the permutation's cycles
    /// (no element is copied: 100k images with a dozen references each).
    mutating func permute(to order: [Int]) {
        precondition(order.count == count)
        var done = [Bool](repeating: false, count: count)
        withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            for start in order.indices where !done[start] {
                done[start] = true
                guard order[start] != start else { continue }
                let first = (base + start).move()
                var i = start
                while order[i] != start {
                    (base + i).moveInitialize(from: base + order[i], count: 1)
                    i = order[i]
                    done[i] = true
                }
                (base + i).initialize(to: first)
            }
        }
    }
}
