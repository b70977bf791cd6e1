#if canImport(Glibc)
import Glibc
#endif

/// One posix (fcntl) lock from a brick statedump: the only place where a Gluster lock's
/// owner and client can be read (gfapi cannot read them: docs/ARCHITECTURE.md, "Facts").
///
/// From a section `[xlator.features.locks.VOL-locks.inode]`, its `path=` line and lines like
/// `posixlk.posixlk[0](ACTIVE)=type=WRITE, whence=0, start=0, len=0, pid = 13197,
/// owner=6d79686f73743a31-323334, client=0x7fd4b800de08, connection-id=CTX_ID:…-GRAPH_ID:0-
/// PID:13197-HOST:vm-PC_NAME:lsvol-client-0-RECON_NO:-0, granted at 2026-11-28 03:42:58 +0000`.
public struct GlusterLockRecord: Hashable, Sendable, Codable {
    public enum State: String, Hashable, Sendable, Codable {
        /// Granted.
        case active = "ACTIVE"
        /// Waiting (F_SETLKW) for a conflicting lock.
        case blocked = "BLOCKED"
    }

    /// The volume (from the locks translator's name `VOL-locks`).
    public var volume: String?
    /// The file's path in the volume (`/vm1.qcow2`).
    public var path: String
    public var state: State
    public var type: LockType
    /// start and len as the lock was asked for (whence 0; len 0 = to end of file).
    public var range: ByteRange
    /// `pid = N`: the locking process as the client reported it (for FUSE the process that
    /// called fcntl; for gfapi the client's pid).
    public var pid: Int32?
    /// The lk-owner.
    public var owner: GlusterLockOwner?
    /// The client connection's id on the brick, as printed.
    public var connectionID: String?
    /// HOST from the connection-id: the client's hostname when it connected (for a FUSE
    /// mount, the host that made the mount).
    public var clientHost: String?
    /// PID from the connection-id: the client process (a gfapi program; for FUSE the
    /// mount's glusterfs daemon).
    public var clientPID: Int32?
    /// PC_NAME from the connection-id (`lsvol-client-0`: which brick client).
    public var clientName: String?
    /// When it was granted (or began to wait), as printed.
    public var since: String?

    public init(volume: String?, path: String, state: State, type: LockType, range: ByteRange, pid: Int32?,
                owner: GlusterLockOwner?, connectionID: String?, clientHost: String?, clientPID: Int32?,
                clientName: String?, since: String?) {
        self.volume = volume
        self.path = path
        self.state = state
        self.type = type
        self.range = range
        self.pid = pid
        self.owner = owner
        self.connectionID = connectionID
        self.clientHost = clientHost
        self.clientPID = clientPID
        self.clientName = clientName
        self.since = since
    }

    /// The holder's host: the one in a locksmith lk-owner (`<hostname>:<pid>`), else the
    /// connection's HOST.
    public var host: String? { owner?.locksmithHolder?.host ?? clientHost }

    /// The holder's pid: a locksmith lk-owner's, else `pid = N`.
    public var holderPID: Int32? { owner?.locksmithHolder?.pid ?? pid }

    /// Whether the lock was taken by locksmith (its lk-owner is `<hostname>:<pid>`).
    public var isLocksmith: Bool { owner?.locksmithHolder != nil }

    public var holder: GlusterLockHolder {
        GlusterLockHolder(type: type, range: range, pid: holderPID, host: host, clientPID: clientPID,
                          owner: owner, source: .statedump)
    }
}

extension GlusterLockRecord {
    /// Whether this is a lock (or wait) in `state` on the file at `path` in the volume: its
    /// path by bytes (`PathBytes.same`: a name and its NFD twin are two files on a volume too).
    public func isOn(_ path: String, _ state: State) -> Bool {
        self.state == state && PathBytes.same(self.path, path)
    }
}

/// Reading brick statedumps: pure parsing of dump text, and taking a dump through the
/// `gluster` CLI (on a server node) with `GlusterCLI.statedump`.
public enum GlusterStatedump {
    /// Every posix lock in the text of one brick statedump file, in order.
    public static func locks(in text: String) -> [GlusterLockRecord] {
        var records: [GlusterLockRecord] = []
        var inLocks = false
        var volume: String?
        var path: String?
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.hasPrefix("[") {
                // [xlator.features.locks.lsvol-locks.inode]
                let name = line.dropFirst().prefix(while: { $0 != "]" })
                inLocks = name.hasPrefix("xlator.features.locks.") && name.hasSuffix(".inode")
                path = nil
                volume = nil
                if inLocks {
                    let xl = name.dropFirst("xlator.features.locks.".count).dropLast(".inode".count)
                    volume = xl.hasSuffix("-locks") ? String(xl.dropLast("-locks".count)) : String(xl)
                }
                continue
            }
            guard inLocks else { continue }
            if line.hasPrefix("path=") {
                path = String(line.dropFirst("path=".count))
            } else if line.hasPrefix("posixlk.posixlk["), let p = path, let r = record(line, path: p, volume: volume) {
                records.append(r)
            }
        }
        return records
    }

    /// One `posixlk.posixlk[N](STATE)=k=v, k = v, ..., granted at TIME` line.
    static func record(_ line: Substring, path: String, volume: String?) -> GlusterLockRecord? {
        guard let open = line.firstIndex(of: "("), let close = line[open...].firstIndex(of: ")"),
              let state = GlusterLockRecord.State(rawValue: String(line[line.index(after: open)..<close])) else { return nil }
        let body = line[line.index(after: close)...].drop(while: { $0 == "=" })
        var fields: [String: String] = [:]
        var since: String?
        for part in body.split(separator: ",") {
            let item = part.trimmingSpaces
            if item.hasPrefix("granted at ") || item.hasPrefix("blocked at ") {
                since = String(item.dropFirst("granted at ".count))
            } else if let eq = item.firstIndex(of: "=") {
                fields[String(item[..<eq].trimmingSpaces)] = String(item[item.index(after: eq)...].trimmingSpaces)
            }
        }
        guard let t = fields["type"], let type = LockType(rawValue: t),
              let start = fields["start"].flatMap({ Int64($0) }), let len = fields["len"].flatMap({ Int64($0) }) else {
            return nil
        }
        let conn = fields["connection-id"]
        return GlusterLockRecord(
            volume: volume, path: path, state: state, type: type, range: ByteRange(start: start, length: len),
            pid: fields["pid"].flatMap { Int32($0) },
            owner: fields["owner"].flatMap { GlusterLockOwner(statedumpHex: $0) },
            connectionID: conn,
            clientHost: conn.flatMap { between($0, "-HOST:", "-PC_NAME:") },
            clientPID: conn.flatMap { between($0, "-PID:", "-HOST:") }.flatMap { Int32($0) },
            clientName: conn.flatMap { between($0, "-PC_NAME:", "-RECON_NO:") },
            since: since)
    }

    /// The text between the first `start` and the next `end` after it.
    static func between(_ s: String, _ start: String, _ end: String) -> String? {
        guard let a = s.firstRange(of: start), let b = s[a.upperBound...].firstRange(of: end) else { return nil }
        let v = s[a.upperBound..<b.lowerBound]
        return v.isEmpty ? nil : String(v)
    }

    /// The statedump file name prefix of a brick directory: the path without its leading
    /// `/`, with `/` replaced by `-` (`/data/bricks/b1` → `data-bricks-b1`).
    public static func filePrefix(brickPath: String) -> String {
        String(brickPath.drop(while: { $0 == "/" }).map { $0 == "/" ? "-" : $0 })
    }
}

/// A statedump taken with `GlusterCLI.statedump`: the files read and the locks in them.
public struct GlusterStatedumpResult: Sendable {
    /// The dump files read (one per brick of the volume on this node).
    public var files: [String]
    /// Bricks of the volume (`HOST:/PATH`) with no dump file here: they are on other
    /// nodes, so their locks are not in `records`.
    public var bricksNotHere: [String]
    public var records: [GlusterLockRecord]
}

/// What `gluster volume clear-locks VOL PATH kind granted posix` did.
public struct GlusterClearLocksResult: Sendable, Hashable {
    public var grantedCleared: Int
    public var blockedCleared: Int
    /// The CLI's output, trimmed.
    public var output: String
}

/// The `gluster` command-line tool, which talks to the glusterd of this node: it works on
/// server nodes (those running glusterd), not on clients.
public struct GlusterCLI: Sendable {
    /// glusterd's CLI socket (`--glusterd-sock`); nil = the default (/var/run/glusterd.socket).
    public var glusterdSocket: String?
    /// Seconds each CLI call may take before it is killed.
    public var timeout: Double
    /// The program; found on PATH or in /usr/sbin.
    public var executable: String

    /// `glusterdSocket` defaults to $GLUSTER_SOCK when that is set (test beds), else glusterd's default.
    public init(glusterdSocket: String? = GlusterCLI.socketFromEnvironment, timeout: Double = 30,
                executable: String = "gluster") {
        self.glusterdSocket = glusterdSocket
        self.timeout = timeout
        self.executable = executable
    }

    public static var socketFromEnvironment: String? {
        guard let v = getenv("GLUSTER_SOCK"), v.pointee != 0 else { return nil }
        return String(cString: v)
    }

    /// Whether the CLI exists here and has a glusterd socket to talk to (a server node).
    public var isUsable: Bool {
        Subprocess.find(executable) != nil && access(glusterdSocket ?? "/var/run/glusterd.socket", F_OK) == 0
    }

    /// Runs `gluster --mode=script [--glusterd-sock=S] ARGS`; a non-zero exit is an error
    /// carrying the CLI's message.
    @discardableResult
    func run(_ args: [String], timeout: Double? = nil) throws -> String {
        let shown = "gluster " + args.joined(separator: " ")
        guard let exe = Subprocess.find(executable) else {
            throw ImageLockError.glusterCommandFailed(command: shown, status: 127,
                                                      message: "\(executable) not found (the gluster CLI comes with glusterfs-server/glusterfs-cli and works on server nodes)")
        }
        var argv = [exe, "--mode=script"]
        if let s = glusterdSocket { argv.append("--glusterd-sock=\(s)") }
        argv += args
        let limit = timeout ?? self.timeout
        let r = Subprocess.run(argv, timeout: limit)
        if r.timedOut {
            throw ImageLockError.glusterCommandFailed(command: shown, status: r.status,
                                                      message: "no answer within \(ImageLockError.seconds(limit))")
        }
        guard r.status == 0 else {
            let text = (r.stderr + "\n" + r.stdout).split(separator: "\n").map { $0.trimmingSpaces }.filter { !$0.isEmpty }
            throw ImageLockError.glusterCommandFailed(command: shown, status: r.status,
                                                      message: text.map(String.init).joined(separator: "; "))
        }
        return r.stdout
    }

    /// `gluster volume get VOL server.statedump-path` (default /var/run/gluster).
    public func statedumpDirectory(volume: String) throws -> String {
        let out = try run(["volume", "get", volume, "server.statedump-path"])
        return GlusterCLI.optionValue("server.statedump-path", in: out) ?? "/var/run/gluster"
    }

    /// The value of `option` in the output of `gluster volume get VOL OPTION`, plain
    /// (`OPTION   VALUE` rows under a header) or `--xml` (`<Option>OPTION</Option>` then
    /// `<Value>VALUE</Value>`). GlusterFS 9 and later print an option left unset as
    /// `VALUE (DEFAULT)` in both forms; the suffix is not part of the value.
    public static func optionValue(_ option: String, in output: String) -> String? {
        var value: Substring?
        if let o = output.firstRange(of: "<Option>" + option + "</Option>") {
            let rest = output[o.upperBound...]
            if let a = rest.firstRange(of: "<Value>"), let b = rest[a.upperBound...].firstRange(of: "</Value>") {
                value = rest[a.upperBound..<b.lowerBound]
            }
        } else {
            for line in output.split(separator: "\n") where line.hasPrefix(option) {
                let rest = line.dropFirst(option.count)
                guard rest.first?.isWhitespace == true else { continue }
                value = rest
                break
            }
        }
        guard var v = value?.trimmingSpaces else { return nil }
        if v.hasSuffix(" (DEFAULT)") { v = v.dropLast(" (DEFAULT)".count).trimmingSpaces }
        return v.isEmpty ? nil : String(v)
    }

    /// The bricks of a volume as `HOST:/PATH`, from `gluster volume info VOL`.
    public func bricks(volume: String) throws -> [String] {
        try run(["volume", "info", volume]).split(separator: "\n").compactMap { line in
            // "Brick1: 127.0.0.2:/tmp/locksmith-gluster/bricks/b1"
            guard line.hasPrefix("Brick"), let colon = line.firstIndex(of: ":"),
                  line[line.index(after: line.startIndex)..<colon].dropFirst(4).allSatisfy(\.isNumber) else { return nil }
            let v = line[line.index(after: colon)...].trimmingSpaces
            return v.isEmpty ? nil : String(v)
        }
    }

    /// Takes a statedump of the volume's bricks (`gluster volume statedump VOL`) and reads
    /// the dump files that appear in the statedump directory on this node, waiting up to
    /// `wait` seconds for them to be complete. With `removeFiles` the new dump files are
    /// deleted once read (each dump is a few hundred KiB; glusterd never deletes them).
    /// Needs a server node; only bricks on this node are covered (`bricksNotHere`).
    public func statedump(volume: String, wait: Double = 5, removeFiles: Bool = true) throws -> GlusterStatedumpResult {
        let dir = try statedumpDirectory(volume: volume)
        let bricks = try bricks(volume: volume)
        let prefixes = bricks.map { brick -> (brick: String, prefix: String) in
            let path = brick.firstIndex(of: "/").map { String(brick[$0...]) } ?? brick
            return (brick, GlusterStatedump.filePrefix(brickPath: path) + ".")
        }
        let before = Set(GlusterCLI.list(dir))
        try run(["volume", "statedump", volume])
        // The CLI answers once the bricks were told; each brick then writes its file and
        // ends it with DUMP-END-TIME.
        let deadline = Sys.monotonicSeconds() + wait
        var complete: [String: String] = [:]  // file -> text
        var lastNew = Sys.monotonicSeconds()
        while true {
            let fresh = GlusterCLI.list(dir).filter { name in
                !before.contains(name) && name.contains(".dump.") && prefixes.contains { name.hasPrefix($0.prefix) }
            }
            for name in fresh where complete[name] == nil {
                if let text = GlusterCLI.read(dir + "/" + name), text.contains("DUMP-END-TIME") {
                    complete[name] = text
                    lastNew = Sys.monotonicSeconds()
                }
            }
            let coveredBricks = prefixes.filter { p in complete.keys.contains { $0.hasPrefix(p.prefix) } }.count
            if coveredBricks == prefixes.count { break }
            // Some bricks may live on other nodes: stop once some arrived and no more came for a while.
            if !complete.isEmpty && Sys.monotonicSeconds() - lastNew > 0.5 { break }
            if Sys.monotonicSeconds() > deadline { break }
            usleep(50_000)
        }
        if complete.isEmpty {
            throw ImageLockError.glusterCommandFailed(
                command: "gluster volume statedump \(volume)", status: 0,
                message: "no dump file of its bricks appeared in \(dir) on this node within \(ImageLockError.seconds(wait)) (are its bricks on other nodes?)")
        }
        let names = complete.keys.sorted()
        let records = names.flatMap { GlusterStatedump.locks(in: complete[$0]!) }.filter { $0.volume == nil || $0.volume == volume }
        if removeFiles {
            for n in names { unlink(dir + "/" + n) }
        }
        let notHere = prefixes.filter { p in !names.contains { $0.hasPrefix(p.prefix) } }.map(\.brick)
        return GlusterStatedumpResult(files: names.map { dir + "/" + $0 }, bricksNotHere: notHere, records: records)
    }

    /// `gluster volume clear-locks VOL PATH kind granted posix`: drops every granted posix
    /// lock on PATH, whoever holds it. The holders are not told.
    public func clearGrantedLocks(volume: String, path: String) throws -> GlusterClearLocksResult {
        let out = try run(["volume", "clear-locks", volume, path, "kind", "granted", "posix"])
        var granted = 0, blocked = 0
        // "vm:/…/bricks/b1/: posix blocked locks=0 granted locks=1"
        for line in out.split(separator: "\n") {
            granted += GlusterCLI.count(after: "granted locks=", in: line)
            blocked += GlusterCLI.count(after: "blocked locks=", in: line)
        }
        return GlusterClearLocksResult(grantedCleared: granted, blockedCleared: blocked,
                                       output: String(out.trimmingSpaces))
    }

    static func count(after key: String, in line: Substring) -> Int {
        guard let r = line.firstRange(of: key) else { return 0 }
        return Int(line[r.upperBound...].prefix(while: \.isNumber)) ?? 0
    }

    static func list(_ dir: String) -> [String] { Sys.names(dir) ?? [] }

    static func read(_ path: String) -> String? {
        Sys.readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension StringProtocol {
    var trimmingSpaces: SubSequence {
        let a = firstIndex(where: { !$0.isWhitespace }) ?? endIndex
        let b = lastIndex(where: { !$0.isWhitespace }).map { index(after: $0) } ?? a
        return self[a..<Swift.max(a, b)]
    }
}
