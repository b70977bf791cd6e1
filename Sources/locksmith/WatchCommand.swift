import ArgumentParser
import FoundationEssentials
import ImageLock
import LockInspector
#if canImport(Glibc)
import Glibc
#endif

extension Locksmith {
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "watch",
            abstract: "Print one line per lock change, as it happens (an audit trail).",
            usage: "locksmith watch [--json] [--interval <secs>] [--count <n>] [--max-events <n>] "
                + "[--findings <severity>] [--wait-threshold <secs>] " + ScanOptions.usage + " " + ClusterOptions.usage,
            discussion: """
                Takes a snapshot every --interval seconds and prints what changed since the \
                previous one, one line per change, each with its time: lock-acquired, \
                lock-released, holder-changed (same process and scheme, another lock type or other \
                QEMU permissions), waiter-blocked, waiter-unblocked, finding-raised and \
                finding-cleared (audit findings of --findings severity or worse). The state \
                at start is not printed. A change that begins and ends between two snapshots \
                is not seen.

                With --json each line is one JSON object (JSON Lines, for appending to a log): \
                schema, host, generated (the snapshot's time), event, image, image_id, holder, \
                previous, finding.

                --host DEST (repeatable; . is this host) and --hosts FILE watch a cluster: \
                each snapshot is every host's (as `audit --host` takes them), one stream \
                with the host of every holder and finding ("on h1" in text). A host that \
                fails is one line on stderr each time and does not stop the stream.

                SIGINT, SIGTERM and SIGHUP end it cleanly after the line being written; exit 0.

                Examples:
                  locksmith watch
                  locksmith watch --json --interval 1 >> /var/log/locksmith.jsonl
                """)

        @Flag(help: "Write JSON Lines instead of text.")
        var json = false

        @Option(help: ArgumentHelp("Seconds between snapshots.", valueName: "secs"))
        var interval: Double = 2

        @Option(help: ArgumentHelp("Stop after this many snapshots (the first included).", valueName: "n"))
        var count: Int?

        @Option(name: .customLong("max-events"), help: ArgumentHelp(
            "Stop after writing this many events.", valueName: "n"))
        var maxEvents: Int?

        @Option(help: ArgumentHelp(
            "Report findings of this severity or worse (info, warning, critical), or none.", valueName: "severity"))
        var findings: String = "warning"

        @OptionGroup var scan: AuditScanOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        /// One snapshot of this host, or with --host of every host in view (with findings);
        /// nil when a host was not seen (its holders would seem to go, and come back).
        func snapshot() throws -> AuditedSnapshot? {
            guard cluster.isCluster else { return try scan.snapshot() }
            let view = try cluster.view(scan: scan.scan.request, audit: true, waitThreshold: scan.waitThreshold)
            return view.hostFailed ? nil : view.audited
        }

        /// Waits --interval seconds for an ending signal; true when one came.
        func sleepOrEnd(_ signals: SignalGate) -> Bool {
            signals.next(waiting: interval) != nil
        }

        func validate() throws {
            guard interval > 0 && interval.isFinite else { throw ValidationError("--interval takes a number of seconds > 0") }
            if let c = count, c < 1 { throw ValidationError("--count takes a number >= 1") }
            if let m = maxEvents, m < 1 { throw ValidationError("--max-events takes a number >= 1") }
            guard findings == "none" || Severity(rawValue: findings) != nil else {
                throw ValidationError("--findings takes info, warning, critical or none")
            }
        }

        func run() throws {
            // Block the ending signals before any thread starts (a snapshot reads /proc/locks
            // on a second thread, which inherits the mask); sigtimedwait is the interval timer.
            let signals = SignalGate(signals: [SIGINT, SIGTERM, SIGHUP])
            defer { signals.restore() }

            let minimum = Severity(rawValue: findings)
            var first = try snapshot()
            // A cluster view starts once every host has answered (bounded by --count).
            var snapshots = 1
            while first == nil && count.map({ snapshots < $0 }) ?? true {
                if sleepOrEnd(signals) { return }
                first = try snapshot()
                snapshots += 1
            }
            guard let first else { throw ExitStatus.couldNotCheck }
            var watch = SnapshotWatch(first, minimumSeverity: minimum)
            var written = 0
            if !json {
                complain("watching every \(interval) s: \(first.snapshot.holderCount) holder(s), \(first.snapshot.waiterCount) waiter(s) now")
            }
            while count.map({ snapshots < $0 }) ?? true {
                if sleepOrEnd(signals) { break }  // SIGINT, SIGTERM or SIGHUP: end cleanly
                snapshots += 1
                guard let taken = try snapshot() else { continue }  // a host not seen: no events this time
                for e in watch.advance(to: taken) {
                    let line = json ? ReportJSON.watchEvent(e, host: JSONOutput.host) : Array(WatchText.line(e).utf8)
                    writeStandardOutput(line + [UInt8(ascii: "\n")])  // one write(2) per line
                    written += 1
                    if let m = maxEvents, written >= m { return }
                }
            }
        }
    }
}
