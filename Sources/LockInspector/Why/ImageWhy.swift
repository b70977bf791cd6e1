import FoundationEssentials
import ImageLock

/// `why IMAGE`: gathers the facts of one image (`WhyFacts`), finds the holders of its chain
/// and lock files with a focused scan (`InspectorOptions.focus`, `FocusedLockSource`), asks a shared filesystem
/// (`ServerLocks`), with `force` proves by test-acquiring through the core, and decides
/// (`Diagnosis.verdict`). A `gluster://` image goes to `GlusterWhy`. Never prints.
public enum ImageWhy {
    /// The verdict for `image`, from the inspector in focus mode (only its chain and its
    /// lock files are looked at); with `force`, proven by test-acquiring through the core.
    /// `prefetched`: the kernel's lock table, being read since the caller started, to be
    /// used; without it the table is read only when the holders' fdinfo cannot be the whole
    /// answer (its first read after idle waits for an RCU grace period). `openFiles`: every
    /// process's fds, being read since the caller started (`Inspector.prefetchOpenFiles`).
    public static func diagnose(_ image: String, intent: OpenIntent, lockDirectories dirs: [String], force: Bool,
                                statedump: Bool = true, timeout: Double = 5, prefetched: KernelTablePrefetch? = nil,
                                openFiles: OpenFilesPrefetch? = nil) -> Verdict {
        let cli = GlusterCLI(timeout: max(30, timeout))
        if GlusterURL.looksLikeURL(image) {
            let locker = ImageLocker(glusterTimeout: timeout)
            return GlusterWhy.verdict(GlusterWhy.gather(imageAsGiven: image, intent: intent, statedump: statedump, locker: locker, cli: cli))
        }
        var input = WhyFacts.gather(imageAsGiven: image, intent: intent, lockDirectories: dirs)
        // Only what concerns this image: its chain members and its lock files.
        let members = input.chain.map(\.file).filter { $0.exists && $0.isDisk }
        if !members.isEmpty {
            var focus = members.map { InspectorFocus(image: $0.path, lockFiles: []) }
            focus[0].lockFiles = input.lockDirs.map(\.lockFile)
            var options = InspectorOptions(lockDirectories: dirs)
            options.focus = focus
            do {
                // The locks on these files from their holders' fdinfo, or the kernel's table
                // where that is not the whole answer (`FocusedLockSource.holdersFirst`).
                var t = SnapshotTimings()
                input.images = try Inspector(options).snapshot(timings: &t, prefetched: prefetched, openFiles: openFiles).images
                input.locksSource = t.kernelTableRead ? "/proc/locks" : "fdinfo"
                input.overlayUses = OverlayScan.overlayUses(images: input.images, chain: input.chain)
            } catch {
                input.inspectionError = "\(error)"
            }
            // Members whose locks /proc/locks does not show (FUSE, NFS...): what F_GETLK
            // (and on a Gluster FUSE mount, a brick statedump) says instead.
            let opened = intent.opensBackingChain ? members.count : 1
            for m in members.prefix(opened) {
                guard let fs = m.sharedFilesystem else { continue }
                let s = ServerLocks.gather(path: m.path, device: m.device, inode: m.inode, filesystem: fs,
                                           statedump: statedump, cli: cli)
                input.serverLocks.append(s)
                let local = input.entry(for: m)
                input.images.removeAll { PathBytes.same($0.id, local?.id) }
                input.images.append(ServerLocks.merged(local, s))
            }
        }
        if force { input.proofs = proofs(for: input, lockDirectories: dirs) }
        return Diagnosis.verdict(input)
    }

    /// `--force`: a test-acquire through the core for each image QEMU would open and each
    /// lock file. ImageLocker.probe takes and releases at once and never creates a lock file.
    static func proofs(for input: WhyInput, lockDirectories: [String]) -> [ProbeProof] {
        var out: [ProbeProof] = []
        let opened = input.intent.opensBackingChain ? input.chain.count : 1
        for (depth, link) in input.chain.enumerated() where depth < opened {
            let f = link.file
            guard f.exists, f.isDisk, f.error == nil, f.readable, link.problem == nil else { continue }
            let mode: LockMode = depth == 0 ? input.intent.lockMode : .shared
            if mode == .exclusive && !f.writable { continue }
            out.append(probe(f.path, scheme: .qemu, mode: mode, locker: ImageLocker()))
        }
        guard let top = input.chain.first?.file, top.exists, top.isDisk else { return out }
        for d in input.lockDirs where d.exists {
            let k = d.lockFileFacts.kind
            guard k == nil || k == .regular else { continue }
            var p = probe(top.path, scheme: .lockfile, mode: input.intent.lockMode,
                          locker: ImageLocker(lockDirectory: d.directory))
            p.path = d.lockFile
            out.append(p)
        }
        return out
    }

    static func probe(_ path: String, scheme: LockScheme, mode: LockMode, locker: ImageLocker) -> ProbeProof {
        do {
            let r = try locker.probe(path, scheme: scheme, mode: mode)
            return ProbeProof(scheme: scheme, path: r.lockFile ?? r.image, mode: mode, acquired: r.acquired,
                              qemuConflicts: r.contention?.qemuConflicts ?? [],
                              holderPids: (r.contention?.holders.map(\.pid) ?? []) + (r.contention?.blocking.compactMap(\.pid) ?? []))
        } catch {
            return ProbeProof(scheme: scheme, path: path, mode: mode, acquired: false, error: "\(error)")
        }
    }
}
