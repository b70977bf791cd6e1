import FoundationEssentials
import ImageLock

/// `locksmith why` as a pure function: from the facts about an image, its chain, its lock
/// dirs and the locks on them (a `Snapshot`'s entries), the verdict QEMU and the lockfile
/// scheme would reach. No system calls here.
public enum Diagnosis {
    public static func verdict(_ input: WhyInput) -> Verdict {
        var d = Diagnoser(input: input)
        return d.run()
    }
}

private struct Diagnoser {
    let input: WhyInput
    var reasons: [Reason] = []
    var blockers: [Blocker] = []
    var failures: [QemuFailure] = []
    var facts: [Fact] = []
    var waiters: [Waiter] = []

    init(input: WhyInput) { self.input = input }

    var top: ChainLink { input.chain[0] }
    var intent: OpenIntent { input.intent }

    mutating func run() -> Verdict {
        precondition(!input.chain.isEmpty, "the chain starts with the image")
        if let e = input.inspectionError {
            reasons.append(Reason(kind: .cannotInspect, path: top.file.path, message: e,
                                  remedy: "run as root, with /proc mounted", blocks: false))
        }
        for s in input.serverLocks {
            if let e = s.probeError {
                reasons.append(Reason(kind: .cannotInspect, path: s.path,
                                      message: "\(s.path) is on \(s.filesystem.name), whose locks /proc/locks does not show, and F_GETLK failed: \(e)",
                                      remedy: "run as a user that can open it read-only (root)", blocks: false))
            } else if s.statedump != nil {
                let n = Set(s.statedump!.map { "\($0.host ?? "?")/\($0.holderPID.map(String.init) ?? "?")" }).count
                facts.append(Fact(statement: "a brick statedump of volume \(s.glusterVolume ?? "?") names \(n) holder\(n == 1 ? "" : "s") of \(s.glusterPath ?? s.path) with \(n == 1 ? "its" : "their") host",
                                  proven: true))
            }
        }
        var qemuMessage: String?
        var qemuHint: String?
        if checkImageFile() {
            let opened = intent.opensBackingChain ? input.chain.count : 1
            // QEMU opens the image, then each backing file; the first failure ends the open.
            var reachable = !reasons.contains(where: \.blocks)
            for (depth, link) in input.chain.enumerated() where depth < opened {
                if depth > 0 {
                    let ok = checkBackingFile(link, depth: depth)
                    reachable = reachable && ok
                }
                guard link.file.exists, link.file.isDisk, link.file.error == nil, !link.closesLoop else { continue }
                let found = qemuChecks(link, depth: depth)
                if reachable, qemuMessage == nil, let first = found.first {
                    qemuMessage = first.message
                    qemuHint = first.hint
                }
                failures += found
            }
            for (depth, link) in input.chain.enumerated() where depth >= opened && depth > 0 {
                if let p = link.problem {
                    facts.append(Fact(statement: "backing file \(link.name): \(p) (not opened by a read-only look)", proven: false))
                }
            }
            checkLockFiles()
            checkVirtlockd()
        }
        collectWaiters()
        // A failed QEMU check fails the open even when its holder cannot be named (a lock
        // held on a server, another host's): the verdict never contradicts its own facts.
        let outcome: Verdict.Outcome =
            !blockers.isEmpty || !failures.isEmpty || reasons.contains(where: \.blocks) ? .fails
            : reasons.isEmpty ? .opens : .unknown
        return Verdict(image: top.file.path, imageAsGiven: input.imageAsGiven, intent: intent, outcome: outcome,
                       qemuMessage: qemuMessage, qemuHint: qemuHint, qemuFailures: failures,
                       blockers: blockers, reasons: reasons, chain: chainEntries(), waiters: waiters, facts: facts)
    }

    // MARK: - Files

    /// The image itself; false when there is nothing to look at further.
    mutating func checkImageFile() -> Bool {
        let f = top.file
        if let e = f.error {
            reasons.append(Reason(kind: .cannotInspect, path: f.path, message: "\(input.imageAsGiven): \(e)",
                                  remedy: "run as a user that can reach the image (root)", blocks: false))
            return false
        }
        guard let kind = f.kind else {
            reasons.append(Reason(kind: .imageMissing, path: f.path, message: "\(input.imageAsGiven): no such file",
                                  remedy: "check the path: the disk may have been moved, renamed or deleted", blocks: true))
            facts.append(Fact(statement: "the image does not exist", proven: false))
            return false
        }
        guard f.isDisk else {
            reasons.append(Reason(kind: .notADisk, path: f.path,
                                  message: "\(f.path) is a \(kind.rawValue), not a disk image (a regular file or block device)",
                                  remedy: "name the disk image file or block device itself", blocks: true))
            facts.append(Fact(statement: "the image is a \(kind.rawValue); it was not opened", proven: false))
            return false
        }
        if !f.readable {
            reasons.append(Reason(kind: .notReadable, path: f.path, message: "\(f.path) is not readable by this user",
                                  remedy: "run as a user that may read it (its owner, root), or fix its mode/owner", blocks: true))
        }
        if intent == .write && !f.writable {
            reasons.append(Reason(kind: .notWritable, path: f.path,
                                  message: "\(f.path) is not writable by this user (a read-write open needs it)",
                                  remedy: "run as a user that may write it, fix its mode/owner, or open it read-only", blocks: true))
        }
        return true
    }

    /// A backing file QEMU will open; false when the open would stop here.
    mutating func checkBackingFile(_ link: ChainLink, depth: Int) -> Bool {
        if link.closesLoop {
            // QEMU refuses the image: `qemu-img info --backing-chain` stops with these words
            // (qemu-img.c, collect_image_info_list); a read-write open fails on the second
            // open of the repeated file (its own locks), a read-only one recurses until it
            // runs out of memory.
            let loop = input.chain[...depth].map(\.name).joined(separator: " -> ")
            reasons.append(Reason(kind: .backingLoop, path: link.file.path,
                                  message: "Backing file '\(link.name)' creates an infinite loop: \(loop)",
                                  remedy: "rebase the overlay that closes the loop onto the real base (`qemu-img rebase -u -b BASE OVERLAY`)",
                                  blocks: true))
            return false
        }
        if let p = link.problem {
            reasons.append(Reason(kind: .chainProblem, path: link.file.path, message: "backing chain at \(link.name): \(p)",
                                  remedy: "inspect it with `qemu-img info --backing-chain -U`", blocks: false))
            return false
        }
        if let e = link.file.error {
            reasons.append(Reason(kind: .cannotInspect, path: link.file.path, message: "backing file \(link.name): \(e)",
                                  remedy: "run as a user that can reach it (root)", blocks: false))
            return false
        }
        if !link.file.exists {
            reasons.append(Reason(kind: .backingMissing, path: link.file.path,
                                  message: "backing file \(link.name) does not exist",
                                  remedy: "restore it, or rebase the overlay (`qemu-img rebase -u -b NEW`)", blocks: true))
            return false
        }
        if !link.file.isDisk {
            reasons.append(Reason(kind: .notADisk, path: link.file.path,
                                  message: "backing file \(link.name) is a \(link.file.kind!.rawValue), not a disk image",
                                  remedy: "rebase the overlay onto the real base (`qemu-img rebase -u -b NEW`)", blocks: true))
            return false
        }
        if !link.file.readable {
            reasons.append(Reason(kind: .backingNotReadable, path: link.file.path,
                                  message: "backing file \(link.name) is not readable by this user",
                                  remedy: "run as a user that may read it, or fix its mode/owner", blocks: true))
            return false
        }
        return true
    }

    // MARK: - qemu scheme

    /// QEMU's open of one member: raw_apply_lock_bytes, then raw_check_lock_bytes
    /// (block/file-posix.c), judged on the snapshot's locks instead of by fcntl.
    mutating func qemuChecks(_ link: ChainLink, depth: Int) -> [QemuFailure] {
        let perms = depth == 0 ? intent.topPermissions : .readOnly
        let entry = input.entry(for: link.file)
        let holders = (entry?.holders ?? []).filter { $0.scheme == .qemu }
        let rows = (entry?.locks ?? []).filter {
            !$0.isWaiter && $0.isFcntlLock && (link.file.inode == nil || $0.inode == nil || $0.inode == link.file.inode)
        }
        func covers(_ h: Holder, _ byte: Int64) -> Bool {
            guard let q = h.qemu else { return false }
            return q.held.contains { $0.heldByte == byte } || q.unshared.contains { $0.unsharedByte == byte }
        }
        var found: [QemuFailure] = []
        // raw_apply_lock_bytes: a shared lock per byte; a write lock over it refuses it,
        // and QEMU stops at the first refused byte.
        for byte in perms.bytes {
            let range = ByteRange(start: byte, length: 1)
            let writers = rows.filter { $0.lockType == .write && $0.overlaps(range) }
            guard !writers.isEmpty else { continue }
            let seenHolders = holders.filter { $0.lockType == .write && covers($0, byte) }
            found.append(QemuFailure(step: .lockByte(byte), image: link.file.path, name: link.name, depth: depth,
                                     holders: pids(seenHolders, unseen: seenHolders.isEmpty)))
            addBlockers(seenHolders, link: link, depth: depth, conflict: ["byte \(byte)"], unseenLock: seenHolders.isEmpty)
            break
        }
        if found.isEmpty {
            // raw_check_lock_bytes: F_OFD_GETLK with F_WRLCK on one byte: any lock of
            // another open file conflicts.
            for check in QemuConflict.checks(for: perms) {
                let range = ByteRange(start: check.byte, length: 1)
                let seenHolders = holders.filter { covers($0, check.byte) }
                let unseen = seenHolders.isEmpty && rows.contains { $0.overlaps(range) }
                guard !seenHolders.isEmpty || unseen else { continue }
                found.append(QemuFailure(step: .check(check), image: link.file.path, name: link.name, depth: depth,
                                         holders: pids(seenHolders, unseen: unseen)))
                addBlockers(seenHolders, link: link, depth: depth, conflict: [check.permission.name], unseenLock: unseen)
            }
        }
        found = applyProof(found, link: link, depth: depth, perms: perms)
        return found
    }

    func pids(_ hs: [Holder], unseen: Bool) -> [Int32?] {
        var out: [Int32?] = []
        for h in hs where !out.contains(h.pid) { out.append(h.pid) }
        if unseen { out.append(nil) }
        return out
    }

    /// With `--force`, the probe's answer replaces the inference for this member.
    mutating func applyProof(_ inferred: [QemuFailure], link: ChainLink, depth: Int, perms: QemuPermissions) -> [QemuFailure] {
        let what = depth == 0 ? "the image" : "backing file \(link.name)"
        let checks = inferred.map(\.text)
        let summary = checks.isEmpty ? "QEMU's lock checks on \(what) pass" : "QEMU's lock checks on \(what) fail: \(checks.joined(separator: ", "))"
        let source = input.serverLocks(for: link.file)?.source ?? input.locksSource
        guard let proofs = input.proofs else {
            facts.append(Fact(statement: summary + " (from \(source))", proven: false))
            return inferred
        }
        guard let proof = proofs.first(where: { $0.scheme == .qemu && PathBytes.same($0.path, link.file.path) }), proof.error == nil else {
            let why = proofs.first(where: { $0.scheme == .qemu && PathBytes.same($0.path, link.file.path) })?.error ?? "no test-acquire"
            facts.append(Fact(statement: summary + " (from \(source); test-acquire failed: \(why))", proven: false))
            return inferred
        }
        // The probe takes the core's read-write/read-only permissions; keep only the checks
        // this open makes (qemu-img info never tests byte 200).
        let mine = QemuConflict.checks(for: perms)
        let proven = proof.qemuConflicts.filter { mine.contains($0) }
        if proof.acquired || (proof.qemuConflicts.isEmpty == false && proven.isEmpty) {
            facts.append(Fact(statement: "QEMU's lock checks on \(what) pass (test-acquired and released)", proven: true))
            blockers.removeAll { $0.holds == link.file.path && $0.scheme == .qemu }
            return []
        }
        if proven.isEmpty {
            // Refused while setting a byte: QEMU's "Failed to lock byte".
            facts.append(Fact(statement: "QEMU's byte locks on \(what) are refused (test-acquired)", proven: true))
            markProven(link.file.path, scheme: .qemu)
            if inferred.isEmpty, let byte = perms.bytes.first {
                // The lock table did not show the write lock in the way: the probe did.
                return [QemuFailure(step: .lockByte(byte), image: link.file.path, name: link.name, depth: depth,
                                    holders: proof.holderPids.isEmpty ? [nil] : proof.holderPids.map { Optional($0) })]
            }
            return inferred
        }
        var result: [QemuFailure] = []
        for c in proven {
            if let f = inferred.first(where: { $0.step == .check(c) }) {
                result.append(f)
            } else {
                result.append(QemuFailure(step: .check(c), image: link.file.path, name: link.name, depth: depth,
                                          holders: proof.holderPids.map { Optional($0) }))
            }
        }
        facts.append(Fact(statement: "QEMU's lock checks on \(what) fail: \(result.map(\.text).joined(separator: ", ")) (test-acquired)", proven: true))
        markProven(link.file.path, scheme: .qemu)
        return result
    }

    mutating func markProven(_ path: String, scheme: LockScheme) {
        for i in blockers.indices where PathBytes.same(blockers[i].holds, path) && blockers[i].scheme == scheme {
            blockers[i].proven = true
        }
    }

    // MARK: - Blockers

    mutating func addBlockers(_ hs: [Holder], link: ChainLink, depth: Int, conflict: [String], unseenLock: Bool) {
        for h in hs {
            let via = self.via(h.pid, member: link, depth: depth)
            if let i = blockers.firstIndex(where: { $0.pid == h.pid && $0.fd == h.fd && $0.holds == link.file.path && $0.scheme == h.scheme }) {
                for c in conflict where !blockers[i].conflict.contains(c) { blockers[i].conflict.append(c) }
                continue
            }
            blockers.append(Blocker(pid: h.pid, command: h.host == nil ? h.command : nil, args: h.args, vm: h.vm, user: h.user,
                                    started: h.started, fd: h.fd, openMode: h.openMode, scheme: h.scheme, holds: link.file.path,
                                    via: via, lock: h.modeSummary, conflict: conflict,
                                    remedy: remedy(h, link: link, depth: depth, via: via), proven: false, host: h.host,
                                    uid: h.uid))
        }
        if unseenLock {
            if let i = blockers.firstIndex(where: { $0.pid == nil && $0.holds == link.file.path && $0.scheme == .qemu }) {
                for c in conflict where !blockers[i].conflict.contains(c) { blockers[i].conflict.append(c) }
            } else {
                blockers.append(Blocker(pid: nil, command: nil, args: [], vm: nil, user: nil, started: nil, fd: nil, openMode: nil,
                                        scheme: .qemu, holds: link.file.path, via: nil, lock: "-", conflict: conflict,
                                        remedy: unseenRemedy(link.file), proven: false))
            }
        }
    }

    /// Why a lock's holder has no name, and what to do.
    func unseenRemedy(_ file: FileFacts) -> String {
        guard let s = input.serverLocks(for: file) else { return unseenRemedy }
        let pids = Set(s.probed.compactMap(\.pid)).sorted()
        let said = pids.isEmpty ? "" : " (F_GETLK's l_pid: \(pids.map(String.init).joined(separator: ", ")), no process here has the file open under that pid)"
        return "the lock is held on the \(s.filesystem.name) server by a process of another host or one this host cannot name\(said)"
            + (s.statedumpNote.map { "; \($0)" } ?? "") + "; find it on the other hosts (`locksmith list` there)"
    }
    let unseenRemedy = "the holder cannot be named from here (an OFD lock whose /proc/PID/fdinfo is unreadable): run as root"

    /// The overlay through which `pid` holds a backing file: the nearest image above it in
    /// this chain that the same process holds, else one the caller found (`overlayUses`).
    func via(_ pid: Int32, member: ChainLink, depth: Int) -> String? {
        if depth > 0 {
            for link in input.chain[..<depth].reversed() {
                if let e = input.entry(for: link.file), e.holders.contains(where: { $0.pid == pid }) { return link.file.path }
            }
        }
        return input.overlayUses.first { $0.pid == pid && $0.base == member.file.path }?.overlay
    }

    func who(_ h: Holder) -> String {
        if let host = h.host { return "pid \(h.pid) on host \(host)" }
        if let vm = h.vm { return "VM '\(vm)' (pid \(h.pid))" }
        return "pid \(h.pid) (\(h.command))"
    }

    func remedy(_ h: Holder, link: ChainLink, depth: Int, via: String?) -> String {
        let writer = h.qemu?.held.contains(.write) ?? (h.lockType == .write)
        switch h.scheme {
        case .lockfile:
            return "\(who(h)) holds the lock file \(writer ? "exclusively" : "shared"): stop it or wait for it (`locksmith hold --wait SECS` waits)"
        case .virtlockd:
            return "libvirt's virtlockd holds it for a running domain: shut the domain down (`virsh shutdown`) or migrate it first"
        case .gluster:
            return "\(who(h)) holds it on the Gluster volume: stop it first"
        case .qemu:
            break
        }
        if let o = via, o != link.file.path {
            return "it is the backing file of \(o), which \(who(h)) has open: stop or migrate that user first; never write a base under a live overlay"
        }
        if writer {
            let stop = h.vm != nil ? "shut down or migrate \(who(h))" : "stop \(who(h)) or wait for it to finish"
            return intent == .readOnly
                ? "for a read-only look use `qemu-img info -U` (--force-share; data may be mid-write); to open it otherwise, \(stop)"
                : "\(stop) first; it writes the image"
        }
        let stop = h.vm != nil ? "shut down \(who(h))" : "stop \(who(h)) or wait for it"
        return "\(stop): it reads the image and does not share write"
    }

    // MARK: - lockfile scheme

    mutating func checkLockFiles() {
        let mode = intent.lockMode
        let entry = input.entry(for: top.file)
        for dir in input.lockDirs {
            let lf = dir.lockFileFacts
            guard dir.exists else {
                reasons.append(Reason(kind: .lockDirMissing, path: dir.directory,
                                      message: "lock directory \(dir.directory) does not exist (lockfile scheme)",
                                      remedy: "create it or pass the right --lock-dir", blocks: true))
                continue
            }
            if lf.error != nil {
                reasons.append(Reason(kind: .cannotInspect, path: dir.lockFile, message: "lock file \(dir.lockFile): \(lf.error!)",
                                      remedy: "run as root", blocks: false))
                continue
            }
            switch lf.kind {
            case nil:
                if !dir.writable {
                    reasons.append(Reason(kind: .lockDirNotWritable, path: dir.directory,
                                          message: "lock directory \(dir.directory) is not writable: the lock file \(dir.lockFile) cannot be created",
                                          remedy: "run as a user that may write \(dir.directory), or create the lock file (mode 0644) beforehand",
                                          blocks: true))
                } else {
                    let proven = input.proofs?.contains { $0.scheme == .lockfile && PathBytes.same($0.path, dir.lockFile) && $0.error == nil && $0.acquired } ?? false
                    facts.append(Fact(statement: "lock file \(dir.lockFile) does not exist: the \(mode.rawValue) lock is free", proven: proven))
                }
                continue
            case .symlink?:
                reasons.append(Reason(kind: .lockFileSymlink, path: dir.lockFile,
                                      message: "lock file \(dir.lockFile) is a symbolic link; lock users refuse to follow it",
                                      remedy: "remove the link (someone planted it; check who)", blocks: true))
                continue
            case .regular?:
                break
            case let k?:
                reasons.append(Reason(kind: .lockFileNotRegular, path: dir.lockFile,
                                      message: "lock file \(dir.lockFile) is a \(k.rawValue), not a regular file",
                                      remedy: "remove it; the next lock user creates a regular file", blocks: true))
                continue
            }
            if mode == .exclusive && !lf.writable {
                reasons.append(Reason(kind: .lockFileNotWritable, path: dir.lockFile,
                                      message: "lock file \(dir.lockFile) is not writable by this user (an exclusive lock needs it)",
                                      remedy: "run as its owner or root, or make it mode 0644 owned by the VM user", blocks: true))
                continue
            }
            if !lf.readable {
                reasons.append(Reason(kind: .lockFileNotReadable, path: dir.lockFile,
                                      message: "lock file \(dir.lockFile) is not readable by this user",
                                      remedy: "run as its owner or root, or make it mode 0644", blocks: true))
                continue
            }
            let want: LockType = mode == .exclusive ? .write : .read
            let rows = (entry?.locks ?? []).filter {
                !$0.isWaiter && $0.isFcntlLock && $0.inode == lf.inode && ($0.lockType.map { want.conflicts(with: $0) } ?? true)
            }
            var seenHolders = (entry?.holders ?? []).filter {
                $0.scheme == .lockfile && ($0.lockType.map { want.conflicts(with: $0) } ?? true)
            }
            if input.lockDirs.count > 1 {
                // Several lock dirs: only holders whose lock rows sit on this lock file.
                seenHolders = seenHolders.filter { h in rows.contains { $0.pid == nil || $0.pid == h.pid } }
            }
            let proof = input.proofs?.first { $0.scheme == .lockfile && PathBytes.same($0.path, dir.lockFile) && $0.error == nil }
            if let p = proof, p.acquired {
                facts.append(Fact(statement: "the \(mode.rawValue) lock on \(dir.lockFile) can be taken (test-acquired and released)", proven: true))
                continue
            }
            let unseen = seenHolders.isEmpty && (!rows.isEmpty || proof != nil)
            if seenHolders.isEmpty && !unseen {
                facts.append(Fact(statement: "the \(mode.rawValue) lock on \(dir.lockFile) is free (from \(input.locksSource))", proven: false))
                continue
            }
            for h in seenHolders {
                let held = h.lockType == .read ? "shared" : "exclusive"
                blockers.append(Blocker(pid: h.pid, command: h.command, args: h.args, vm: h.vm, user: h.user, started: h.started,
                                        fd: h.fd, openMode: h.openMode, scheme: .lockfile, holds: dir.lockFile, via: nil,
                                        lock: h.modeSummary, conflict: [held], remedy: remedy(h, link: top, depth: 0, via: nil),
                                        proven: proof != nil, uid: h.uid))
            }
            if unseen {
                blockers.append(Blocker(pid: nil, command: nil, args: [], vm: nil, user: nil, started: nil, fd: nil, openMode: nil,
                                        scheme: .lockfile, holds: dir.lockFile, via: nil,
                                        lock: rows.first?.lockType == .read ? "read" : "write",
                                        conflict: [rows.first?.lockType == .read ? "shared" : "exclusive"],
                                        remedy: unseenRemedy, proven: proof != nil))
            }
            facts.append(Fact(statement: "the \(mode.rawValue) lock on \(dir.lockFile) is held by someone else"
                              + (proof != nil ? " (test-acquired)" : " (from \(input.locksSource))"), proven: proof != nil))
        }
    }

    // MARK: - virtlockd

    /// virtlockd's byte-0 lock (libvirt src/locking/lock_driver_lockd.c): the disk belongs to a running libvirt domain.
    /// libvirt takes no lock for read-only disks, so only a read-write open conflicts.
    mutating func checkVirtlockd() {
        guard let entry = input.entry(for: top.file) else { return }
        for h in entry.holders where h.scheme == .virtlockd {
            if intent == .write {
                blockers.append(Blocker(pid: h.pid, command: h.command, args: h.args, vm: h.vm, user: h.user, started: h.started,
                                        fd: h.fd, openMode: h.openMode, scheme: .virtlockd, holds: top.file.path, via: nil,
                                        lock: h.modeSummary, conflict: [h.lockType == .read ? "shared" : "exclusive"],
                                        remedy: remedy(h, link: top, depth: 0, via: nil), proven: false, uid: h.uid))
            } else {
                facts.append(Fact(statement: "virtlockd (pid \(h.pid)) holds the image for a libvirt domain; a read-only look does not conflict", proven: false))
            }
        }
    }

    // MARK: - Waiters and chain

    mutating func collectWaiters() {
        var seen = Set<PathKey>()
        for link in input.chain {
            guard let e = input.entry(for: link.file) else { continue }
            for w in e.waiters where seen.insert(PathKey("\(w.pid)/\(link.file.path)")).inserted {
                let on = w.scheme != .lockfile ? link.file.path
                    : e.lockFiles.count == 1 ? e.lockFiles[0] : "a lock file of \(link.file.path)"
                waiters.append(Waiter(pid: w.pid > 0 ? w.pid : nil, command: w.pid > 0 ? w.command : nil, started: w.started, waitsOn: on,
                                      lockType: w.lockType?.rawValue))
            }
        }
    }

    func chainEntries() -> [ChainEntry] {
        let opened = intent.opensBackingChain ? input.chain.count : 1
        return input.chain.enumerated().map { depth, link in
            let hs = (input.entry(for: link.file)?.holders ?? []).map {
                ChainEntry.ChainHolder(pid: $0.pid, command: $0.command, vm: $0.vm, lock: $0.modeSummary,
                                       via: via($0.pid, member: link, depth: depth))
            }
            return ChainEntry(path: link.file.path, name: link.name, backingName: link.backingName, format: link.format,
                              exists: link.file.exists, problem: link.problem, holders: hs, opened: depth < opened)
        }
    }
}
