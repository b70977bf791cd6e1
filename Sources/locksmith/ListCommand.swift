import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector

extension Locksmith {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "list",
            abstract: "List every image lock on this host, grouped by image, with the exact holders.",
            usage: "locksmith list [--json] [-o <columns>] [--list-columns] [--no-headings] [--audit] [--wait-threshold <secs>] "
                + ScanOptions.usage + " " + ClusterOptions.usage,
            discussion: """
                One pass over /proc/locks, every process's open files (/proc/PID/fd and \
                fdinfo), the lock dirs and the candidate images. Each holder is named by \
                pid and fd, also for OFD locks (which /proc/locks shows with pid -1): two \
                processes holding the same read locks are two holders. Schemes: lockfile \
                (.qemu-<sha1>.lock in the lock dirs, held or stale), qemu (QEMU's byte \
                locks 100-104/200-204 inside the image, decoded into permissions held and \
                not shared), virtlockd (byte 0 of the image, or lease files).

                A lock file's image is found by hashing candidate paths (files open by any \
                process, --images dirs, libvirt domain XML, file= in QEMU's arguments), \
                else from the realpath written inside it, trusted only if its SHA-1 matches \
                the name. An image that cannot be found is shown as <unknown> with its lock file.

                A file open on a filesystem whose locks /proc/locks does not show (FUSE, such \
                as a GlusterFS mount; NFS, CephFS, SMB, GFS2, OCFS2 show only this host's) \
                is asked with F_GETLK on QEMU's lock bytes (nothing is taken): a lock whose \
                pid is a process with the file open is listed as that process's; on a \
                GlusterFS FUSE mount of a server node, a brick statedump adds the other \
                hosts' holders, with their host (--no-statedump skips it).

                What could not be looked at (another user's processes when not root, an \
                unreadable lock dir) is counted on stderr and listed under "unseen" in JSON. \
                Exit status: 0, also when nothing is locked; 2 when /proc cannot be read.

                --gluster HOST[:PORT]/VOLUME (repeatable) also walks the volume through \
                libgfapi (from --gluster-path, 8 levels deep) and probes each image file \
                (every regular file with --all-files) with F_GETLK: a locked one is listed \
                as gluster://HOST/VOLUME/PATH with its holder's pid. On a server node one \
                brick statedump per volume names every holder with its host \
                (--no-statedump skips it). \
                A volume that cannot be scanned at all is one line on stderr and exit 2, \
                after the rest is printed; --timeout bounds each step.

                --host DEST (repeatable; . is this host) and --hosts FILE make a cluster \
                view: each host runs `locksmith list --json` with these options over ssh \
                (--ssh, --remote-command, --parallel, --host-timeout); the answers are \
                merged, an image on shared storage is one image with every host's holders, \
                and HOST joins the table. A host that fails is one line on stderr and exit 2.

                Examples:
                  locksmith list
                  locksmith list --hosts /etc/locksmith/hosts
                  locksmith list -o +fd,open,held,unshared,lockfile
                  locksmith list --json --lock-dir /var/tmp --images /var/lib/libvirt/images
                  locksmith list --gluster gl1/vmstore --gluster-path /vms
                """)

        @OptionGroup var out: ListOutputOptions

        @OptionGroup var scan: ScanOptions

        @Flag(help: ArgumentHelp(
            "With --json: also audit's findings and the writers they rest on (what `audit --host` asks each host for)."))
        var audit = false

        @Option(name: .customLong("wait-threshold"), help: ArgumentHelp(
            "With --audit: blocked-waiter's threshold, as audit's.", valueName: "secs"))
        var waitThreshold: Double = 30

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        @Flag(help: .hidden)
        var timing = false

        func validate() throws {
            if audit && !out.json { throw ValidationError("--audit needs --json") }
            if audit && cluster.isCluster { throw ValidationError("--audit is what each host is asked; use `locksmith audit --host`") }
            guard waitThreshold >= 0 && waitThreshold.isFinite else { throw ValidationError("--wait-threshold takes a number of seconds >= 0") }
        }

        var options: InspectorOptions { scan.inspectorOptions(statedumpByDefault: true) }

        /// The kernel's lock table, being read since the process started (`Locksmith.main`).
        nonisolated(unsafe) static var earlyTable: KernelTablePrefetch?

        func run() throws {
            if out.listColumns {
                for c in Column.allCases {
                    print((c.header + String(repeating: " ", count: 10)).prefix(10) + c.help)
                }
                return
            }
            if cluster.isCluster { return try runCluster() }
            let audited: AuditedSnapshot
            var scanCounts = SnapshotTimings()
            do {
                var t = SnapshotTimings()
                var o = options
                o.namesStorage = out.json
                audited = audit ? try Auditor.snapshot(o, waitThreshold: waitThreshold, prefetched: List.earlyTable, timings: &t)
                    : AuditedSnapshot(try Inspector(o).snapshot(timings: &t, prefetched: List.earlyTable))
                scanCounts = t
                List.earlyTable = nil
                if timing {
                    func ms(_ s: Double) -> String { Sys.format("%.1f ms", s * 1000) }
                    complain("timing: total \(ms(t.total)) = /proc/locks \(ms(t.kernelLocks))\(t.kernelLocksReadEarly ? " (read from before main)" : ""), lock dirs \(ms(t.lockDirectories)), "
                             + "processes \(ms(t.processes)), mapping \(ms(t.mapping)); \(t.fds) fds, "
                             + "\(t.fdinfoReads) fdinfo reads, \(t.contentReads) lock-file reads")
                }
            } catch let e as InspectorError {
                complain(e.description)
                throw ExitStatus.couldNotCheck
            }
            let snapshot = audited.snapshot
            keptUntilExit = audited
            if out.json {
                SnapshotJSON.render(snapshot, host: JSONOutput.host,
                                    extras: .init(version: LocksmithVersion.current, findings: audit ? audited.findings : nil),
                                    sink: writeStandardOutput)
                writeStandardOutput([UInt8(ascii: "\n")])
                try failIfGlusterVolumesUnscanned(snapshot)  // gluster hook: exit 2
                return
            }
            let rows = LockRow.rows(of: snapshot)
            if rows.isEmpty && !out.noHeadings && isatty(STDOUT_FILENO) == 1 {
                // A bare header reads as "broken" on a terminal; a script (--no-headings,
                // a pipe, --json) gets nothing but the empty table.
                print(ListText.nothingFound(lockDirectories: options.lockDirectories.count,
                                            processes: scanCounts.processCount))
            } else {
                let columns = try (out.output ?? ListOutputOptions.columnsFromEnvironment).map { try Column.parse($0).get() }
                    ?? Column.defaults(for: rows)
                writeStandardOutput(Table.render(rows, columns: columns, headings: !out.noHeadings))
            }
            try failIfGlusterVolumesUnscanned(snapshot)  // gluster hook: exit 2
            if !snapshot.unseen.isEmpty {
                complain("note: \(snapshot.unseen.count) thing(s) could not be looked at"
                         + (geteuid() == 0 ? "" : " (run as root to see every holder)")
                         + "; `locksmith list --json` lists them under \"unseen\"")
            }
        }

        /// `--host`/`--hosts`: every host's `list --json`, merged; exit 2 after printing
        /// everything when a host was not seen.
        func runCluster() throws {
            let view = try cluster.view(scan: scan.request, audit: false)
            let (snapshot, hosts) = (view.snapshot, view.hosts)
            keptUntilExit = view.audited
            if out.json {
                SnapshotJSON.render(snapshot, host: JSONOutput.host,
                                    extras: .init(version: LocksmithVersion.current, hosts: hosts), sink: writeStandardOutput)
                writeStandardOutput([UInt8(ascii: "\n")])
            } else {
                let rows = LockRow.rows(of: snapshot)
                let columns = try (out.output ?? ListOutputOptions.columnsFromEnvironment).map { try Column.parse($0).get() }
                    ?? Column.defaults(for: rows, hostsInView: hosts.count)
                writeStandardOutput(Table.render(rows, columns: columns, headings: !out.noHeadings))
            }
            if view.hostFailed { throw ExitStatus.couldNotCheck }
        }
    }
}

/// How `list` (and plain `locksmith` off a terminal) prints: shared by both.
struct ListOutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(name: .short, help: ArgumentHelp(
        "Columns to show, comma-separated; a leading + adds them to the defaults (see --list-columns). Default: $LOCKSMITH_COLUMNS, else the defaults.",
        valueName: "columns"))
    var output: String?

    @Flag(help: "List the columns -o accepts, and exit.")
    var listColumns = false

    @Flag(name: .customLong("no-headings"), help: "Leave out the header line.")
    var noHeadings = false

    /// Whether any of these was given (plain `locksmith` then lists, also on a terminal).
    var given: Bool { json || output != nil || listColumns || noHeadings }

    func validate() throws {
        if let o = output, case .failure(let e) = Column.parse(o) { throw ValidationError(e.description) }
        if output == nil, let env = ListOutputOptions.columnsFromEnvironment, case .failure(let e) = Column.parse(env) {
            throw ValidationError("LOCKSMITH_COLUMNS: \(e.description)")
        }
    }

    /// LOCKSMITH_COLUMNS: the columns when -o is not given (as lslocks' LSLOCKS_COLUMNS);
    /// the same syntax as -o. Empty or unset: the defaults.
    static var columnsFromEnvironment: String? {
        guard let v = ProcessInfo.processInfo.environment["LOCKSMITH_COLUMNS"], !v.isEmpty else { return nil }
        return v
    }
}
