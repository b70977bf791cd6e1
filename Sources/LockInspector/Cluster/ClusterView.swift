import FoundationEssentials
import ImageLock

/// The cluster view of a scan (`--host`/`--hosts` of `list`, `audit`, `watch`, `metrics`,
/// `why` and the TUI): every host asked for its `list --json` (`ClusterScan.ask`; this
/// host, `.`, scanned here), the answers merged into one snapshot (`ClusterMerge`), with
/// the cross-host findings when audited (`ClusterRules`), and the Gluster holders a brick
/// statedump named checked on their own hosts (`GlusterStaleness`). The snapshot is built
/// here once; the caller prints the progress and the hosts that failed.
public struct ClusterView: Sendable {
    /// How the hosts are asked (destinations, ssh, remote command, parallelism, timeout).
    public var query: ClusterQuery
    /// Where each host's scan looks (forwarded to every host's `list`).
    public var scan: ScanRequest
    /// This locksmith's version: what `.` reports in `hosts`.
    public var version: String

    public init(query: ClusterQuery, scan: ScanRequest, version: String) {
        self.query = query
        self.scan = scan
        self.version = version
    }

    /// What a cluster view saw: the merged snapshot with its findings, and every host asked.
    public struct Outcome: Sendable {
        public let audited: AuditedSnapshot
        public let hosts: [ClusterHost]
        public var snapshot: Snapshot { audited.snapshot }
        /// Whether a host was not seen (the caller's exit status 2).
        public var hostFailed: Bool { hosts.contains { !$0.reached } }
    }

    /// Asks every host, `progress(done, total)` after each. With `audit`, each host audits
    /// itself (`list --audit`, blocked-waiter at `waitThreshold`) and the cross-host
    /// findings join theirs. With `unreachedAsUnseen` (the TUI), each host not seen is an
    /// `unseen` entry of the snapshot.
    public func take(audit: Bool, waitThreshold: Double = 30, unreachedAsUnseen: Bool = false,
                     progress: (@Sendable (Int, Int) -> Void)? = nil) -> Outcome {
        let options = scan.inspectorOptions(statedumpByDefault: !audit)
        var q = query
        q.remoteArguments = scan.forwarded + (audit ? ["--audit", "--wait-threshold", "\(waitThreshold)"] : [])
        var answers = ClusterScan.ask(q, local: {
            Result {
                var o = options
                o.namesStorage = true
                return audit ? try Auditor.snapshot(o, waitThreshold: waitThreshold) : AuditedSnapshot(try Inspector(o).snapshot())
            }
        }, progress: progress)
        for i in answers.hosts.indices where answers.hosts[i].name == "." && answers.hosts[i].reached {
            answers.hosts[i].version = version  // this very binary
        }
        let merged = ClusterMerge.merge(answers, host: Sys.hostName)
        var snapshot = merged.snapshot
        let findings = audit ? AuditRules.sorted(merged.findings + ClusterRules.all(snapshot)) : merged.findings
        checkGlusterHolders(&snapshot, hosts: answers.hosts)
        if unreachedAsUnseen {
            for h in answers.hosts where !h.reached {
                snapshot.unseen.append(Unseen(what: "host \(ClusterText.line(h.name))", why: h.error ?? "not seen"))
            }
        }
        return Outcome(audited: AuditedSnapshot(snapshot, findings: findings), hosts: answers.hosts)
    }

    /// The Gluster holders of `snapshot` (named by a brick statedump) marked live, proven
    /// stale or possibly stale (`GlusterStaleness`), from the process tables of their hosts,
    /// asked as the view was (`processes --json`).
    func checkGlusterHolders(_ snapshot: inout Snapshot, hosts: [ClusterHost]) {
        var locks: [GlusterLockFact] = []
        for img in snapshot.images {
            guard let v = GlusterStaleness.volume(of: img) else { continue }
            locks += img.holders.map { GlusterLockFact(volume: v, host: $0.host, pid: $0.pid > 0 ? $0.pid : nil) }  // the pids to ask
        }
        guard !locks.isEmpty else { return }
        let tables = ClusterScan.processTables(query, view: hosts, pids: GlusterStaleness.pidsToAsk(locks))
        GlusterStaleness.annotate(&snapshot, tables: tables)
    }
}

/// The destinations of the hosts a cluster view last labelled (`ClusterHost.label` → `name`),
/// for acting on a row's host afterwards (the TUI's K).
public final class HostDirectory: @unchecked Sendable {
    private let lock = Lock()
    private var byLabel: [String: String] = [:]

    public init() {}

    public func update(_ hosts: [ClusterHost]) {
        lock.lock()
        defer { lock.unlock() }
        for h in hosts where h.reached { byLabel[h.label] = h.name }
    }

    public func destination(_ label: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return byLabel[label]
    }
}
