import Dispatch
import FoundationEssentials
import ImageLock

/// `locksmith processes --json PID...`: what a host says about the pids a cluster view asks
/// it about (docs/schema/processes.json), written here and read back on the asking host,
/// where it is hostile input: decoded strictly, its strings kept as data.
public enum ProcessesJSON {
    public static func render(host: String, version: String, processes: [HostProcess], generated: Date = Date()) -> [UInt8] {
        var w = JSONWriter(capacity: 4096)
        var dates = DateText()
        w.beginReport(host: host, generated: generated)
        w.field("processes", processes) { w, p in
            let d = p.details
            w.beginObject()
            w.field("args", d.args)
            w.field("command", d.command)
            w.field("pid", d.pid)
            w.field("start_ticks", d.startTicks)
            w.field("started", d.started, dates: &dates)
            w.field("state", p.state)
            w.field("uid", d.uid)
            w.field("user", d.user)
            w.field("vm", d.vm)
            w.field("volumes_named", p.volumesNamed)
            w.field("volumes_open", p.volumesOpen)
            w.endObject()
        }
        w.field("version", version)
        w.endObject()
        return w.bytes + [0x0A]
    }

    /// Another host's answer: the host name it reports, and its processes by pid (only the
    /// pids asked about are kept).
    public static func parse(_ bytes: [UInt8], asked: Set<Int32>) throws -> (host: String, processes: [Int32: HostProcess]) {
        struct Wire: Decodable {
            var schema: Int
            var host: String
            var processes: [P]
        }
        struct P: Decodable {
            var args: [String]
            var command: String
            var pid: Int32
            var startTicks: UInt64?
            var started: String?
            var state: String
            var uid: UInt32?
            var user: String?
            var vm: String?
            var volumesNamed: [String]
            var volumesOpen: [String]
        }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let w: Wire
        do {
            w = try d.decode(Wire.self, from: Data(bytes))
        } catch {
            throw RemoteSnapshot.Rejected(description: "bad answer: not a locksmith processes --json object (\(RemoteSnapshot.reason(error)))")
        }
        guard w.schema == 1 else {
            throw RemoteSnapshot.Rejected(description: "answers in JSON schema \(w.schema), not 1 (another locksmith version)")
        }
        var out: [Int32: HostProcess] = [:]
        for p in w.processes where asked.contains(p.pid) {
            guard p.state.count <= 4 else { throw RemoteSnapshot.Rejected(description: "bad answer: bad process state") }
            let details = ProcessDetails(pid: p.pid, command: p.command, args: p.args, uid: p.uid, user: p.user,
                                         started: p.started.flatMap { try? Date($0, strategy: .iso8601) },
                                         startTicks: p.startTicks, vm: p.vm)
            out[p.pid] = HostProcess(details: details, state: p.state, volumesOpen: p.volumesOpen, volumesNamed: p.volumesNamed)
        }
        return (w.host, out)
    }
}

extension ClusterScan {
    /// Asks each host of `view` (labels as `ClusterHost.label`, destinations as its `name`)
    /// about the pids of `pids` (by label) with `REMOTE processes --json PID...`, as the
    /// scan asks (`query`'s ssh, parallelism and timeout); `.` reads this host's /proc.
    /// A host not reached in the view has an unreached table; one not in the view, none.
    public static func processTables(_ query: ClusterQuery, view: [ClusterHost], pids: [String: [Int32]],
                                     procRoot: String = "/proc") -> [String: HostProcessTable] {
        var out: [String: HostProcessTable] = [:]
        var jobs: [(label: String, destination: String, pids: [Int32])] = []
        for h in view {
            guard let p = pids[h.label] else { continue }
            if h.reached { jobs.append((h.label, h.name, p)) } else { out[h.label] = HostProcessTable(host: h.label, reached: false, error: h.error) }
        }
        for (job, var t) in zip(jobs, askProcesses(query, jobs.map { ($0.destination, $0.pids) }, procRoot: procRoot)) {
            t.host = job.label
            out[job.label] = t
        }
        return out
    }

    /// One destination's answer to `processes --json PIDS`: its table, labelled by the host
    /// name it reported (a failed one by its destination).
    public struct ProcessAnswer: Sendable {
        public var destination: String
        public var table: HostProcessTable

        public init(destination: String, table: HostProcessTable) {
            self.destination = destination
            self.table = table
        }
    }

    /// Asks every destination of `query` about the same pids, when which host is which is
    /// known only from their answers (`clear-locks`).
    public static func processAnswers(_ query: ClusterQuery, pids: [Int32], procRoot: String = "/proc") -> [ProcessAnswer] {
        zip(query.hosts, askProcesses(query, query.hosts.map { ($0, pids) }, procRoot: procRoot)).map {
            ProcessAnswer(destination: $0, table: $1)
        }
    }

    /// `processes --json` on each destination with its pids, at most `query.parallel` at
    /// once; `.` reads this host's /proc. Each table is labelled by the host name its host
    /// reported, a failed one by its destination.
    static func askProcesses(_ query: ClusterQuery, _ jobs: [(destination: String, pids: [Int32])],
                             procRoot: String) -> [HostProcessTable] {
        let results = Results(count: jobs.count)
        let group = DispatchGroup()
        for _ in 0..<max(1, min(query.parallel, jobs.count)) {
            group.enter()
            Sys.startThread(stackSize: 1 << 20) {
                while let i = results.next() {
                    let (dest, pids) = jobs[i]
                    var table = HostProcessTable(host: dest, reached: true)
                    if dest == "." {
                        table.host = Sys.hostName
                        for p in HostProcesses.read(pids: pids, procRoot: procRoot) { table.processes[p.pid] = p }
                    } else {
                        switch fetch(query, dest, words: ["processes", "--json"] + pids.map(String.init)) {
                        case .failure(let why): (table.reached, table.error) = (false, why.description)
                        case .success(let bytes):
                            do {
                                (table.host, table.processes) = try ProcessesJSON.parse(bytes, asked: Set(pids))
                            } catch let e as RemoteSnapshot.Rejected {
                                (table.reached, table.error) = (false, e.description)
                            } catch {
                                (table.reached, table.error) = (false, "bad answer")
                            }
                        }
                    }
                    results.setTable(i, table)
                }
                group.leave()
            }
        }
        group.wait()
        return zip(jobs, results.tables).map { $1 ?? HostProcessTable(host: $0.destination, reached: false) }
    }
}
