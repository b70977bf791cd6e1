import ArgumentParser
import FoundationEssentials
import ImageLock
import LockInspector

extension Locksmith {
    struct Why: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
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
            let verdict = ImageWhy.diagnose(image, intent: intent.intent, lockDirectories: dirs, force: force,
                                            statedump: !noStatedump, timeout: gluster.timeout, openFiles: Why.earlyOpenFiles)
            Why.earlyOpenFiles = nil
            var unseenHosts = false
            if cluster.isCluster {
                unseenHosts = try explainCluster(verdict, lockDirectories: dirs)
            } else if json {
                JSONOutput.write(VerdictJSON.render(verdict, host: JSONOutput.host, generated: Date()))
            } else {
                for line in WhyText.lines(verdict) { say(line) }
            }
            if unseenHosts && verdict.outcome == .opens { throw ExitStatus.couldNotCheck }
            switch verdict.outcome {
            case .opens: return
            case .fails: throw ExitStatus.held
            case .unknown:
                complain(verdict.reasons.first { !$0.blocks }?.message ?? "could not tell")
                throw ExitStatus.couldNotCheck
            }
        }

        /// Every process's fds, being read since the process started (`Locksmith.main`).
        nonisolated(unsafe) static var earlyOpenFiles: OpenFilesPrefetch?

        /// `--host`: the verdict for this host, then the image's holders on every host in
        /// view (one file on shared storage; a local file only on this host), each blocker
        /// named with its host and a remedy there. Returns whether a host was not seen.
        func explainCluster(_ verdict: Verdict, lockDirectories dirs: [String]) throws -> Bool {
            // Each host's `list` with this why's lock dirs and Gluster timeout.
            let storage = StorageIdentity.of(file: image)
            let view = try cluster.view(scan: .why(image: image, lockDirectories: dirs, timeout: gluster.timeout), audit: false)
            let local = view.hosts.first { $0.name == "." && $0.reached }?.label
            let path = URL(fileURLWithPath: image).resolvingSymlinksInPath().path
            let seen = ClusterWhy.holders(in: view.snapshot, storage: storage, path: path, localHost: local, intent: intent.intent)
            let failed = view.hosts.filter { !$0.reached }
            if json {
                JSONOutput.write(VerdictJSON.render(verdict, host: JSONOutput.host, generated: Date(),
                                                    cluster: .init(storage: storage, hosts: view.hosts, holders: seen)))
                return !failed.isEmpty
            }
            for line in WhyText.lines(verdict) { say(line) }
            for line in WhyText.clusterLines(image: image, hosts: view.hosts, seen: seen, storage: storage) { say(line) }
            return !failed.isEmpty
        }
    }
}
