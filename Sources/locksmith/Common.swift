import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector

/// Exit statuses shared by every subcommand (README.md "Exit status").
enum ExitStatus {
    static let free = ExitCode(0)
    static let held = ExitCode(1)
    static let couldNotCheck = ExitCode(2)
}

/// A one-shot command's result, kept until the process ends: freeing 100k images one by
/// one would cost more than the rest of the exit, and the kernel takes the memory back at once.
nonisolated(unsafe) var keptUntilExit: Any?

/// Prints one line on stderr: `locksmith: MESSAGE`, made safe for a terminal (paths and
/// names in it are whatever their makers chose: `TerminalText`).
func complain(_ message: String) {
    writeStandardError("locksmith: \(TerminalText.escaped(message))\n")
}

/// Prints one line of text output on stdout, made safe for a terminal (`TerminalText`):
/// every human-readable line goes out through here (or `TerminalText.lines`), so a
/// control character from the system never reaches the terminal and a line stays one line.
func say(_ line: String) {
    print(TerminalText.escaped(line))
}

/// Writes bytes to stdout as they are (no copy into Data: `list --json` at 100k lock files
/// is ~70 MB). The corresponding C function is `write`.
func writeStandardOutput(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes(writeStandardOutput)
}

/// The same, of bytes lent for the call (`list --json`'s pieces).
func writeStandardOutput(_ b: UnsafeRawBufferPointer) {
    writeAll(1, b)
}

/// Text on stdout as it is (a prompt, the table: made safe by their callers).
func writeStandardOutput(_ text: String) {
    writeStandardOutput(Array(text.utf8))
}

/// Text on stderr as it is (made safe by the callers).
func writeStandardError(_ text: String) {
    Array(text.utf8).withUnsafeBytes { writeAll(2, $0) }
}

private func writeAll(_ fd: Int32, _ b: UnsafeRawBufferPointer) {
    var done = 0
    while done < b.count {
        let n = write(fd, b.baseAddress! + done, b.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        done += n
    }
}

/// Runs `body`, turning a core error into its one-line reason and exit status 2.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ImageLockError {
        complain(e.description)
        throw ExitStatus.couldNotCheck
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

    /// The scheme whose lock is taken; `off` takes none (`LockMode.off`) on the lockfile scheme.
    var lockScheme: LockScheme {
        switch self {
        case .qemu: return .qemu
        case .gluster: return .gluster
        case .lockfile, .off: return .lockfile
        }
    }
}

/// The options that say where lock files live.
struct LockDirOption: ParsableArguments {
    @Option(name: .customLong("lock-dir"), help: ArgumentHelp(
        "Directory of the lock files of the lockfile scheme.", valueName: "dir"))
    var lockDirectory: String = "/var/tmp"

    /// LOCKSMITH_LOCK_FLAVOR=posix forces classic POSIX locks instead of OFD locks
    /// (for testing the fallback; not a user setting).
    static var flavorPolicy: LockFlavorPolicy {
        ProcessInfo.processInfo.environment["LOCKSMITH_LOCK_FLAVOR"] == "posix" ? .posixOnly : .automatic
    }

    func locker(glusterTimeout: Double = GlusterOptions.defaultTimeout) -> ImageLocker {
        ImageLocker(lockDirectory: lockDirectory, flavorPolicy: LockDirOption.flavorPolicy, glusterTimeout: glusterTimeout)
    }
}

/// `hold` and `try` in a lock dir that does not protect a held lock file from other users
/// (`ImageLocker.lockDirectoryHazard`): a one-line warning on stderr, or with `--strict` a
/// refusal (exit 2) before any lock is taken. Only the lockfile scheme uses the lock dir.
func checkLockDirectory(_ locker: ImageLocker, image: String, scheme: LockScheme, strict: Bool) throws {
    guard scheme == .lockfile, !GlusterURL.looksLikeURL(image), let hazard = locker.lockDirectoryHazard() else { return }
    if strict {
        complain("refusing to lock (--strict): " + hazard)
        throw ExitStatus.couldNotCheck
    }
    complain("warning: " + hazard)
}

/// `--timeout` for commands that may talk to a Gluster server.
struct GlusterOptions: ParsableArguments {
    static let defaultTimeout = ScanRequest.defaultGlusterTimeout

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

/// `--lock-dir` and `--images`: the dirs a scan of this host lists (`ScanOptions`, and
/// `signal`, which scans only these).
struct ScanDirectoryOptions: ParsableArguments {
    @Option(name: .customLong("lock-dir"), help: lockDirHelp)
    var lockDirectories: [String] = []

    @Option(name: .customLong("images"), help: imagesHelp)
    var imageDirectories: [String] = []

    static let lockDirHelp = ArgumentHelp("A directory of lock files (repeatable; default /var/tmp).", valueName: "dir")
    static let imagesHelp = ArgumentHelp("A directory of images, to name the images of lock files (repeatable).", valueName: "dir")
}

/// Where the inspector looks: shared by `list`, `tui`, `audit` and `watch`.
struct ScanOptions: ParsableArguments {
    /// These options in a usage line. ArgumentParser shortens a synopsis of more than 12
    /// options to `<options>`, so the commands that take these spell their usage out with it.
    static let usage = "[--lock-dir <dir> ...] [--images <dir> ...] [--proc <dir>] "
        + "[--gluster <host[:port]/volume> ...] [--gluster-path <dir>] [--all-files] [--timeout <secs>] [--force] "
        + "[--no-statedump]"

    // The same options as ScanDirectoryOptions, declared here rather than as its group:
    // every option group is a type more for ArgumentParser to reflect at each parse, each
    // type's first conformance checks a scan of the binary's ~4,200 conformance records.
    @Option(name: .customLong("lock-dir"), help: ScanDirectoryOptions.lockDirHelp)
    var lockDirectories: [String] = []

    @Option(name: .customLong("images"), help: ScanDirectoryOptions.imagesHelp)
    var imageDirectories: [String] = []

    @Option(name: .customLong("proc"), help: ArgumentHelp(
        "Read this directory instead of /proc (a copy or a test fixture).", valueName: "dir"))
    var procRoot: String = "/proc"

    @Option(name: .customLong("gluster"), help: ArgumentHelp(
        "Also scan this Gluster volume through libgfapi: probe each image file on it with F_GETLK (repeatable).",
        valueName: "host[:port]/volume"))
    var glusterVolumes: [String] = []

    @Option(name: .customLong("gluster-path"), help: ArgumentHelp(
        "With --gluster: walk the volumes from this directory instead of their root.", valueName: "dir"))
    var glusterPath: String?

    @Flag(name: .customLong("all-files"), help: ArgumentHelp(
        "With --gluster: probe every regular file, not only names ending in .\(GlusterScan.imageSuffixes.joined(separator: ", ."))."))
    var allFiles = false

    @Option(help: ArgumentHelp(
        "With --gluster: seconds to wait for a Gluster server at each step (connect, read a directory, open, F_GETLK).",
        valueName: "secs"))
    var timeout: Double = GlusterOptions.defaultTimeout

    @Flag(help: ArgumentHelp(
        "With --gluster: take one brick statedump per volume to name every holder's host, FUSE mounts too (needs a server node: the gluster CLI and glusterd here; `list` does it by default)."))
    var force = false

    @Flag(name: .customLong("no-statedump"), help: ArgumentHelp(
        "Take no brick statedump (`list` takes one per Gluster volume by default on a server node, of --gluster volumes and of FUSE mounts whose locks no local process holds)."))
    var noStatedump = false

    func validate() throws {
        for v in glusterVolumes {
            do {
                _ = try GlusterURL(parsingVolume: v)
            } catch let e as ImageLockError {
                throw ValidationError("--gluster \(e)")
            }
        }
        guard timeout > 0 && timeout.isFinite else { throw ValidationError("--timeout takes a number of seconds > 0") }
        if glusterVolumes.isEmpty {
            if glusterPath != nil { throw ValidationError("--gluster-path needs --gluster HOST[:PORT]/VOLUME") }
            if allFiles { throw ValidationError("--all-files needs --gluster HOST[:PORT]/VOLUME") }
            if force { throw ValidationError("--force needs --gluster HOST[:PORT]/VOLUME (it takes their statedumps)") }
        }
        if let p = glusterPath, p.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
            throw ValidationError("--gluster-path must not contain . or ..")
        }
    }

    /// These options as the library takes them.
    var request: ScanRequest {
        var r = ScanRequest(lockDirectories: lockDirectories, imageDirectories: imageDirectories, procRoot: procRoot)
        r.glusterVolumes = glusterVolumes
        r.glusterPath = glusterPath
        r.allFiles = allFiles
        r.timeout = timeout
        r.force = force
        r.noStatedump = noStatedump
        return r
    }

    var inspectorOptions: InspectorOptions { request.inspectorOptions(statedumpByDefault: false) }

    /// With `statedumpByDefault` (`list`), a statedump is taken unless --no-statedump.
    func inspectorOptions(statedumpByDefault: Bool) -> InspectorOptions {
        request.inspectorOptions(statedumpByDefault: statedumpByDefault)
    }
}

/// Output in JSON: the reports are written by LockInspector (`SnapshotJSON`, `VerdictJSON`,
/// `ReportJSON`); this is where they go, and the host name in their envelope.
enum JSONOutput {
    /// One report and its newline on stdout.
    static func write(_ report: [UInt8]) {
        writeStandardOutput(report)  // not copied to append the newline (MBs with 10k findings)
        writeStandardOutput([UInt8(ascii: "\n")])
    }

    static var host: String { Sys.hostName }
}
