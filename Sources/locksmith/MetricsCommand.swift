import ArgumentParser
import Foundation
import ImageLock
import LockInspector

extension Locksmith {
    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "metrics",
            abstract: "Print the host's image locks and audit findings as Prometheus metrics.",
            discussion: """
                One snapshot and audit (as `audit` takes them), written in Prometheus' text \
                format for node_exporter's textfile collector. With --output FILE the text goes \
                to FILE.tmp first and is renamed over FILE, so the collector never reads half a \
                file; point FILE into the collector's directory (Debian's: \
                /var/lib/prometheus/node-exporter) with a .prom suffix. The shipped \
                locksmith-metrics.timer does that every 30 s.

                Series (every one labelled host=):
                  locksmith_image_lock_info{image,scheme,mode,pid,command,vm,user} 1
                  locksmith_image_lock_held_seconds{same labels}   since the holder started
                  locksmith_blocked_waiters{image}, locksmith_blocked_longest_wait_seconds{image}
                  locksmith_audit_findings{rule,severity}         every rule and severity, 0 too
                  locksmith_lock_files{state="unsafe|held|unmapped|free"}
                  locksmith_unseen{what}, locksmith_hosts_unreachable, locksmith_scan_duration_seconds

                Exit status: 0 written; 2 when /proc cannot be read or FILE cannot be written \
                (FILE is then left as it was).

                Examples:
                  locksmith metrics
                  locksmith metrics --output /var/lib/prometheus/node-exporter/locksmith.prom
                """)

        @Option(help: ArgumentHelp(
            "Write to this file (through FILE.tmp and a rename) instead of standard output.", valueName: "file"))
        var output: String?

        @OptionGroup var scan: AuditScanOptions

        func run() throws {
            let clock = ContinuousClock()
            let start = clock.now
            let audited: (snapshot: Snapshot, facts: AuditFacts)
            do {
                audited = try Auditor.audited(scan.inspector, waitThreshold: scan.waitThreshold)
            } catch let e as InspectorError {
                complain(e.description)
                throw Status.couldNotCheck
            }
            let took = clock.now - start
            let seconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
            let text = LockInspector.Metrics.render(audited.snapshot, .init(
                scanSeconds: seconds,
                waitedSeconds: audited.facts.processes.compactMapValues(\.waitedSeconds),
                now: audited.snapshot.generated))
            keptUntilExit = audited.snapshot
            guard let output else {
                writeStandardOutput(Array(text.utf8))
                return
            }
            try reportingErrors { try FileReplacement.replace(output, with: Array(text.utf8)) }
        }
    }
}
