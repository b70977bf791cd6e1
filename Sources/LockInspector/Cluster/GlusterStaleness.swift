import FoundationEssentials
import ImageLock

/// Whether the holder of a Gluster lock (named by a brick statedump: its host and pid) is
/// still there, from that host's own process table.
public enum HolderLiveness: Sendable, Hashable {
    /// Its host answered and has the process, which uses the volume: the holder is named.
    case live
    /// Its host answered and has no such process (or one that cannot hold the lock: it
    /// has ended, has no file of the volume open, started after the lock was granted).
    /// Why, in one sentence.
    case provenStale(String)
    /// Its host did not answer or is not in view: nothing proves either way. Why.
    case possiblyStale(String)

    /// `live`, `proven-stale`, `possibly-stale` (JSON's `liveness`).
    public var word: String {
        switch self {
        case .live: return "live"
        case .provenStale: return "proven-stale"
        case .possiblyStale: return "possibly-stale"
        }
    }

    public var reason: String? {
        switch self {
        case .live: return nil
        case .provenStale(let s), .possiblyStale(let s): return s
        }
    }

    public var isProvenStale: Bool { if case .provenStale = self { return true } else { return false } }
}

/// What a brick statedump says of a holder it names, beyond its host and pid.
public struct StatedumpNaming: Sendable, Hashable {
    /// The client connection's process (`PID:` of its connection-id).
    public var clientPID: Int32?
    /// The lk-owner is locksmith's (`<hostname>:<pid>`).
    public var locksmithOwner: Bool
    /// When the brick granted the lock (the earliest of the holder's records).
    public var granted: Date?

    public init(clientPID: Int32?, locksmithOwner: Bool, granted: Date? = nil) {
        self.clientPID = clientPID
        self.locksmithOwner = locksmithOwner
        self.granted = granted
    }

    /// From one holder's statedump records.
    public init(_ records: [GlusterLockRecord]) {
        self.init(clientPID: records.first?.clientPID, locksmithOwner: records.first?.isLocksmith ?? false,
                  granted: records.compactMap { $0.since.flatMap(GlusterStaleness.grantTime) }.min())
    }
}

/// A process as its own host describes it for the check (`locksmith processes --json`).
public struct HostProcess: Sendable, Equatable {
    public var details: ProcessDetails
    /// Field 3 of /proc/PID/stat (`R`, `S`, `D`, `T`, `Z`, ...).
    public var state: String
    /// The Gluster volumes it has files open on through FUSE mounts (fuse.glusterfs), by the
    /// mount's source (`SERVER:/VOLUME`): a FUSE holder keeps the file open while it holds
    /// its lock (closing any fd of the file releases POSIX locks: fcntl(2)).
    public var volumesOpen: [String]
    /// The volumes its arguments name: `gluster://HOST[:PORT]/VOLUME/...` (gfapi clients:
    /// QEMU, locksmith) and `--volfile-id=VOLUME` (the glusterfs client daemon).
    public var volumesNamed: [String]

    public init(details: ProcessDetails, state: String, volumesOpen: [String] = [], volumesNamed: [String] = []) {
        self.details = details
        self.state = state
        self.volumesOpen = volumesOpen
        self.volumesNamed = volumesNamed
    }

    public var pid: Int32 { details.pid }
}

/// One host's answer: the processes it has of the pids asked about (absent: no such process).
public struct HostProcessTable: Sendable, Equatable {
    /// The host as the view labels it (`ClusterHost.label`).
    public var host: String
    public var reached: Bool
    /// Why not reached, in one line.
    public var error: String?
    public var processes: [Int32: HostProcess]

    public init(host: String, reached: Bool, error: String? = nil, processes: [Int32: HostProcess] = [:]) {
        self.host = host
        self.reached = reached
        self.error = error
        self.processes = processes
    }
}

/// What a statedump says about one lock's holder, as far as the check needs.
public struct GlusterLockFact: Sendable, Equatable {
    public var volume: String
    public var host: String?
    public var pid: Int32?
    /// The client connection's process (a FUSE mount's glusterfs daemon; a gfapi program itself).
    public var clientPID: Int32?
    /// The lk-owner is locksmith's (`<hostname>:<pid>`): the holder is a locksmith gfapi client.
    public var isLocksmith: Bool
    /// When the brick granted it, when known.
    public var granted: Date?

    public init(volume: String, host: String?, pid: Int32?, clientPID: Int32? = nil, isLocksmith: Bool = false, granted: Date? = nil) {
        self.volume = volume
        self.host = host
        self.pid = pid
        self.clientPID = clientPID
        self.isLocksmith = isLocksmith
        self.granted = granted
    }

    public init(_ r: GlusterLockRecord, volume: String) {
        self.init(volume: r.volume ?? volume, host: r.host, pid: r.holderPID, clientPID: r.clientPID, isLocksmith: r.isLocksmith,
                  granted: r.since.flatMap(GlusterStaleness.grantTime))
    }

    /// Taken through a FUSE mount: the connection is another process (the mount's daemon)
    /// than the one that locked.
    public var isFUSE: Bool {
        guard !isLocksmith, let c = clientPID, let p = pid else { return false }
        return c != p
    }
}

/// The pure decision: a Gluster lock's holder against its host's process table.
public enum GlusterStaleness {
    /// How far a process's start may follow the lock's grant time and still be its holder:
    /// the statedump prints whole seconds in the brick's clock, /proc the holder host's.
    public static let clockSlack: TimeInterval = 5

    public static func judge(_ lock: GlusterLockFact, tables: [String: HostProcessTable]) -> (HolderLiveness, HostProcess?) {
        guard let host = lock.host else { return (.possiblyStale("the statedump names no host for it"), nil) }
        guard let pid = lock.pid, pid > 0 else { return (.possiblyStale("the statedump names no pid for it"), nil) }
        guard let t = tables[host] else { return (.possiblyStale("host \(host) is not in view"), nil) }
        guard t.reached else { return (.possiblyStale("host \(host) did not answer" + (t.error.map { ": \($0)" } ?? "")), nil) }
        guard let p = t.processes[pid] else { return (.provenStale("host \(host) has no process \(pid)"), nil) }
        let who = "pid \(pid) (\(p.details.command)) on \(host)"
        if p.state == "Z" || p.state == "X" { return (.provenStale("\(who) has exited (state \(p.state))"), p) }
        if let g = lock.granted, let s = p.details.started, s > g.addingTimeInterval(clockSlack) {
            return (.provenStale("\(who) started at \(stamp(s)), after the lock was granted at \(stamp(g)): another process took the pid"), p)
        }
        if lock.isFUSE && !p.volumesOpen.contains(lock.volume) {
            return (.provenStale("\(who) has no file of volume \(lock.volume) open: a FUSE holder keeps the file open"), p)
        }
        if lock.isLocksmith && !p.volumesNamed.contains(lock.volume) {
            return (.provenStale("\(who) is not a client of volume \(lock.volume): the lock's owner is a locksmith of that pid"), p)
        }
        return (.live, p)
    }

    /// The pids to ask each host about: the holders of `locks` on hosts of `tables`' keys.
    public static func pidsToAsk(_ locks: [GlusterLockFact]) -> [String: [Int32]] {
        var out: [String: Set<Int32>] = [:]
        for l in locks { if let h = l.host, let p = l.pid, p > 0 { out[h, default: []].insert(p) } }
        return out.mapValues { $0.sorted() }
    }

    /// Marks every holder of a Gluster image in `s` (scheme gluster, or an image on a
    /// Gluster volume: `storage` `gluster:VOLUME/PATH`) with its liveness, and names it from
    /// its host's process table when live (command, arguments, user, VM, start).
    public static func annotate(_ s: inout Snapshot, tables: [String: HostProcessTable]) {
        for i in s.images.indices {
            guard let volume = volume(of: s.images[i]) else { continue }
            for j in s.images[i].holders.indices {
                var h = s.images[i].holders[j]
                let fact = GlusterLockFact(volume: volume, host: h.host, pid: h.pid > 0 ? h.pid : nil, clientPID: h.statedump?.clientPID,
                                           isLocksmith: h.statedump?.locksmithOwner ?? false, granted: h.statedump?.granted)
                let (liveness, p) = judge(fact, tables: tables)
                h.liveness = liveness
                if let d = p?.details, h.command == "?" || h.command.isEmpty {
                    h.command = d.command
                    h.args = d.args
                    h.user = d.user
                    h.uid = d.uid
                    h.started = d.started
                    h.vm = h.vm ?? d.vm
                }
                s.images[i].holders[j] = h
            }
        }
    }

    /// The volume of a Gluster image of a snapshot, nil for other images.
    public static func volume(of img: ImageLocks) -> String? {
        if let st = img.storage, st.hasPrefix("gluster:") {
            return String(st.dropFirst("gluster:".count).prefix { $0 != "/" })
        }
        if img.schemes.contains(.gluster), let p = img.path, let u = try? GlusterURL(parsing: p) { return u.volume }
        return nil
    }

    /// The volume a FUSE mount's source names (`SERVER:/VOLUME[/SUBDIR]`, `SERVER:VOLUME`).
    public static func volume(mountSource source: String) -> String? {
        guard let colon = source.lastIndex(of: ":") else { return nil }
        let v = source[source.index(after: colon)...].drop { $0 == "/" }.prefix { $0 != "/" }
        return v.isEmpty ? nil : String(v)
    }

    /// The volumes named in a process's arguments: `gluster[+tcp]://HOST[:PORT]/VOLUME/...`
    /// anywhere in an argument, and the glusterfs daemon's `--volfile-id=[/]VOLUME`.
    public static func volumes(arguments args: [String]) -> [String] {
        var out: [String] = []
        func add(_ v: Substring) {
            let name = v.drop { $0 == "/" }.prefix { $0 != "/" && $0 != "," && $0 != "?" }
            if !name.isEmpty && !out.contains(String(name)) { out.append(String(name)) }
        }
        for (i, a) in args.enumerated() {
            if a.hasPrefix("--volfile-id=") { add(a.dropFirst("--volfile-id=".count)) }
            if a == "--volfile-id", i + 1 < args.count { add(args[i + 1][...]) }
            var rest = a[...]
            while let r = rest.firstRange(of: "://") {
                let scheme = rest[..<r.lowerBound].reversed().prefix { $0.isLetter || $0 == "+" }
                let after = rest[r.upperBound...]
                if String(scheme.reversed()).hasPrefix("gluster"), let slash = after.firstIndex(of: "/") {
                    add(after[after.index(after: slash)...])
                }
                rest = after
            }
        }
        return out
    }

    /// A statedump's `granted at 2026-11-28 03:42:58 +0000` time (`yyyy-MM-dd HH:mm:ss`, a
    /// space and the zone's offset as ±HHMM or ±HH:MM), or nil.
    public static func grantTime(_ text: String) -> Date? {
        let t = Array(text.trimmingBlanks.utf8)
        func number(_ at: Int, _ width: Int) -> Int? {
            guard at + width <= t.count else { return nil }
            var n = 0
            for c in t[at..<at + width] {
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                n = n * 10 + Int(c - UInt8(ascii: "0"))
            }
            return n
        }
        func sep(_ at: Int, _ c: Character) -> Bool { at < t.count && t[at] == c.asciiValue! }
        guard let year = number(0, 4), sep(4, "-"), let month = number(5, 2), sep(7, "-"), let day = number(8, 2),
              sep(10, " "), let hour = number(11, 2), sep(13, ":"), let minute = number(14, 2), sep(16, ":"),
              let second = number(17, 2), sep(19, " "), sep(20, "+") || sep(20, "-"), let zh = number(21, 2),
              (1...12).contains(month), (1...CivilDate.days(inMonth: month, of: year)).contains(day),
              hour < 24, minute < 60, second < 60, zh < 24 else { return nil }
        let colon = sep(23, ":") ? 1 : 0
        guard let zm = number(23 + colon, 2), zm < 60, t.count == 25 + colon else { return nil }
        let offset = (zh * 3600 + zm * 60) * (sep(20, "-") ? -1 : 1)
        let seconds = CivilDate.daysSinceEpoch(year: year, month: month, day: day) * 86400
            + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds))
    }

    /// `2026-11-28 03:42:58 UTC`.
    static func stamp(_ d: Date) -> String {
        let s = Int(d.timeIntervalSince1970.rounded(.down))
        let (days, rest) = (s >= 0 ? s / 86400 : (s - 86399) / 86400, ((s % 86400) + 86400) % 86400)
        let (y, m, day) = CivilDate.date(daysSinceEpoch: days)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let year = String(repeating: "0", count: max(0, 4 - String(y).count)) + String(y)
        return "\(year)-\(two(m))-\(two(day)) \(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60)) UTC"
    }
}

/// Days and proleptic Gregorian dates (H. Hinnant's days_from_civil and civil_from_days,
/// https://howardhinnant.github.io/date_algorithms.html).
enum CivilDate {
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func date(daysSinceEpoch z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func days(inMonth month: Int, of year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// `clear-locks`: every holder of the granted locks on a path, judged; the locks may be
/// cleared only when every one is proven stale.
public struct ClearLocksReview: Sendable {
    public struct Holder: Sendable {
        public var host: String?
        public var pid: Int32?
        /// Its granted locks (one statedump record each).
        public var records: [GlusterLockRecord]
        public var liveness: HolderLiveness
        /// Its process on its host, when there is one.
        public var process: HostProcess?
    }

    public var holders: [Holder]

    /// Every holder proven stale (and at least one): clearing drops only dead locks.
    public var allProvenStale: Bool { !holders.isEmpty && holders.allSatisfy { $0.liveness.isProvenStale } }

    /// The holders that stand in the way of clearing without `--force-live`.
    public var notProvenStale: [Holder] { holders.filter { !$0.liveness.isProvenStale } }

    /// The granted records (of `volume`'s path) grouped by holder (host and pid), each
    /// judged against `tables` (by host name, as the statedump names hosts).
    public static func review(granted: [GlusterLockRecord], volume: String, tables: [String: HostProcessTable]) -> ClearLocksReview {
        ClearLocksReview(holders: ServerLocks.byHolder(granted.filter { $0.state == .active }).map { rs in
            var fact = GlusterLockFact(rs[0], volume: volume)
            fact.granted = StatedumpNaming(rs).granted
            let (l, p) = GlusterStaleness.judge(fact, tables: tables)
            return Holder(host: rs[0].host, pid: rs[0].holderPID, records: rs, liveness: l, process: p)
        })
    }

    /// What `clear-locks` (and the TUI's `C`) decide on: a statedump of `url`'s volume on
    /// this node (through `cli`), its granted and waiting locks on the path, and each holder
    /// judged on its host, asked through `query` (this host, `.`, always).
    public struct Check: Sendable {
        public var granted: [GlusterLockRecord]
        public var waiting: [GlusterLockRecord]
        /// Bricks of the volume on other nodes (their locks are not in the dump).
        public var bricksNotHere: [String]
        public var review: ClearLocksReview
        /// The destinations that did not answer.
        public var failed: [ClusterScan.ProcessAnswer]
    }

    public static func check(_ url: GlusterURL, cli: GlusterCLI, query: ClusterQuery) throws -> Check {
        let dump = try cli.statedump(volume: url.volume)
        let granted = dump.records.filter { $0.isOn(url.path, .active) }
        let waiting = dump.records.filter { $0.isOn(url.path, .blocked) }
        guard !granted.isEmpty else {
            return Check(granted: [], waiting: waiting, bricksNotHere: dump.bricksNotHere, review: ClearLocksReview(holders: []), failed: [])
        }
        var q = query
        if !q.hosts.contains(".") { q.hosts.insert(".", at: 0) }
        let answers = ClusterScan.processAnswers(q, pids: Array(Set(granted.compactMap(\.holderPID).filter { $0 > 0 })).sorted())
        return Check(granted: granted, waiting: waiting, bricksNotHere: dump.bricksNotHere,
                     review: review(granted: granted, volume: url.volume, tables: tables(answers)),
                     failed: answers.filter { !$0.table.reached })
    }

    /// The TUI's `C` on a row: `gluster volume clear-locks VOL PATH kind granted posix` on
    /// this node's glusterd, as `locksmith clear-locks --yes` does, only when every holder
    /// is proven stale (`clearIfStale`); the outcome in one line.
    public static func clear(_ image: ImageLocks, timeout: Double, query: ClusterQuery = ClusterQuery(hosts: ["."])) -> String {
        guard let path = image.path, let url = try? GlusterURL(parsing: path) else {
            return "Not a gluster image: nothing cleared."
        }
        let cli = GlusterCLI(timeout: max(30, timeout))
        guard cli.isUsable else {
            return "clear-locks needs the gluster CLI and a glusterd on this node (a server of volume \(url.volume)): nothing cleared."
        }
        return clearIfStale(url, cli: cli, query: query)
    }

    /// Clears only when every holder is proven stale; one line either way.
    public static func clearIfStale(_ url: GlusterURL, cli: GlusterCLI, query: ClusterQuery) -> String {
        do {
            let c = try check(url, cli: cli, query: query)
            guard !c.granted.isEmpty else { return "\(url): no granted locks on this node's bricks; nothing to clear." }
            let standing = c.review.notProvenStale
            guard standing.isEmpty else {
                let named = standing.prefix(3).map { h in
                    "pid \(h.pid.map(String.init) ?? "?") on \(h.host.map(ClusterText.line) ?? "?"): \(h.liveness.word)"
                }
                return "Nothing cleared: " + named.joined(separator: "; ") + (standing.count > 3 ? "; ..." : "")
                    + " (`locksmith clear-locks --force-live` clears them)."
            }
            let r = try cli.clearGrantedLocks(volume: url.volume, path: url.path)
            if r.grantedCleared == 0 { return "\(url): no locks cleared (released meanwhile?)." }
            return "\(url): cleared \(r.grantedCleared) proven-stale granted lock\(r.grantedCleared == 1 ? "" : "s")."
        } catch {
            return "clear-locks failed: \(error)"
        }
    }

    /// The process tables by host name from `answers`; a failed destination is filed under
    /// its host part (`user@HOST` → `HOST`), which is how a statedump names it when the
    /// destination is the host name.
    public static func tables(_ answers: [ClusterScan.ProcessAnswer]) -> [String: HostProcessTable] {
        var out: [String: HostProcessTable] = [:]
        for a in answers where a.table.reached { out[a.table.host] = a.table }
        for a in answers where !a.table.reached {
            let name = String(a.destination.split(separator: "@").last ?? Substring(a.destination))
            if out[name] == nil { out[name] = HostProcessTable(host: name, reached: false, error: a.table.error) }
        }
        return out
    }
}

/// Reading the process facts of the check on this host (what `locksmith processes` prints).
public enum HostProcesses {
    /// The processes of `pids` that exist here (each read from /proc; nothing of a file
    /// system is touched: fds are matched to mounts by `mnt_id` in their fdinfo, so a hung
    /// FUSE server cannot stall it). At most `maxFDs` fds are looked at per process.
    public static func read(pids: [Int32], procRoot: String = "/proc", maxFDs: Int = 65536) -> [HostProcess] {
        var users: [UInt32: String?] = [:]
        let boot = ProcessDetails.bootTime(procRoot: procRoot)
        var out: [HostProcess] = []
        for pid in Set(pids).sorted() where pid > 0 {
            guard let d = ProcessDetails.read(pid: pid, procRoot: procRoot, bootTime: boot, users: &users),
                  let stat = ProcFS.read("\(procRoot)/\(pid)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            let state = stat[stat.index(after: close)...].split(separator: " ").first.map(String.init) ?? "?"
            var open: [String] = []
            if let info = ProcFS.read("\(procRoot)/\(pid)/mountinfo") {
                var glusterMounts: [String: String] = [:]  // mount id -> volume
                for line in info.split(separator: "\n") {
                    let f = line.split(separator: " ", omittingEmptySubsequences: false)
                    guard f.count > 6, let dash = f.firstIndex(of: "-"), dash + 2 < f.count, f[dash + 1] == "fuse.glusterfs",
                          let v = GlusterStaleness.volume(mountSource: ServerLocks.unescape(f[dash + 2])) else { continue }
                    glusterMounts[String(f[0])] = v
                }
                if !glusterMounts.isEmpty, case .success(let fds) = Sys.entries("\(procRoot)/\(pid)/fdinfo") {
                    for e in fds.prefix(maxFDs) {
                        guard let text = ProcFS.read("\(procRoot)/\(pid)/fdinfo/\(e.name)"),
                              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("mnt_id:") }),
                              let v = glusterMounts[String(line.dropFirst("mnt_id:".count).trimmingBlanks)],
                              !open.contains(v) else { continue }
                        open.append(v)
                    }
                }
            }
            out.append(HostProcess(details: d, state: state, volumesOpen: open.sorted(),
                                   volumesNamed: GlusterStaleness.volumes(arguments: d.args)))
        }
        return out
    }
}
