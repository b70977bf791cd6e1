import Dispatch
import FoundationEssentials
import ImageLock

/// A host of a cluster view, and how asking it went (`hosts` in `list --json`).
public struct ClusterHost: Sendable, Equatable {
    /// As named on the command line: an ssh destination, or `.` for this host.
    public var name: String
    /// The host name it reported (its JSON's `host`); nil when it did not answer.
    public var hostname: String?
    /// Its answer was read and merged.
    public var reached: Bool
    /// Why not, in one line (remote text escaped).
    public var error: String?
    /// How long it took, in milliseconds.
    public var tookMs: Int
    /// The locksmith version it reported, when it did.
    public var version: String?
    /// What the view calls it: its host name when that is unambiguous, else `name`.
    public var label: String

    public init(name: String, hostname: String? = nil, reached: Bool, error: String? = nil, tookMs: Int = 0,
                version: String? = nil, label: String? = nil) {
        self.name = name
        self.hostname = hostname
        self.reached = reached
        self.error = error
        self.tookMs = tookMs
        self.version = version
        self.label = label ?? name
    }
}

/// How a cluster view asks its hosts: over the system's OpenSSH client, run
/// `REMOTE list --json ARGS` on each, at most `parallel` at once, each bounded by `timeout`.
public struct ClusterQuery: Sendable {
    /// The destinations, in order; `.` is this host (scanned here, no ssh).
    public var hosts: [String]
    /// The ssh client's words (`--ssh`), before the options locksmith adds.
    public var ssh: [String] = ["ssh"]
    /// The locksmith to run on each host (`--remote-command`).
    public var remoteCommand = "locksmith"
    /// `list`'s arguments for each host (after `list --json`).
    public var remoteArguments: [String] = []
    public var parallel = 16
    /// Seconds per host, connection included.
    public var timeout = 30.0
    /// The most a host may print (its answer is dropped beyond this).
    public var maxAnswer = 256 << 20

    public init(hosts: [String]) { self.hosts = hosts }

    /// The argv run for `host`: the ssh words, `-o BatchMode=yes -o ConnectTimeout=N`, `--`,
    /// the destination, and the remote command line, each word quoted for the remote
    /// shell (ssh hands the command to it as one string).
    public func argv(for host: String) -> [String] { argv(for: host, words: ["list", "--json"] + remoteArguments) }

    /// The same for another subcommand: `words` after the remote command.
    public func argv(for host: String, words more: [String]) -> [String] {
        let connect = max(1, Int(min(timeout, 30)))
        let words = [remoteCommand] + more
        return ssh + ["-o", "BatchMode=yes", "-o", "ConnectTimeout=\(connect)", "--", host,
                      words.map(ShellWords.quote).joined(separator: " ")]
    }
}

/// What a cluster view saw: each host's own snapshot and findings (nil when it failed) and how it went.
public struct ClusterAnswers: Sendable {
    public var hosts: [ClusterHost]
    public var snapshots: [AuditedSnapshot?]

    public init(hosts: [ClusterHost], snapshots: [AuditedSnapshot?]) {
        self.hosts = hosts
        self.snapshots = snapshots
    }

    /// The hosts that were not seen.
    public var failed: [ClusterHost] { hosts.filter { !$0.reached } }
}

public enum ClusterScan {
    /// Asks every host of `query` (`local` answers for `.`), `progress(done, total)` after
    /// each (from the threads that ask, one at a time), and labels the hosts. Never throws:
    /// a host that fails is a `ClusterHost` with its error.
    public static func ask(_ query: ClusterQuery, local: @escaping @Sendable () -> Result<AuditedSnapshot, Error>,
                           progress: (@Sendable (Int, Int) -> Void)? = nil) -> ClusterAnswers {
        let n = query.hosts.count
        let results = Results(count: n)
        let workers = max(1, min(query.parallel, n))
        let group = DispatchGroup()
        for _ in 0..<workers {
            group.enter()
            Sys.startThread(stackSize: 1 << 20) {
                while let i = results.next() {
                    let r = askOne(query, query.hosts[i], local: local)
                    results.set(i, r, progress: progress)
                }
                group.leave()
            }
        }
        group.wait()
        var answers = ClusterAnswers(hosts: results.values.map(\.0), snapshots: results.values.map(\.1))
        label(&answers.hosts)
        return answers
    }

    /// One host: its snapshot, or why not.
    static func askOne(_ query: ClusterQuery, _ host: String,
                       local: @Sendable () -> Result<AuditedSnapshot, Error>) -> (ClusterHost, AuditedSnapshot?) {
        let start = Date()
        func took() -> Int { Int(Date().timeIntervalSince(start) * 1000) }
        if host == "." {
            switch local() {
            case .success(let s):
                return (ClusterHost(name: host, hostname: s.snapshot.host, reached: true, tookMs: took(), version: nil), s)
            case .failure(let e):
                return (ClusterHost(name: host, reached: false, error: ClusterText.line("\(e)"), tookMs: took()), nil)
            }
        }
        func fail(_ why: String) -> (ClusterHost, AuditedSnapshot?) {
            (ClusterHost(name: host, reached: false, error: why, tookMs: took()), nil)
        }
        let bytes: [UInt8], status: Int32, said: String
        switch run(query, host, words: ["list", "--json"] + query.remoteArguments) {
        case .failure(let why): return fail(why.description)
        case .success(let r): (bytes, status, said) = r
        }
        do {
            let (s, version) = try RemoteSnapshot.parse(bytes)
            return (ClusterHost(name: host, hostname: s.snapshot.host, reached: true, tookMs: took(), version: version), s)
        } catch let e as RemoteSnapshot.Rejected {
            return fail(e.description + (status == 0 ? "" : " (exit \(status)\(said.isEmpty ? "" : ": \(said)"))"))
        } catch {
            return fail("bad answer: \(ClusterText.line("\(error)"))")
        }
    }

    /// Runs `REMOTE WORDS` on `host` over ssh: what it printed on stdout, its exit status and
    /// the last line of its stderr, or why there is no answer to read (one line).
    static func run(_ query: ClusterQuery, _ host: String, words: [String]) -> Result<([UInt8], Int32, String), ClusterFailure> {
        let r = Subprocess.capture(query.argv(for: host, words: words), timeout: query.timeout, maxOutput: query.maxAnswer,
                                   maxErrors: 64 << 10)
        func fail(_ why: String) -> Result<([UInt8], Int32, String), ClusterFailure> { .failure(ClusterFailure(why)) }
        if let e = r.spawnError { return fail("cannot run \(ClusterText.line(query.ssh[0])): \(e)") }
        if r.timedOut { return fail("no answer within \(Sys.format("%g", query.timeout)) s") }
        if r.overflowed {
            let m = query.maxAnswer
            return fail("answer larger than " + (m >= 1 << 20 ? "\(m >> 20) MiB" : "\(m) bytes"))
        }
        let said = ClusterText.lastLine(r.stderr)
        if r.status == 255 { return fail("ssh failed" + (said.isEmpty ? " (exit 255)" : ": \(said)")) }
        if r.status == 127 || r.status == 126 {
            return fail("cannot run \(ClusterText.line(query.remoteCommand)) there (exit \(r.status))" + (said.isEmpty ? "" : ": \(said)"))
        }
        if r.stdout.isEmpty {
            return fail("no answer (exit \(r.status))" + (said.isEmpty ? "" : ": \(said)"))
        }
        return .success((r.stdout, r.status, said))
    }

    /// `run`, with a non-zero exit status as a failure too (for commands whose answer is
    /// only good when they succeed).
    static func fetch(_ query: ClusterQuery, _ host: String, words: [String]) -> Result<[UInt8], ClusterFailure> {
        switch run(query, host, words: words) {
        case .failure(let f): return .failure(f)
        case .success(let (bytes, status, said)):
            return status == 0 ? .success(bytes) : .failure(ClusterFailure("exit \(status)" + (said.isEmpty ? "" : ": \(said)")))
        }
    }

    /// Why a host gave no answer, in one line.
    struct ClusterFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Each reached host is called by its host name when no other host reported the same
    /// one and it is a plain name; else by the name it was given.
    static func label(_ hosts: inout [ClusterHost]) {
        var count: [String: Int] = [:]
        for h in hosts { if let n = h.hostname { count[n, default: 0] += 1 } }
        for i in hosts.indices {
            if let n = hosts[i].hostname, count[n] == 1, !n.isEmpty, n.count <= 253,
               n.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0)) }) {
                hosts[i].label = n
            } else {
                hosts[i].label = hosts[i].name
            }
        }
    }

    /// The hosts' answers, one slot each, handed out in order to the threads that ask.
    final class Results: @unchecked Sendable {
        private let lock = Lock()
        private var nextIndex = 0
        private var done = 0
        private(set) var values: [(ClusterHost, AuditedSnapshot?)]

        init(count: Int) {
            values = Array(repeating: (ClusterHost(name: "", reached: false), nil), count: count)
        }

        func next() -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard nextIndex < values.count else { return nil }
            nextIndex += 1
            return nextIndex - 1
        }

        private(set) var tables: [HostProcessTable?] = []

        func setTable(_ i: Int, _ t: HostProcessTable) {
            lock.lock()
            defer { lock.unlock() }
            if tables.count < values.count { tables = Array(repeating: nil, count: values.count) }
            tables[i] = t
        }

        func set(_ i: Int, _ v: (ClusterHost, AuditedSnapshot?), progress: (@Sendable (Int, Int) -> Void)?) {
            lock.lock()
            defer { lock.unlock() }
            values[i] = v
            done += 1
            progress?(done, values.count)
        }
    }
}

/// Host lists and `--ssh` words.
public enum ShellWords {
    public struct Unbalanced: Error, CustomStringConvertible {
        public var description: String { "an unterminated quote or a trailing backslash" }
    }

    /// Splits `text` into words as a POSIX shell would, with no expansion of any kind:
    /// blanks separate words, 'single' and "double" quotes group, a backslash escapes the
    /// next character (inside double quotes only before $ ` " \ and newline).
    public static func split(_ text: String) throws -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            switch c {
            case " ", "\t", "\n":
                if inWord { words.append(word) }
                word = ""
                inWord = false
            case "'":
                inWord = true
                guard let end = it.firstIndex(of: "'") else { throw Unbalanced() }
                word.unicodeScalars.append(contentsOf: it[..<end])
                it = it[(end + 1)...]
            case "\"":
                inWord = true
                var closed = false
                while let d = it.popFirst() {
                    if d == "\"" { closed = true; break }
                    if d == "\\", let e = it.first, "$`\"\\\n".unicodeScalars.contains(e) {
                        it.removeFirst()
                        if e != "\n" { word.unicodeScalars.append(e) }
                    } else {
                        word.unicodeScalars.append(d)
                    }
                }
                guard closed else { throw Unbalanced() }
            case "\\":
                guard let e = it.popFirst() else { throw Unbalanced() }
                if e != "\n" {
                    inWord = true
                    word.unicodeScalars.append(e)
                }
            default:
                inWord = true
                word.unicodeScalars.append(c)
            }
        }
        if inWord { words.append(word) }
        return words
    }

    /// `word` quoted for a POSIX shell: bare when only safe characters, else in single quotes.
    public static func quote(_ word: String) -> String {
        let safe = word.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_./:=,+@%".unicodeScalars.contains($0)) }
        if safe && !word.isEmpty { return word }
        return "'" + word.replacingScalars("'", with: "'\\''") + "'"
    }

    /// The destinations of a `--hosts` file: one a line, blanks around it ignored, `#` to
    /// the end of the line a comment.
    public static func hostList(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> String? in
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let t = code.trimmingBlanks
            return t.isEmpty ? nil : t
        }
    }
}

/// Remote text made fit for one line of a terminal: control characters, DEL and invalid
/// UTF-8 as `\xNN`, backslash doubled, at most 300 characters.
public enum ClusterText {
    /// Another host's text, bounded to 300 characters. Escaping for a terminal is the
    /// printer's job (`TerminalText`, through the CLI's `say`/`complain`): JSON keeps it exact.
    public static func line(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for (n, u) in s.unicodeScalars.enumerated() {
            if n == 300 { return String(out) + "..." }
            out.append(u)
        }
        return String(out)
    }

    /// The last non-empty line of bytes a program printed, made fit.
    static func lastLine(_ bytes: [UInt8]) -> String {
        let lines = bytes.split { $0 == 0x0A || $0 == 0x0D }.map { String(decoding: $0, as: UTF8.self) }
        return line(lines.last { !$0.trimmingBlanks.isEmpty } ?? "")
    }
}
