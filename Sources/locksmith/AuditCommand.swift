import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector

/// Where `audit` and `watch` look (as `list`), and the blocked-waiter threshold.
struct AuditScanOptions: ParsableArguments {
    @OptionGroup var scan: ScanOptions

    @Option(name: .customLong("wait-threshold"), help: ArgumentHelp(
        "blocked-waiter: report processes blocked on a lock for at least this many seconds.", valueName: "secs"))
    var waitThreshold: Double = 30

    func validate() throws {
        guard waitThreshold >= 0 && waitThreshold.isFinite else {
            throw ValidationError("--wait-threshold takes a number of seconds >= 0")
        }
    }

    var inspector: InspectorOptions { scan.inspectorOptions }

    /// A snapshot with its findings; exit 2 when /proc cannot be read. `prefetched`: the
    /// kernel's lock table read since before main (`audit`'s one scan).
    func snapshot(prefetched: KernelTablePrefetch? = nil) throws -> AuditedSnapshot {
        do {
            return try Auditor.snapshot(inspector, waitThreshold: waitThreshold, prefetched: prefetched)
        } catch let e as InspectorError {
            complain(e.description)
            throw ExitStatus.couldNotCheck
        }
    }
}

extension Severity: ExpressibleByArgument {}

extension Locksmith {
    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "audit",
            abstract: "Find the hazards image locks were meant to prevent.",
            usage: "locksmith audit [--json] [--fail-on <severity>] [--fix] [--wait-threshold <secs>] " + ScanOptions.usage
                + " " + ClusterOptions.usage,
            discussion: """
                Locks protect images only when every user takes them. One snapshot of the \
                host (as `list` takes it) is checked against these rules:

                  unlocked-writer (critical)
                      an image open for writing by a process that holds no lock on it
                  concurrent-writers (critical)
                      two or more processes have one image open for writing
                  unsafe-lock-file (critical or warning)
                      critical: a symlink, FIFO or other non-regular entry in a lock
                      dir, or a world-writable lock dir without the sticky bit;
                      warning: a hard-linked, world-writable or foreign-owned lock file
                  unwritable-lock-file (warning)
                      the image's owner cannot open its lock file for writing
                  foreign-holder (warning)
                      a lock held by a user who cannot read the image
                  local-lock-on-shared-storage (warning)
                      a lock file in a local dir for an image on NFS, FUSE (Gluster),
                      Ceph, SMB, GFS2 or OCFS2: other hosts cannot see it
                  blocked-waiter (warning)
                      a process blocked on an image lock for --wait-threshold seconds
                  stale-lock-file (info)
                      a lock file nobody holds
                  unmapped-lock-file (info)
                      a lock file whose image cannot be found

                With --host/--hosts, every host's findings (each named by its host) and two \
                cross-host rules that no single host can see:

                  split-lock (critical)
                      two hosts each hold one shared image's lock file exclusively,
                      each in its own local lock dir (each believes it is alone)
                  cross-host-writers (critical)
                      one shared image open for writing on two hosts, unless every
                      writer shares write (share-rw=on)

                Each finding names the image, the processes and files involved, what was seen \
                and a one-line remedy. --fix removes stale lock files only, each one safely (an \
                exclusive lock on it first; a held file is never removed), and nothing else.

                Exit status: 1 when a finding at or above --fail-on (default critical) remains, \
                0 otherwise, 2 when /proc cannot be read.

                Examples:
                  locksmith audit
                  locksmith audit --fail-on warning --images /var/lib/libvirt/images
                  locksmith audit --fix --lock-dir /var/tmp
                """)

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        @Option(name: .customLong("fail-on"), help: ArgumentHelp(
            "Exit 1 when a finding of this severity or worse is found: info, warning or critical.", valueName: "severity"))
        var failOn: Severity = .critical

        @Flag(help: "Remove stale lock files (safely: never a held one), and nothing else.")
        var fix = false

        /// The kernel's lock table, read since before main (`Locksmith.main`).
        nonisolated(unsafe) static var earlyTable: KernelTablePrefetch?

        @OptionGroup var scan: AuditScanOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        func validate() throws {
            if fix && cluster.isCluster { throw ValidationError("--fix works on this host only; run it on each host") }
        }

        func run() throws {
            var hosts: [ClusterHost]?
            let audited: AuditedSnapshot
            if cluster.isCluster {
                let view = try cluster.view(scan: scan.scan.request, audit: true, waitThreshold: scan.waitThreshold)
                (audited, hosts) = (view.audited, view.hosts)
            } else {
                audited = try scan.snapshot(prefetched: Audit.earlyTable)
                Audit.earlyTable = nil
            }
            let snapshot = audited.snapshot
            keptUntilExit = audited  // not freed at exit (10k images and findings)
            var fixes: [StaleFix] = []
            if fix {
                fixes = Auditor.fixStale(audited.findings, lockFiles: snapshot.lockFiles, policy: LockDirOption.flavorPolicy)
            }
            let remaining = Auditor.remaining(audited.findings, after: fixes)
            if json {
                ReportJSON.audit(audited, failOn: failOn, fixes: fix ? fixes : nil, hosts: hosts, host: JSONOutput.host,
                                 sink: writeStandardOutput)
                writeStandardOutput([UInt8(ascii: "\n")])
            } else {
                print(AuditText.render(audited.findings, fixes: fixes), terminator: "")
                if !snapshot.unseen.isEmpty {
                    complain("note: \(snapshot.unseen.count) thing(s) could not be looked at"
                             + (geteuid() == 0 ? "" : " (run as root to see every process)")
                             + "; `locksmith audit --json` lists them under \"unseen\"")
                }
            }
            if hosts?.contains(where: { !$0.reached }) == true { throw ExitStatus.couldNotCheck }
            if remaining.contains(where: { $0.severity >= failOn }) { throw ExitStatus.held }
        }
    }
}
