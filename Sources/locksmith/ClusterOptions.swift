import ArgumentParser
import Foundation
import ImageLock
import LockInspector

/// `--host`, `--hosts` and how to reach them: the cluster view of `list`, `audit` and `why`.
/// The per-host bound is `--host-timeout`, apart from `--timeout`, which bounds each step
/// against a Gluster server (and is handed to every host's scan as it is).
struct ClusterOptions: ParsableArguments {
    /// These options in a usage line (see `ScanOptions.usage`).
    static let usage = "[--host <dest> ...] [--hosts <file>] [--ssh <cmd>] [--remote-command <path>] [--parallel <n>] "
        + "[--host-timeout <secs>]"

    @Option(name: .customLong("host"), help: ArgumentHelp(
        "A host to look at: an ssh destination ([user@]host or a name from ~/.ssh/config), or . for this host (repeatable). With --host or --hosts, the named hosts are the view.",
        valueName: "dest"))
    var hosts: [String] = []

    @Option(name: .customLong("hosts"), help: ArgumentHelp(
        "Read destinations from this file: one a line, # starts a comment.", valueName: "file"))
    var hostsFile: String?

    @Option(name: .customLong("ssh"), help: ArgumentHelp(
        "The ssh client and its options, split into words like a shell's (no shell runs it); default $LOCKSMITH_SSH, else ssh. locksmith adds -o BatchMode=yes -o ConnectTimeout=N.",
        valueName: "cmd"))
    var ssh: String?

    @Option(name: .customLong("remote-command"), help: ArgumentHelp(
        "The locksmith to run on each host.", valueName: "path"))
    var remoteCommand = "locksmith"

    @Option(help: ArgumentHelp("Ask at most this many hosts at once.", valueName: "n"))
    var parallel = 16

    @Option(name: .customLong("host-timeout"), help: ArgumentHelp(
        "Seconds each host may take to answer, connection included (ConnectTimeout is this, at most 30).", valueName: "secs"))
    var hostTimeout = 30.0

    var isCluster: Bool { !hosts.isEmpty || hostsFile != nil }

    func validate() throws {
        guard parallel >= 1 && parallel <= 1024 else { throw ValidationError("--parallel takes 1 to 1024") }
        guard hostTimeout > 0 && hostTimeout.isFinite else { throw ValidationError("--host-timeout takes a number of seconds > 0") }
        if !isCluster {
            if ssh != nil { throw ValidationError("--ssh needs --host or --hosts") }
            if remoteCommand != "locksmith" { throw ValidationError("--remote-command needs --host or --hosts") }
        }
        if isCluster { _ = try sshWords() }  // LOCKSMITH_SSH matters only to a cluster view
        guard !remoteCommand.isEmpty else { throw ValidationError("--remote-command must not be empty") }
    }

    func sshWords() throws -> [String] {
        let text = ssh ?? ProcessInfo.processInfo.environment["LOCKSMITH_SSH"] ?? "ssh"
        do {
            let w = try ShellWords.split(text)
            guard !w.isEmpty else { throw ValidationError("--ssh names no command") }
            return w
        } catch let e as ShellWords.Unbalanced {
            throw ValidationError("--ssh: \(e)")
        }
    }

    /// The destinations: `--host`s, then the lines of `--hosts`, each once.
    func destinations() throws -> [String] {
        var out = hosts
        if let f = hostsFile {
            guard let data = FileManager.default.contents(atPath: f), data.count <= 16 << 20 else {
                complain("cannot read --hosts \(ClusterText.line(f))")
                throw ExitStatus.couldNotCheck
            }
            out += ShellWords.hostList(String(decoding: data, as: UTF8.self))
        }
        var seen = Set<String>()
        out = out.filter { seen.insert($0).inserted }
        for d in out {
            guard !d.isEmpty, !d.hasPrefix("-"), d.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }) else {
                throw ValidationError("not an ssh destination: \(ClusterText.line(d))")
            }
        }
        guard !out.isEmpty else { throw ValidationError("--hosts names no host") }
        return out
    }

    /// How the hosts are asked (destinations, ssh, remote command, parallelism, timeout).
    func query() throws -> ClusterQuery {
        var q = ClusterQuery(hosts: try destinations())
        q.ssh = try sshWords()
        q.remoteCommand = remoteCommand
        q.parallel = parallel
        q.timeout = hostTimeout
        return q
    }

    /// The process tables of the hosts the Gluster locks in `snapshot` (holders named by a
    /// brick statedump) name, asked as the view was (`processes --json`), and the snapshot's
    /// Gluster holders marked live, proven stale or possibly stale (`GlusterStaleness`).
    func checkGlusterHolders(_ snapshot: inout Snapshot, hosts: [ClusterHost]) throws {
        var locks: [GlusterLockFact] = []
        for img in snapshot.images {
            guard let v = GlusterStaleness.volume(of: img) else { continue }
            locks += img.holders.map { GlusterLockFact(volume: v, host: $0.host, pid: $0.pid > 0 ? $0.pid : nil) }  // the pids to ask
        }
        guard !locks.isEmpty else { return }
        let tables = ClusterScan.processTables(try query(), view: hosts, pids: GlusterStaleness.pidsToAsk(locks))
        GlusterStaleness.annotate(&snapshot, tables: tables)
    }

    /// Asks every host with `list --json ARGS` (this host, `.`, through `local`), with a
    /// progress line on a terminal; each host that failed is one line on stderr.
    /// `quiet` (the TUI, which owns the terminal): no progress line and no stderr lines.
    func ask(arguments: [String], quiet: Bool = false, local: @escaping @Sendable () -> Result<Snapshot, Error>) throws -> ClusterAnswers {
        var q = try query()
        q.remoteArguments = arguments
        let tty = !quiet && isatty(2) == 1
        var progress: (@Sendable (Int, Int) -> Void)?
        if tty { progress = showProgress }
        let answers = ClusterScan.ask(q, local: local, progress: progress)
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        for h in answers.failed where !quiet {
            complain("host \(ClusterText.line(h.name)): \(h.error ?? "not seen")")
        }
        return answers
    }
}

/// The progress line of a cluster view, rewritten in place on a terminal's stderr.
@Sendable func showProgress(_ done: Int, _ total: Int) {
    let line = "\rlocksmith: \(done)/\(total) hosts answered\u{1B}[K"
    FileHandle.standardError.write(Data(line.utf8))
}

/// For `why IMAGE --host` on a `gluster://` image: each host's `list` also scans the
/// image's directory on its volume (`--gluster`), so that a server node in view names the
/// holders from a brick statedump, and those are checked on their hosts.
func glusterScanArguments(image: String) -> [String] {
    guard GlusterURL.looksLikeURL(image), let u = try? GlusterURL(parsing: image) else { return [] }
    let dir = u.path.split(separator: "/").dropLast().joined(separator: "/")
    return ["--gluster", u.volumeName, "--gluster-path", "/" + dir, "--all-files"]
}

extension ScanOptions {
    /// These options as arguments for another host's `list`.
    var forwarded: [String] {
        var a: [String] = []
        for d in lockDirectories { a += ["--lock-dir", d] }
        for d in imageDirectories { a += ["--images", d] }
        if procRoot != "/proc" { a += ["--proc", procRoot] }
        for v in glusterVolumes { a += ["--gluster", v] }
        if let p = glusterPath { a += ["--gluster-path", p] }
        if allFiles { a.append("--all-files") }
        if timeout != GlusterOptions.defaultTimeout { a += ["--timeout", "\(timeout)"] }
        if force { a.append("--force") }
        if noStatedump { a.append("--no-statedump") }
        return a
    }
}

/// The cluster view of a scan: the hosts' snapshots merged, with the cross-host findings
/// when `audit`; exit status 2 is the caller's when a host failed.
func clusterSnapshot(_ cluster: ClusterOptions, scan: ScanOptions, audit: Bool, waitThreshold: Double = 30,
                     quiet: Bool = false, directory: HostDirectory? = nil) throws -> (snapshot: Snapshot, hosts: [ClusterHost]) {
    let options = scan.inspectorOptions(statedumpByDefault: !audit)
    var args = scan.forwarded
    if audit { args += ["--audit", "--wait-threshold", "\(waitThreshold)"] }
    let asked = try cluster.ask(arguments: args, quiet: quiet) {
        Result {
            var s = audit ? try Auditor.snapshot(options, waitThreshold: waitThreshold) : try Inspector(options).snapshot()
            StorageIdentity.annotate(&s, procRoot: options.procRoot)
            return s
        }
    }
    var answers = asked
    for i in answers.hosts.indices where answers.hosts[i].name == "." && answers.hosts[i].reached {
        answers.hosts[i].version = LocksmithVersion.current  // this very binary
    }
    var merged = ClusterMerge.merge(answers, host: JSONOutput.host)
    if audit { merged.findings = AuditRules.sorted(merged.findings + ClusterRules.all(merged)) }
    try cluster.checkGlusterHolders(&merged, hosts: answers.hosts)
    directory?.update(answers.hosts)
    return (merged, answers.hosts)
}

/// The destinations of the hosts a cluster view last labelled (`ClusterHost.label` → `name`),
/// for acting on a row's host afterwards (the TUI's K).
final class HostDirectory: @unchecked Sendable {
    private let lock = NSLock()
    private var byLabel: [String: String] = [:]

    func update(_ hosts: [ClusterHost]) {
        lock.lock()
        defer { lock.unlock() }
        for h in hosts where h.reached { byLabel[h.label] = h.name }
    }

    func destination(_ label: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return byLabel[label]
    }
}

/// The TUI's K on a holder of another host: `locksmith signal` there, over the view's ssh,
/// with the view's scan options; the holder's host named as the view labelled it.
func remoteTerminator(_ cluster: ClusterOptions, scan: ScanOptions, directory: HostDirectory) throws -> @Sendable (Holder, String) -> String {
    let query = try cluster.query()
    let extra = scan.lockDirectories.flatMap { ["--lock-dir", $0] } + scan.imageDirectories.flatMap { ["--images", $0] }
    return { holder, image in
        let host = holder.host ?? "?"
        guard let dest = directory.destination(host) else {
            return "Not signalled: pid \(holder.pid): host \(ClusterText.line(host)) is not in view."
        }
        guard image.hasPrefix("/") || GlusterURL.looksLikeURL(image) else {
            return "Not signalled: pid \(holder.pid) on \(ClusterText.line(host)): the image of this lock is unknown."
        }
        if dest == "." { return HolderSignal.send(SIGTERM, named: "SIGTERM", to: holder).line }
        guard holder.scheme != .gluster else {
            return "Not signalled: pid \(holder.pid) on \(ClusterText.line(host)) holds a Gluster lock named by a statedump: stop it there."
        }
        return RemoteSignal.ask(query, destination: dest, host: ClusterText.line(host), holder: holder, image: image, extra: extra)
    }
}
