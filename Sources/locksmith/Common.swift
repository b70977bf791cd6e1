import ArgumentParser
import Foundation
import ImageLock
import LockInspector

/// Exit statuses shared by every subcommand (DESIGN.md "Command line").
enum Status {
    static let free = ExitCode(0)
    static let held = ExitCode(1)
    static let couldNotCheck = ExitCode(2)
}

/// Prints one line on stderr: `locksmith: MESSAGE`.
func complain(_ message: String) {
    FileHandle.standardError.write(Data("locksmith: \(message)\n".utf8))
}

/// Writes bytes to stdout as they are (no copy into Data: `list --json` at 100k lock files
/// is ~70 MB). The corresponding C function is `write`.
func writeStandardOutput(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count {
            let n = write(1, b.baseAddress! + done, b.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            done += n
        }
    }
}

/// Runs `body`, turning a core error into its one-line reason and exit status 2.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ImageLockError {
        complain(e.description)
        throw Status.couldNotCheck
    }
}

/// `--exclusive` / `--shared`.
enum ModeFlag: String, EnumerableFlag {
    case exclusive, shared

    static func help(for value: ModeFlag) -> ArgumentHelp? {
        switch value {
        case .exclusive: return "A read-write user's lock (the default)."
        case .shared: return "A read-only user's lock; coexists with other shared locks."
        }
    }

    var mode: LockMode { self == .exclusive ? .exclusive : .shared }
}

/// `--scheme` for commands that take locks. A gluster:// image implies `gluster`.
enum SchemeChoice: String, ExpressibleByArgument, CaseIterable {
    case lockfile, qemu, gluster, off

    static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// The options that say where lock files live.
struct LockDirOption: ParsableArguments {
    @Option(name: .customLong("lock-dir"), help: ArgumentHelp(
        "Directory of the lock files of the lockfile scheme.", valueName: "dir"))
    var lockDirectory: String = "/var/tmp"

    /// LOCKSMITH_LOCK_FLAVOR=posix forces classic POSIX locks instead of OFD locks
    /// (for testing the fallback; not a user setting).
    func locker(glusterTimeout: Double = GlusterOptions.defaultTimeout) -> ImageLocker {
        let policy: LockFlavorPolicy =
            ProcessInfo.processInfo.environment["LOCKSMITH_LOCK_FLAVOR"] == "posix" ? .posixOnly : .automatic
        return ImageLocker(lockDirectory: lockDirectory, flavorPolicy: policy, glusterTimeout: glusterTimeout)
    }
}

/// `--timeout` for commands that may talk to a Gluster server.
struct GlusterOptions: ParsableArguments {
    static let defaultTimeout = 5.0

    @Option(help: ArgumentHelp(
        "Seconds to wait for a Gluster server at each step (connect, open, lock, release).", valueName: "secs"))
    var timeout: Double = GlusterOptions.defaultTimeout

    func validate() throws {
        guard timeout > 0 && timeout.isFinite else { throw ValidationError("--timeout takes a number of seconds > 0") }
    }

    /// The gluster CLI (statedump, clear-locks): it talks to this node's glusterd
    /// ($GLUSTER_SOCK when set); each call may take max(30 s, --timeout).
    var cli: GlusterCLI { GlusterCLI(timeout: max(30, timeout)) }
}

/// Names the holders of a busy gluster lock from a brick statedump when this node can take
/// one (a server node). Returns the contention unchanged, and why, when it cannot.
func nameGlusterHolders(_ c: Contention, image: String, mode: LockMode, cli: GlusterCLI)
    -> (contention: Contention, note: String?) {
    guard let url = try? GlusterURL(parsing: image) else { return (c, nil) }
    guard cli.isUsable else {
        return (c, "host unknown: naming it needs a statedump, which needs the gluster CLI and glusterd on this node (a server of the volume)")
    }
    do {
        let dump = try cli.statedump(volume: url.volume)
        let named = GlusterLockHolder.conflicting(in: dump.records, path: url.path, type: mode == .exclusive ? .write : .read)
        guard !named.isEmpty else {
            let missing = dump.bricksNotHere.isEmpty ? "" : " (bricks on other nodes: \(dump.bricksNotHere.joined(separator: ", ")))"
            return (c, "the statedump shows no holder on this node's bricks\(missing)")
        }
        var out = c
        out.glusterHolders = named
        return (out, nil)
    } catch {
        return (c, "host unknown: statedump failed: \(error)")
    }
}

/// Where the inspector looks: shared by `list`, `tui`, `audit` and `watch`.
struct ScanOptions: ParsableArguments {
    @Option(name: .customLong("lock-dir"), help: ArgumentHelp(
        "A directory of lock files (repeatable; default /var/tmp).", valueName: "dir"))
    var lockDirectories: [String] = []

    @Option(name: .customLong("images"), help: ArgumentHelp(
        "A directory of images, to name the images of lock files (repeatable).", valueName: "dir"))
    var imageDirectories: [String] = []

    @Option(name: .customLong("proc"), help: ArgumentHelp(
        "Read this directory instead of /proc (a copy or a test fixture).", valueName: "dir"))
    var procRoot: String = "/proc"

    /// The same options as command-line words, to hand them on to another subcommand.
    var arguments: [String] {
        lockDirectories.flatMap { ["--lock-dir", $0] } + imageDirectories.flatMap { ["--images", $0] }
            + ["--proc", procRoot]
    }

    var inspectorOptions: InspectorOptions {
        InspectorOptions(procRoot: procRoot,
                         lockDirectories: lockDirectories.isEmpty ? InspectorOptions.defaultLockDirectories : lockDirectories,
                         imageDirectories: imageDirectories)
    }
}

/// Output in JSON: one object, `schema` first, then `host` and `generated`, then the
/// payload's fields in sorted order (stable for diffs and scripts).
enum JSONOutput {
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return e
    }

    /// The object's text: the envelope, then the payload's own fields.
    static func render<T: Encodable>(_ payload: T, generated: Date = Date()) throws -> String {
        let e = encoder()
        let body = String(decoding: try e.encode(payload), as: UTF8.self)
        let head = "{\"schema\":1,\"host\":\(String(decoding: try e.encode(host), as: UTF8.self)),\"generated\":\"\(generated.formatted(.iso8601))\""
        precondition(body.hasPrefix("{"), "a JSON payload must be an object")
        return body == "{}" ? head + "}" : head + "," + body.dropFirst()
    }

    static func write<T: Encodable>(_ payload: T) throws {
        FileHandle.standardOutput.write(Data((try render(payload) + "\n").utf8))
    }

    static var host: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// "pid 123 on host h1 holds a WRITE lock on bytes 0-EOF (lk-owner h1:123)".
func describe(_ h: GlusterLockHolder) -> String {
    var s = h.pid.map { "pid \($0)" } ?? "a process"
    s += h.host.map { " on host \($0)" } ?? ""
    let end = h.range.end.map(String.init) ?? "EOF"
    s += " holds a \(h.type.rawValue) lock on bytes \(h.range.start)-\(end)"
    var extra: [String] = []
    if let o = h.owner { extra.append("lk-owner \(o)") }
    if let c = h.clientPID, c != h.pid { extra.append("client pid \(c)") }
    if !extra.isEmpty { s += " (" + extra.joined(separator: ", ") + ")" }
    return s
}

/// "pid 123 (qemu-nbd)" and what it holds.
func describe(_ h: LockHolder) -> String {
    var s = "pid \(h.pid) (\(h.command))"
    let l = h.lock
    let end = l.end.map(String.init) ?? "EOF"
    s += " holds a \(l.type) \(l.isOFD ? "OFD" : l.kind) lock on bytes \(l.start)-\(end)"
    if let fd = h.fd { s += " through fd \(fd)" }
    return s
}
