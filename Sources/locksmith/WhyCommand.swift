import ArgumentParser
import Foundation
import ImageLock
import LockInspector

extension Locksmith {
    struct Why: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "why",
            abstract: "Tell whether an image would open, and if not, why: QEMU's words, who holds it, what to do.",
            usage: "locksmith why [--write] [--read-only] [--force] [--no-statedump] [--json] [--lock-dir <dir> ...] "
                + "[--timeout <secs>] " + ClusterOptions.usage + " <image>",
            discussion: """
                --write asks about a read-write open such as `qemu-io IMAGE` or a VM's \
                writable disk (the image and, read-only, its backing files); --read-only \
                about a look such as `qemu-img info IMAGE` (the image only). QEMU's lock \
                rule is applied to the locks the kernel lists; the lock files of the \
                lockfile scheme in each --lock-dir and libvirt virtlockd's byte-0 lock are \
                checked too. Nothing is locked or created unless --force is given; --force \
                test-acquires each lock through the core and releases it at once, so the \
                verdict is proven rather than inferred.

                Exit 0: the open would succeed. Exit 1: it would fail (a lock, a missing \
                image, permissions...). Exit 2: could not tell (reason on stderr).

                A gluster://HOST[:PORT]/VOLUME/PATH image is asked about on the volume: \
                would a whole-file F_WRLCK (--write) or F_RDLCK (--read-only) through \
                glfs_posix_lock be granted (F_GETLK; nothing is taken). Blockers carry the \
                pid; on a server node a brick statedump adds every holder's host \
                (--no-statedump skips it). --timeout bounds each step against the server.

                An image on a filesystem whose locks /proc/locks does not show (FUSE, such \
                as a GlusterFS mount; NFS, CephFS, SMB, GFS2 and OCFS2 show only this \
                host's) is judged from F_GETLK on QEMU's lock bytes, which the filesystem \
                answers from where its locks live; nothing is taken. On a GlusterFS FUSE \
                mount of a server node a brick statedump names every holder's host and pid.

                --host DEST (repeatable; . is this host) and --hosts FILE: after this \
                host's verdict, the image's holders on every host in view (one file on \
                shared storage), each blocker named with its host and a remedy there.

                Examples:
                  locksmith why vm1.qcow2
                  locksmith why /shared/vm1.qcow2 --host . --host h1 --host h2
                  locksmith why --read-only --json vm1.qcow2
                  locksmith why --force --lock-dir /var/tmp base.qcow2
                  locksmith why --force gluster://gl1/vmstore/vm1.qcow2
                """)

        @Argument(help: ArgumentHelp("The disk image.", valueName: "image"))
        var image: String

        @Flag var intent: IntentFlag = .write

        @Flag(help: "Prove instead of infer: test-acquire each lock through the core (taking and releasing it at once; no lock or file is left behind).")
        var force = false

        @Option(name: .customLong("lock-dir"), help: ArgumentHelp(
            "Directory of the lock files of the lockfile scheme (repeatable; default /var/tmp).", valueName: "dir"))
        var lockDirectories: [String] = []

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        @Flag(name: .customLong("no-statedump"), help: "Do not take a brick statedump to name the hosts of a Gluster image's holders.")
        var noStatedump = false

        @OptionGroup var gluster: GlusterOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        enum IntentFlag: String, EnumerableFlag {
            case write, readOnly

            static func name(for value: IntentFlag) -> NameSpecification {
                value == .write ? .customLong("write") : .customLong("read-only")
            }

            static func help(for value: IntentFlag) -> ArgumentHelp? {
                value == .write ? "Ask about a read-write open, like qemu-io (the default)."
                    : "Ask about a read-only look, like qemu-img info."
            }

            var intent: OpenIntent { self == .write ? .write : .readOnly }
        }

        func run() throws {
            let dirs = lockDirectories.isEmpty ? ["/var/tmp"] : lockDirectories
            let verdict = Why.diagnose(image, intent: intent.intent, lockDirectories: dirs, force: force,
                                       statedump: !noStatedump, timeout: gluster.timeout)
            var unseenHosts = false
            if cluster.isCluster {
                unseenHosts = try explainCluster(verdict, lockDirectories: dirs)
            } else if json {
                try JSONOutput.write(verdict)
            } else {
                for line in WhyText.lines(verdict) { say(line) }
            }
            if unseenHosts && verdict.outcome == .opens { throw Status.couldNotCheck }
            switch verdict.outcome {
            case .opens: return
            case .fails: throw Status.held
            case .unknown:
                complain(verdict.reasons.first { !$0.blocks }?.message ?? "could not tell")
                throw Status.couldNotCheck
            }
        }

        /// `--host`: the verdict for this host, then the image's holders on every host in
        /// view (one file on shared storage; a local file only on this host), each blocker
        /// named with its host and a remedy there. Returns whether a host was not seen.
        func explainCluster(_ verdict: Verdict, lockDirectories dirs: [String]) throws -> Bool {
            // Each host's `list` with this why's lock dirs and Gluster timeout.
            let scan = try ScanOptions.parse(dirs.flatMap { ["--lock-dir", $0] } + ["--timeout", "\(gluster.timeout)"]
                                             + glusterScanArguments(image: image))
            let storage = StorageIdentity.of(file: image)
            let view = try clusterSnapshot(cluster, scan: scan, audit: false)
            let local = view.hosts.first { $0.name == "." && $0.reached }?.label
            let path = URL(fileURLWithPath: image).resolvingSymlinksInPath().path
            let seen = ClusterWhy.holders(in: view.snapshot, storage: storage, path: path, localHost: local, intent: intent.intent)
            let ssh = Dictionary(view.hosts.map { ($0.label, $0.name) }, uniquingKeysWith: { a, _ in a })
            let failed = view.hosts.filter { !$0.reached }
            if json {
                var text = try JSONOutput.render(verdict, generated: Date())
                let cluster = ClusterWhyJSON(storage: storage, hosts: view.hosts.map(HostJSON.init),
                                             holders: seen.map { ClusterWhyJSON.Entry(host: $0.holder.host, pid: $0.holder.pid,
                                                                                      command: $0.holder.command, vm: $0.holder.vm,
                                                                                      scheme: $0.holder.scheme.rawValue,
                                                                                      mode: $0.holder.modeSummary, blocks: $0.blocks,
                                                                                      liveness: $0.holder.liveness) })
                let body = String(decoding: try JSONOutput.encoder().encode(cluster), as: UTF8.self)
                text.removeLast()
                print(text + ",\"cluster\":" + body + "}")
                return !failed.isEmpty
            }
            for line in WhyText.lines(verdict) { say(line) }
            let reached = view.hosts.filter(\.reached).map(\.label)
            say("  cluster: \(view.hosts.count) host\(view.hosts.count == 1 ? "" : "s") in view (\(ClusterText.line(reached.joined(separator: ", "))))"
                  + (failed.isEmpty ? "" : "; not seen: " + ClusterText.line(failed.map(\.name).joined(separator: ", ")))
                  + (storage.map { "; shared storage \($0)" } ?? "; a local file: only this host's holders count"))
            // Another host's names are its own (hostile) text: bounded here, escaped by say().
            for s in seen {
                var h = s.holder
                h.command = ClusterText.line(h.command)
                h.vm = h.vm.map(ClusterText.line)
                let host = ClusterText.line(h.host ?? "?")
                let dest = ClusterText.line(ssh[h.host ?? "?"] ?? host)
                if s.blocks {
                    say("  blocked by \(ClusterWhy.name(h)) on \(host) (\(h.scheme.rawValue), \(h.modeSummary))")
                    if let r = ClusterWhy.staleRemedy(h, image: image, storage: storage) {
                        say("          remedy: \(r)")
                        continue
                    }
                    say("          remedy: on \(host): " + (h.vm.map { "shut down VM \($0) or detach the disk" } ?? "stop \(h.command) (pid \(h.pid)) when it is done")
                          + (dest == "." ? "" : "; `ssh \(dest) locksmith why \(image)` there"))
                } else {
                    say("  also held by \(ClusterWhy.name(h)) on \(host) (\(h.scheme.rawValue), \(h.modeSummary)): does not block this open")
                }
            }
            if seen.isEmpty { say("  no holder on any host in view") }
            return !failed.isEmpty
        }

        /// The kernel's lock table, being read since the process started (`Locksmith.main`).
        nonisolated(unsafe) static var earlyTable: KernelTablePrefetch?

        /// The verdict for `image`, from the inspector in focus mode (only its chain and its
        /// lock files are looked at); with `force`, proven by test-acquiring through the core.
        static func diagnose(_ image: String, intent: OpenIntent, lockDirectories dirs: [String], force: Bool,
                             statedump: Bool = true, timeout: Double = GlusterOptions.defaultTimeout) -> Verdict {
            let cli = GlusterCLI(timeout: max(30, timeout))
            if GlusterURL.looksLikeURL(image) {
                let locker = ImageLocker(glusterTimeout: timeout)
                return GlusterWhy.verdict(GlusterWhy.gather(named: image, intent: intent, statedump: statedump, locker: locker, cli: cli))
            }
            // The kernel's lock table is read while the image's own facts are gathered.
            let table = earlyTable ?? Inspector.prefetchKernelTable()
            earlyTable = nil
            var input = WhyFacts.gather(named: image, intent: intent, lockDirectories: dirs)
            // Only what concerns this image: its chain members and its lock files.
            let members = input.chain.map(\.file).filter { $0.exists && $0.isDisk }
            if !members.isEmpty {
                var focus = members.map { InspectorFocus(image: $0.path, lockFiles: []) }
                focus[0].lockFiles = input.lockDirs.map(\.lockFile)
                var options = InspectorOptions(lockDirectories: dirs)
                options.focus = focus
                do {
                    input.images = try Inspector(options).snapshot(prefetched: table).images
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
                    input.images.removeAll { $0.id == local?.id }
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
}

/// `why --host --json`: the `cluster` object after the verdict's fields.
struct ClusterWhyJSON: Encodable {
    struct Entry: Encodable {
        var host: String?
        var pid: Int32
        var command: String
        var vm: String?
        var scheme: String
        var mode: String
        var blocks: Bool
        /// A Gluster holder checked on its host (`GlusterStaleness`): only then.
        var liveness: HolderLiveness?

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            if let l = liveness {
                try c.encode(l.word, forKey: .liveness)
                try c.encode(l.reason, forKey: .livenessReason)
            }
            try c.encode(host, forKey: .host)
            try c.encode(pid, forKey: .pid)
            try c.encode(command, forKey: .command)
            try c.encode(vm, forKey: .vm)
            try c.encode(scheme, forKey: .scheme)
            try c.encode(mode, forKey: .mode)
            try c.encode(blocks, forKey: .blocks)
        }

        enum CodingKeys: String, CodingKey { case host, pid, command, vm, scheme, mode, blocks, liveness, livenessReason = "liveness_reason" }
    }

    var storage: String?
    var hosts: [HostJSON]
    var holders: [Entry]

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(storage, forKey: .storage)
        try c.encode(hosts, forKey: .hosts)
        try c.encode(holders, forKey: .holders)
    }

    enum CodingKeys: String, CodingKey { case storage, hosts, holders }
}

/// `why`'s verdict as text lines: the command prints them, the TUI shows them.
enum WhyText {

    static func lines(_ v: Verdict) -> [String] {
        var out: [String] = []
        let how = v.intent == .write ? "read-write" : "read-only"
        switch v.outcome {
        case .opens:
            out.append("\(v.image): opens \(how)" + (v.proven ? " (proven)" : ""))
        case .fails:
            let n = v.blockers.count
            let by = n == 0 ? "" : " — blocked by " + (n == 1 ? name(v.blockers[0]) : "\(n) holders")
            out.append("\(v.image): won't open \(how)\(by)")
        case .unknown:
            out.append("\(v.image): can't tell whether it opens \(how)")
        }
        if let m = v.qemuMessage {
            out.append("  QEMU says: \(m)")
            if let h = v.qemuHint { out.append("             \(h)") }
        }
        for r in v.reasons {
            out.append("  \(r.blocks ? "reason" : "unknown"): \(r.message)")
            out.append("          remedy: \(r.remedy)")
        }
        for b in v.blockers {
            out.append("  blocker: \(describe(b))")
            out.append("           remedy: \(b.remedy)")
        }
        for w in v.waiters {
            let who = w.pid.map { "pid \($0) (\(w.command ?? "?"))" } ?? "an OFD lock request (pid not shown by the kernel)"
            let since = w.started.map { ", running since \(stamp($0))" } ?? ""
            out.append("  waiting: \(who) queued for a \(w.lockType?.lowercased() ?? "") lock on \(w.waitsOn)\(since)")
        }
        if v.chain.count > 1 {
            out.append("  chain:")
            for (i, c) in v.chain.enumerated() {
                var line = "    \(String(repeating: "  ", count: i))\(i == 0 ? "" : "└ ")\(c.path) (\(c.exists ? c.format : "missing"))"
                if !c.opened { line += " [not opened by this open]" }
                let hs = c.holders.map { h in
                    "\(h.lock) by pid \(h.pid) (\(h.vm.map { "VM \($0)" } ?? h.command))" + (h.via.map { " via \($0)" } ?? "")
                }
                if !hs.isEmpty { line += " — held " + hs.joined(separator: ", ") }
                if let p = c.problem { line += " — \(p)" }
                out.append(line)
            }
        }
        for f in v.facts {
            out.append("  \(f.proven ? "proven" : "inferred"): \(f.statement)")
        }
        return out
    }

    private static func name(_ b: Blocker) -> String {
        guard let pid = b.pid else { return "an unseen holder" }
        if let vm = b.vm { return "VM \(vm) (pid \(pid))" }
        if b.command == nil && (b.scheme == .gluster || b.host != nil) { return "pid \(pid)" + (b.host.map { " on host \($0)" } ?? "") }
        return "\(b.command ?? "?") (pid \(pid))" + (b.host.map { " on host \($0)" } ?? "")
    }

    private static func describe(_ b: Blocker) -> String {
        var parts: [String] = []
        if let pid = b.pid {
            parts.append("pid \(pid)" + (b.command.map { " \($0)" } ?? (b.scheme == .gluster || b.host != nil ? "" : " ?"))
                         + (b.host.map { " on host \($0)" } ?? ""))
            if let vm = b.vm { parts.append("VM \(vm)") }
            if let u = b.user { parts.append("user \(u)") }
            if let s = b.started { parts.append("since \(stamp(s))") }
            if let m = b.openMode { parts.append("open \(m.rawValue)" + (b.fd.map { " (fd \($0))" } ?? "")) }
        } else {
            parts.append("holder not visible")
        }
        parts.append("\(b.scheme.rawValue) scheme, holds \(b.lock) on \(b.holds)" + (b.via.map { " via overlay \($0)" } ?? ""))
        let what = b.scheme == .qemu ? "conflicting permissions" : "conflicting lock"
        parts.append("\(what): \(b.conflict.joined(separator: ", "))")
        if b.proven { parts.append("proven") }
        return parts.joined(separator: "; ")
    }

    private static func stamp(_ d: Date) -> String {
        d.formatted(.iso8601)
    }
}
