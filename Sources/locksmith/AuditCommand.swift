import ArgumentParser
import Foundation
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

    /// A snapshot with its findings; exit 2 when /proc cannot be read.
    func snapshot() throws -> Snapshot {
        do {
            return try Auditor.snapshot(inspector, waitThreshold: waitThreshold)
        } catch let e as InspectorError {
            complain(e.description)
            throw Status.couldNotCheck
        }
    }
}

extension Severity: ExpressibleByArgument {}

extension Locksmith {
    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(
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

        @OptionGroup var scan: AuditScanOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        func validate() throws {
            if fix && cluster.isCluster { throw ValidationError("--fix works on this host only; run it on each host") }
        }

        func run() throws {
            var hosts: [ClusterHost]?
            let snapshot: Snapshot
            if cluster.isCluster {
                let view = try clusterSnapshot(cluster, scan: scan.scan, audit: true, waitThreshold: scan.waitThreshold)
                (snapshot, hosts) = (view.snapshot, view.hosts)
            } else {
                snapshot = try scan.snapshot()
            }
            var fixes: [FixJSON] = []
            if fix {
                fixes = fixStale(snapshot.findings, lockFiles: snapshot.lockFiles)
            }
            let removed = Set(fixes.filter { $0.removed }.map(\.path))
            let remaining = snapshot.findings.filter { !($0.rule == .staleLockFile && $0.files.allSatisfy(removed.contains)) }
            if json {
                var report = AuditReport(snapshot, failOn: failOn, fixes: fix ? fixes : nil)
                report.hosts = hosts?.map(HostJSON.init)
                print(try JSONOutput.render(report, generated: snapshot.generated))
            } else {
                print(AuditText.render(snapshot.findings, fixes: fixes), terminator: "")
                if !snapshot.unseen.isEmpty {
                    complain("note: \(snapshot.unseen.count) thing(s) could not be looked at"
                             + (geteuid() == 0 ? "" : " (run as root to see every process)")
                             + "; `locksmith audit --json` lists them under \"unseen\"")
                }
            }
            if hosts?.contains(where: { !$0.reached }) == true { throw Status.couldNotCheck }
            if remaining.contains(where: { $0.severity >= failOn }) { throw Status.held }
        }

        /// Removes each stale lock file through the core. Each lock dir is opened once
        /// (`OpenedDirectory`: a walk that follows no link another user could plant) and
        /// every check, lock and unlink happens relative to it, on the file the scan saw
        /// (same device and inode): a directory on the path swapped for a link to another
        /// lock dir cannot redirect the removal to that dir's held files.
        func fixStale(_ findings: [Finding], lockFiles: [LockFileEntry]) -> [FixJSON] {
            let policy: LockFlavorPolicy =
                ProcessInfo.processInfo.environment["LOCKSMITH_LOCK_FLAVOR"] == "posix" ? .posixOnly : .automatic
            let seen = Dictionary(lockFiles.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
            var dirs: [String: Result<OpenedDirectory, Errno>] = [:]
            var out: [FixJSON] = []
            for f in findings where f.rule == .staleLockFile {
                for path in f.files {
                    let (dir, name) = ImageLocker.directoryAndName(path)
                    if dirs[dir] == nil { dirs[dir] = OpenedDirectory.open(dir) }
                    let opened: OpenedDirectory
                    switch dirs[dir]! {
                    case .success(let d): opened = d
                    case .failure(let e) where e.code == ELOOP:
                        out.append(FixJSON(path: path, removed: false, outcome: "kept: the path to \(dir) goes through a "
                                           + "symbolic link that root does not own in a dir only root may write"))
                        continue
                    case .failure(let e):
                        out.append(FixJSON(path: path, removed: false, outcome: "kept: cannot open \(dir): \(e)"))
                        continue
                    }
                    let expected = seen[path].flatMap { e in e.device.map { (device: $0, inode: e.inode) } }
                    let locker = ImageLocker(lockDirectory: dir, flavorPolicy: policy)
                    do {
                        let r = try locker.removeStaleLockFile(named: name, in: opened, expecting: expected)
                        out.append(FixJSON(path: path, removed: r == .removed, outcome: r.description))
                    } catch let e as ImageLockError {
                        out.append(FixJSON(path: path, removed: false, outcome: "kept: " + e.description))
                    } catch {
                        out.append(FixJSON(path: path, removed: false, outcome: "kept: \(error)"))
                    }
                }
            }
            return out
        }
    }
}

/// The text report: one block per finding, then a summary line.
enum AuditText {
    /// Each line is made safe for a terminal (`TerminalText`): paths, names and evidence
    /// hold whatever the system gave.
    static func render(_ findings: [Finding], fixes: [FixJSON]) -> String {
        var lines: [String] = []
        // Fixes by lock file, made once (a scan of every fix per finding was quadratic).
        var fixesByPath: [String: [Int]] = [:]
        for (i, fix) in fixes.enumerated() { fixesByPath[fix.path, default: []].append(i) }
        for f in findings {
            lines.append("\(f.severity.rawValue.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0)) "
                + "\(f.rule.rawValue)  \(f.image ?? f.files.first ?? "-")" + (f.host.map { "  (on \($0))" } ?? ""))
            lines.append("  \(f.evidence)")
            lines.append("  remedy: \(f.remedy)")
            for i in Set(f.files).flatMap({ fixesByPath[$0] ?? [] }).sorted() {
                lines.append("  fix: \(fixes[i].path): \(fixes[i].outcome)")
            }
        }
        var out = TerminalText.lines(lines)
        if findings.isEmpty {
            out += "no findings\n"
        } else {
            let counts = Severity.allCases.reversed().compactMap { s -> String? in
                let n = findings.filter { $0.severity == s }.count
                return n == 0 ? nil : "\(n) \(s.rawValue)"
            }
            out += "\(findings.count) finding\(findings.count == 1 ? "" : "s"): " + counts.joined(separator: ", ") + "\n"
        }
        let removed = fixes.filter(\.removed).count
        if !fixes.isEmpty { out += "fixed: removed \(removed) of \(fixes.count) stale lock file\(fixes.count == 1 ? "" : "s")\n" }
        return out
    }
}

// MARK: - JSON

/// What `--fix` did with one stale lock file.
struct FixJSON: Encodable {
    var path: String
    var removed: Bool
    var outcome: String
}

/// `audit --json`.
struct AuditReport: Encodable {
    var findings: [FindingJSON]
    var counts: [String: Int]
    var failOn: String
    var fixes: [FixJSON]?
    var unseen: [UnseenJSON]
    /// The hosts of a cluster view (`--host`); left out otherwise.
    var hosts: [HostJSON]?

    init(_ s: Snapshot, failOn: Severity, fixes: [FixJSON]?) {
        findings = s.findings.map(FindingJSON.init)
        var c: [String: Int] = [:]
        for sev in Severity.allCases { c[sev.rawValue] = s.findings.filter { $0.severity == sev }.count }
        counts = c
        self.failOn = failOn.rawValue
        self.fixes = fixes
        unseen = s.unseen.map { UnseenJSON(what: $0.what, why: $0.why) }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(findings, forKey: .findings)
        try c.encode(counts, forKey: .counts)
        try c.encode(failOn, forKey: .failOn)
        try c.encode(fixes, forKey: .fixes)  // null without --fix
        try c.encode(unseen, forKey: .unseen)
        try c.encodeIfPresent(hosts, forKey: .hosts)
    }

    enum CodingKeys: String, CodingKey { case findings, counts, failOn, fixes, unseen, hosts }
}

/// A host of a cluster view, as `list --json` writes it.
struct HostJSON: Encodable {
    var name: String
    var hostname: String?
    var reached: Bool
    var error: String?
    var tookMs: Int
    var version: String?

    init(_ h: ClusterHost) {
        (name, hostname, reached, error, tookMs, version) = (h.name, h.hostname, h.reached, h.error, h.tookMs, h.version)
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(hostname, forKey: .hostname)
        try c.encode(reached, forKey: .reached)
        try c.encode(error, forKey: .error)
        try c.encode(tookMs, forKey: .tookMs)
        try c.encode(version, forKey: .version)
    }

    enum CodingKeys: String, CodingKey { case name, hostname, reached, error, tookMs, version }
}

struct FindingJSON: Encodable {
    var finding: Finding

    init(_ finding: Finding) { self.finding = finding }

    func encode(to encoder: Encoder) throws {
        let f = finding
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(f.rule.rawValue, forKey: .rule)
        try c.encode(f.severity.rawValue, forKey: .severity)
        try c.encode(f.image, forKey: .image)
        try c.encode(f.holders.map(InvolvedProcessJSON.init), forKey: .holders)
        try c.encode(f.files, forKey: .files)
        try c.encode(f.evidence, forKey: .evidence)
        try c.encode(f.remedy, forKey: .remedy)
        try c.encode(f.host, forKey: .host)
    }

    enum CodingKeys: String, CodingKey { case rule, severity, image, holders, files, evidence, remedy, host }
}

struct InvolvedProcessJSON: Encodable {
    var process: InvolvedProcess

    init(_ process: InvolvedProcess) { self.process = process }

    func encode(to encoder: Encoder) throws {
        let p = process
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(p.role.rawValue, forKey: .role)
        try c.encode(p.pid, forKey: .pid)
        try c.encode(p.command, forKey: .command)
        try c.encode(p.args, forKey: .args)
        try c.encode(p.user ?? p.uid.map(String.init), forKey: .user)
        try c.encode(p.uid, forKey: .uid)
        try c.encode(p.started.map { $0.formatted(.iso8601) }, forKey: .started)
        try c.encode(p.fd, forKey: .fd)
        try c.encode(p.openMode?.rawValue, forKey: .openMode)
        try c.encode(p.vm, forKey: .vm)
        try c.encode(p.scheme?.rawValue, forKey: .scheme)
        try c.encode(p.mode, forKey: .mode)
        try c.encode(p.waitedSeconds.map { ($0 * 10).rounded() / 10 }, forKey: .waitedSeconds)
        try c.encode(p.host, forKey: .host)
    }

    enum CodingKeys: String, CodingKey {
        case role, pid, command, args, user, uid, started, fd, openMode, vm, scheme, mode, waitedSeconds, host
    }
}
