import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
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

    /// The cluster view of `scan`: every host asked (`ClusterView.take`), with a progress
    /// line on a terminal; each host that failed is one line on stderr. `quiet` (the TUI,
    /// which owns the terminal; `metrics`, which names them itself): neither.
    func view(scan: ScanRequest, audit: Bool, waitThreshold: Double = 30, quiet: Bool = false,
              unreachedAsUnseen: Bool = false) throws -> ClusterView.Outcome {
        let view = ClusterView(query: try query(), scan: scan, version: LocksmithVersion.current)
        let tty = !quiet && isatty(2) == 1
        let outcome = view.take(audit: audit, waitThreshold: waitThreshold, unreachedAsUnseen: unreachedAsUnseen,
                                progress: tty ? showProgress : nil)
        if tty { writeStandardError("\r\u{1B}[K") }
        for h in outcome.hosts where !h.reached && !quiet {
            complain("host \(ClusterText.line(h.name)): \(h.error ?? "not seen")")
        }
        return outcome
    }
}

/// The progress line of a cluster view, rewritten in place on a terminal's stderr.
@Sendable func showProgress(_ done: Int, _ total: Int) {
    let line = "\rlocksmith: \(done)/\(total) hosts answered\u{1B}[K"
    writeStandardError(line)
}
