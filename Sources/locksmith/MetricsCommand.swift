import ArgumentParser
import FoundationEssentials
import ImageLock
import LockInspector

extension Locksmith {
    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "metrics",
            abstract: "Print the host's image locks and audit findings as Prometheus metrics.",
            usage: "locksmith metrics [--output <file>] [--wait-threshold <secs>] " + ScanOptions.usage + " "
                + ClusterOptions.usage,
            discussion: """
                One snapshot and audit (as `audit` takes them), written in Prometheus' text \
                format for node_exporter's textfile collector. With --output FILE the text goes \
                to FILE.tmp first and is renamed over FILE, so the collector never reads half a \
                file; point FILE into the collector's directory (Debian's: \
                /var/lib/prometheus/node-exporter) with a .prom suffix. The shipped \
                locksmith-metrics.timer does that every 30 s.

                Series (every one labelled host=):
                  locksmith_image_lock_info{image,scheme,mode,pid,command,vm,user} 1
                  locksmith_image_lock_held_seconds{same labels}: since the holder started
                  locksmith_blocked_waiters{image}
                  locksmith_blocked_longest_wait_seconds{image}
                  locksmith_audit_findings{rule,severity}: every rule and severity, 0 too
                  locksmith_lock_files{state="unsafe|held|unmapped|free"}
                  locksmith_unseen{what}
                  locksmith_hosts_unreachable
                  locksmith_scan_duration_seconds

                With --host/--hosts (a cluster view, see `locksmith list --help`) every host's \
                series, each with its host; a host that does not answer is named on stderr and \
                counted in locksmith_hosts_unreachable, the rest is still written.

                Exit status: 0 written; 2 when /proc cannot be read or FILE cannot be written \
                (FILE is then left as it was), or after writing when a host did not answer.

                Examples:
                  locksmith metrics
                  locksmith metrics --output /var/lib/prometheus/node-exporter/locksmith.prom
                """)

        @Option(help: ArgumentHelp(
            "Write to this file (through FILE.tmp and a rename) instead of standard output.", valueName: "file"))
        var output: String?

        @OptionGroup var scan: AuditScanOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        func run() throws {
            let clock = ContinuousClock()
            let start = clock.now
            let audited: AuditedSnapshot
            var context: LockInspector.Metrics.Context
            if cluster.isCluster {
                // Every host's snapshot and findings; a host that did not answer is counted
                // (locksmith_hosts_unreachable) and does not stop the rest being written.
                let view = try cluster.view(scan: scan.scan.request, audit: true, waitThreshold: scan.waitThreshold, quiet: true)
                audited = view.audited
                context = .init(scanSeconds: 0, unreachableHosts: view.hosts.filter { !$0.reached }.count,
                                now: view.snapshot.generated, hosts: view.hosts.filter(\.reached).map(\.label))
                for h in view.hosts where !h.reached { complain("host \(ClusterText.line(h.name)): \(h.error ?? "not seen")") }
            } else {
                let taken: (audited: AuditedSnapshot, facts: AuditFacts)
                do {
                    taken = try Auditor.audited(scan.inspector, waitThreshold: scan.waitThreshold)
                } catch let e as InspectorError {
                    complain(e.description)
                    throw ExitStatus.couldNotCheck
                }
                audited = taken.audited
                context = .init(scanSeconds: 0, waitedSeconds: taken.facts.processes.compactMapValues(\.waitedSeconds),
                                now: audited.snapshot.generated)
            }
            let took = clock.now - start
            context.scanSeconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
            let text = LockInspector.Metrics.render(audited, context)
            keptUntilExit = audited
            if let output {
                try reportingErrors { try FileReplacement.replace(output, with: Array(text.utf8)) }
            } else {
                writeStandardOutput(Array(text.utf8))
            }
            // As every cluster view: everything is written, then exit 2 when a host was not seen.
            if context.unreachableHosts > 0 { throw ExitStatus.couldNotCheck }
        }
    }
}
