import FoundationEssentials
import ImageLock

/// An audited snapshot as Prometheus text (exposition format 0.0.4), for node_exporter's
/// textfile collector: https://prometheus.io/docs/instrumenting/exposition_formats/
///
/// Pure: the caller scans and audits; this only renders. Cardinality is bounded by what is
/// locked, not by how it is locked: one `locksmith_image_lock_info` series per holder
/// (image, scheme, mode, process), never one per byte lock or fd. Label values come from
/// the same cells as `list`'s columns (`Column.cell`), so the table and the metrics agree.
public enum Metrics {
    /// Everything one rendering needs beyond the snapshot.
    public struct Context: Sendable {
        /// How long the scan and audit took.
        public var scanSeconds: Double
        /// Seconds each blocked waiter has waited, by pid (`AuditFacts.processes`), when known.
        public var waitedSeconds: [Int32: Double]
        /// Hosts asked that did not answer (a cluster view); 0 for this host alone.
        public var unreachableHosts: Int
        /// The time ages are measured against.
        public var now: Date
        /// The hosts in view, as the snapshot's entries name them (a cluster view); empty:
        /// the snapshot's own host alone. Each gets its findings and lock-file counts, 0 too.
        public var hosts: [String]

        public init(scanSeconds: Double, waitedSeconds: [Int32: Double] = [:], unreachableHosts: Int = 0,
                    now: Date = Date(), hosts: [String] = []) {
            self.scanSeconds = scanSeconds
            self.waitedSeconds = waitedSeconds
            self.unreachableHosts = unreachableHosts
            self.now = now
            self.hosts = hosts
        }
    }

    /// The states `locksmith_lock_files` counts; each lock file is in exactly one, the
    /// first that applies in this order.
    public enum LockFileState: String, CaseIterable, Sendable {
        /// Not a regular file, or named by an `unsafe-lock-file` finding.
        case unsafe
        /// A kernel lock sits on it.
        case held
        /// Nobody holds it and its image could not be found.
        case unmapped
        /// Nobody holds it; its image is known.
        case free
    }

    /// The whole exposition: every family with `# HELP` and `# TYPE`, samples of a family
    /// together, no label set twice. Families with no samples are left out, except the
    /// counts (findings per rule and severity, lock files per state, unreachable hosts, scan
    /// duration), which are always there so that alerts can compare them with 0.
    public static func render(_ audited: AuditedSnapshot, _ context: Context) -> String {
        var out = ""
        let snapshot = audited.snapshot
        let host = snapshot.host

        // One series per holder identity; a process holding one image through two fds is one.
        struct Series: Hashable { var labels: [String] }
        var info: [Series: Double] = [:]
        var order: [Series] = []
        for row in LockRow.rows(of: snapshot) where !row.waiting {
            guard let h = row.holder else { continue }
            let s = Series(labels: [h.host ?? host] + [Column.image, .scheme, .mode, .pid, .command, .vm, .user]
                .map { c -> String in
                    let cell = c.cell(row, now: context.now)
                    return cell == "-" ? "" : cell  // unknown: an empty label, as Prometheus has it
                })
            let age = h.started.map { max(0, context.now.timeIntervalSince($0)) } ?? -1
            if let seen = info[s] {
                info[s] = max(seen, age)
            } else {
                info[s] = age
                order.append(s)
            }
        }
        let holderLabels = ["host", "image", "scheme", "mode", "pid", "command", "vm", "user"]
        family(&out, "locksmith_image_lock_info",
               "A process holding a lock on an image: one series per host, image, scheme, mode and process.",
               order.map { (labels(holderLabels, $0.labels), 1) })
        family(&out, "locksmith_image_lock_held_seconds",
               "Seconds since the holding process started: the kernel records no time of locking, so this bounds how long the lock has been held.",
               order.compactMap { s in info[s].flatMap { $0 >= 0 ? (labels(holderLabels, s.labels), $0) : nil } })

        var waiters: [(String, Double)] = []
        var longest: [(String, Double)] = []
        for img in snapshot.images where !img.waiters.isEmpty {
            let row = LockRow(image: img, holder: nil)
            let l = labels(["host", "image"], [img.host ?? img.waiters.first?.host ?? host, Column.image.cell(row)])
            waiters.append((l, Double(img.waiters.count)))
            if let w = img.waiters.compactMap({ context.waitedSeconds[$0.pid] }).max() { longest.append((l, w)) }
        }
        family(&out, "locksmith_blocked_waiters", "Processes blocked waiting for a lock on the image.", waiters)
        family(&out, "locksmith_blocked_longest_wait_seconds",
               "How long the image's longest-waiting blocked process has waited, where the kernel tells.", longest)

        // Every host in view, then any other a finding or lock file names (a cross-host
        // finding has none: it counts under the view's own host).
        var hostsInView = context.hosts.isEmpty ? [host] : context.hosts
        var known = Set(hostsInView)
        for h in audited.findings.compactMap(\.host) + snapshot.lockFiles.compactMap(\.host) where known.insert(h).inserted {
            hostsInView.append(h)
        }
        struct FindingKey: Hashable { var host, rule, severity: String }
        var findings: [FindingKey: Int] = [:]
        for f in audited.findings {
            findings[FindingKey(host: f.host ?? host, rule: f.rule.rawValue, severity: f.severity.rawValue), default: 0] += 1
        }
        var findingSamples: [(String, Double)] = []
        for h in hostsInView {
            for rule in AuditRule.allCases {
                for severity in Severity.allCases {
                    let key = FindingKey(host: h, rule: rule.rawValue, severity: severity.rawValue)
                    findingSamples.append((labels(["host", "rule", "severity"], [h, key.rule, key.severity]),
                                           Double(findings[key] ?? 0)))
                }
            }
        }
        family(&out, "locksmith_audit_findings", "Audit findings by rule and severity (see locksmith audit).",
               findingSamples)

        struct StateKey: Hashable { var host: String; var state: LockFileState }
        var states: [StateKey: Int] = [:]
        let unsafe = Set(audited.findings.filter { $0.rule == .unsafeLockFile }.flatMap { f in f.files.map { "\(f.host ?? host) \($0)" } })
        for e in snapshot.lockFiles {
            let h = e.host ?? host
            states[StateKey(host: h, state: state(of: e, unsafe: unsafe.contains("\(h) \(e.path)"))), default: 0] += 1
        }
        family(&out, "locksmith_lock_files", "Entries of the lock dirs by state (each counted once).",
               hostsInView.flatMap { h in LockFileState.allCases.map {
                   (labels(["host", "state"], [h, $0.rawValue]), Double(states[StateKey(host: h, state: $0)] ?? 0))
               } })

        var unseen: [String: Int] = [:]
        for u in snapshot.unseen { unseen[u.category, default: 0] += 1 }
        family(&out, "locksmith_unseen", "Things the scan could not look at, by kind (locksmith list --json names them).",
               unseen.keys.sorted().map { (labels(["host", "what"], [host, $0]), Double(unseen[$0]!)) })

        family(&out, "locksmith_hosts_unreachable", "Hosts in view that did not answer.",
               [("", Double(context.unreachableHosts))])
        family(&out, "locksmith_scan_duration_seconds", "How long the scan and the audit took.",
               [("", context.scanSeconds)])
        return out
    }

    static func state(of e: LockFileEntry, unsafe: Bool) -> LockFileState {
        if e.kind != .regular || unsafe { return .unsafe }
        if e.held { return .held }
        return e.image == nil ? .unmapped : .free
    }

    /// `{a="x",b="y"}` with the values escaped as the format asks: backslash, double quote
    /// and line feed.
    static func labels(_ names: [String], _ values: [String]) -> String {
        "{" + zip(names, values).map { "\($0)=\"\(escapeLabel($1))\"" }.joined(separator: ",") + "}"
    }

    public static func escapeLabel(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private static func family(_ out: inout String, _ name: String, _ help: String, _ samples: [(String, Double)]) {
        guard !samples.isEmpty else { return }
        out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
        for (labels, value) in samples { out += "\(name)\(labels) \(number(value))\n" }
    }

    /// Integers without a fraction; others with millisecond precision.
    static func number(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return Sys.format("%.3f", v)
    }
}

extension Unseen {
    /// The kind of thing that could not be looked at, without the instance (a pid, a path):
    /// what `locksmith_unseen{what=…}` counts, so that its series stay few.
    public var category: String {
        let prefixes: [(String, String)] = [
            ("open files of pid", "process fds"), ("details of pid", "process details"),
            ("content of lock file", "lock file content"), ("lock dir", "lock dir"), ("images dir", "images dir"),
            ("libvirt domain", "libvirt domain"), ("gluster", "gluster"), ("directory ", "gluster"),
            ("files of gluster", "gluster"), ("hosts of the holders", "gluster holder hosts"),
            ("locks on bricks", "gluster holder hosts"),
        ]
        for (p, c) in prefixes where what.hasPrefix(p) { return c }
        if what.contains("/locks line") { return "kernel lock table" }
        if what.contains(" file(s) of gluster volume ") { return "gluster" }
        return "other"
    }
}
