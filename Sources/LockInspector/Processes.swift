import FoundationEssentials
import ImageLock

/// What /proc says about a process, as far as naming a lock holder needs.
public struct ProcessDetails: Sendable, Equatable {
    public var pid: Int32
    /// `Name:` of /proc/PID/status (the kernel's comm, at most 15 bytes).
    public var command: String
    public var args: [String]
    /// Effective uid (second field of `Uid:`).
    public var uid: UInt32?
    public var user: String?
    public var started: Date?
    /// Field 22 of /proc/PID/stat: clock ticks after boot.
    public var startTicks: UInt64?
    /// The VM name from QEMU's `-name`.
    public var vm: String?

    public init(pid: Int32, command: String, args: [String] = [], uid: UInt32? = nil, user: String? = nil,
                started: Date? = nil, startTicks: UInt64? = nil, vm: String? = nil) {
        self.pid = pid
        self.command = command
        self.args = args
        self.uid = uid
        self.user = user
        self.started = started
        self.startTicks = startTicks
        self.vm = vm
    }

    /// Reads status, cmdline and stat of one process; nil when it is gone.
    static func read(pid: Int32, procRoot: String, bootTime: Date?, users: inout [UInt32: String?]) -> ProcessDetails? {
        let dir = "\(procRoot)/\(pid)"
        // As bytes: the name may hold anything its owner set (`PathBytes` carries it as is).
        // Read by byte, not by Character: a status file of ~50 lines took ~0.6M instructions.
        guard let status = ProcFS.readBytes(dir + "/status") else { return nil }
        var command = ""
        var uid: UInt32?
        func blank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
        for line in status.split(separator: UInt8(ascii: "\n")) {
            if line.starts(with: "Name:".utf8) {
                command = PathBytes.string(line.dropFirst(5).drop(while: blank))
            } else if line.starts(with: "Uid:".utf8) {
                let ids = line.dropFirst(4).split(whereSeparator: blank).map { UInt32(String(decoding: $0, as: UTF8.self)) }
                uid = ids.count > 1 ? ids[1] : ids.first ?? nil
            }
        }
        let args = ProcFS.readBytes(dir + "/cmdline").map(ProcessDetails.splitCmdline) ?? []
        var started: Date?
        let ticks = ProcFS.readBytes(dir + "/stat").flatMap(ProcessDetails.startTicks(stat:))
        if let boot = bootTime, let ticks {
            started = boot.addingTimeInterval(Double(ticks) / Double(Sys.clockTicks))
        }
        var user: String?
        if let u = uid {
            if let cached = users[u] { user = cached } else {
                user = Sys.userName(u)
                users[u] = user
            }
        }
        return ProcessDetails(pid: pid, command: command, args: args, uid: uid, user: user, started: started,
                              startTicks: ticks, vm: QemuArgs.vmName(args))
    }

    /// /proc/PID/cmdline: arguments separated (and ended) by NUL.
    static func splitCmdline(_ bytes: [UInt8]) -> [String] {
        var b = bytes[...]
        if b.last == 0 { b = b.dropLast() }
        guard !b.isEmpty else { return [] }
        return b.split(separator: 0, omittingEmptySubsequences: false).map { PathBytes.string($0) }
    }

    /// Field 22 (starttime, clock ticks after boot) of /proc/PID/stat. The command name
    /// in field 2 may hold spaces and parentheses: count from the last `)`.
    static func startTicks(stat: String) -> UInt64? { startTicks(stat: Array(stat.utf8)) }

    static func startTicks(stat: [UInt8]) -> UInt64? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state); field 22 is fields[19].
        return fields.count > 19 ? UInt64(String(decoding: fields[19], as: UTF8.self)) : nil
    }

    /// `btime` of /proc/stat: boot time in seconds since the epoch.
    static func bootTime(procRoot: String) -> Date? {
        guard let text = ProcFS.read(procRoot + "/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            if let s = Double(line.dropFirst(6).trimmingBlanks) {
                return Date(timeIntervalSince1970: s)
            }
        }
        return nil
    }
}

/// What QEMU's command line says about VMs and images (qemu-options.hx).
public enum QemuArgs {
    /// Whether argv[0] names a QEMU program (qemu-system-*, qemu-kvm, qemu-img, qemu-io,
    /// qemu-nbd, qemu-storage-daemon).
    public static func isQemu(_ args: [String]) -> Bool {
        guard let first = args.first else { return false }
        let base = first.split(separator: "/").last.map(String.init) ?? first
        return base.hasPrefix("qemu")
    }

    /// The VM name of `-name guest=NAME,...` or `-name NAME` (also `--name`, `-name=...`).
    public static func vmName(_ args: [String]) -> String? {
        for (i, a) in args.enumerated() {
            var value: String?
            if a == "-name" || a == "--name" {
                value = i + 1 < args.count ? args[i + 1] : nil
            } else if a.hasPrefix("-name=") {
                value = String(a.dropFirst(6))
            } else if a.hasPrefix("--name=") {
                value = String(a.dropFirst(7))
            }
            guard let v = value else { continue }
            let parts = splitOptions(v)
            if let g = parts.first(where: { $0.hasPrefix("guest=") }) { return String(g.dropFirst(6)) }
            if let first = parts.first, !first.contains("=") { return first }
            return nil
        }
        return nil
    }

    /// Image paths named by `file=` / `filename=` keys (also `drive.file=`, `file.filename=`)
    /// in QEMU option strings, and `"filename":"..."` in JSON `-blockdev` arguments.
    public static func filePaths(_ args: [String]) -> [String] {
        var out: [String] = []
        for a in args {
            if a.hasPrefix("{") {
                out += jsonFilenames(a)
                continue
            }
            guard a.contains("file") else { continue }
            for part in splitOptions(a) {
                guard let eq = part.firstIndex(of: "=") else { continue }
                let key = part[..<eq]
                let last = key.split(separator: ".").last ?? key
                if last == "file" || last == "filename" {
                    let v = String(part[part.index(after: eq)...])
                    if !v.isEmpty && !v.contains(":") || v.hasPrefix("/") { out.append(v) }
                }
            }
        }
        return out
    }

    /// QEMU's option syntax: `a=b,c=d`, a doubled comma is a literal comma.
    static func splitOptions(_ s: String) -> [String] {
        var parts: [String] = []
        var cur = ""
        var it = Array(s)
        var i = 0
        while i < it.count {
            if it[i] == "," {
                if i + 1 < it.count && it[i + 1] == "," {
                    cur.append(",")
                    i += 2
                    continue
                }
                parts.append(cur)
                cur = ""
            } else {
                cur.append(it[i])
            }
            i += 1
        }
        parts.append(cur)
        it.removeAll()
        return parts
    }

    static func jsonFilenames(_ s: String) -> [String] {
        guard let tree = try? JSONDecoder().decode(JSONTree.self, from: Data(s.utf8)) else { return [] }
        var out: [String] = []
        func walk(_ v: JSONTree) {
            switch v {
            case .object(let d):
                for (k, x) in d {
                    if k == "filename", case .string(let p) = x { out.append(p) } else { walk(x) }
                }
            case .array(let a): a.forEach(walk)
            case .string, .other: break
            }
        }
        walk(tree)
        return out
    }

    /// Any JSON value, as far as `jsonFilenames` looks into it.
    private indirect enum JSONTree: Decodable {
        case object([String: JSONTree]), array([JSONTree]), string(String), other

        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let d = try? c.decode([String: JSONTree].self) {
                self = .object(d)
            } else if let a = try? c.decode([JSONTree].self) {
                self = .array(a)
            } else if let s = try? c.decode(String.self) {
                self = .string(s)
            } else {
                self = .other
            }
        }
    }
}
