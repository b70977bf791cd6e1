import Foundation
import ImageLock
import XCTest

/// A fresh directory under /tmp, removed with everything in it when released.
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "t") {
        var template = Array("/tmp/locksmith-\(label)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The directory `path` itself, emptied first: for outputs that depend on the path's
    /// bytes (lock-file names hash it, and lists are ordered by them).
    public init(exactly path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        self.path = path
    }

    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `bytes` (default: 1 MiB of zeros) to `name` and returns its path.
    @discardableResult
    public func makeFile(_ name: String, size: Int = 1 << 20) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(count: size))
        return p
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// What a finished command printed and how it ended.
public struct RunResult: CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var description: String { "status \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

public enum Run {
    /// Runs a program to its end (at most `timeout` seconds, then it is killed) and captures its output.
    @discardableResult
    public static func capture(_ exe: String, _ args: [String], timeout: Double = 60,
                               environment: [String: String]? = nil) throws -> RunResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        if let env = environment {
            p.environment = ProcessInfo.processInfo.environment.merging(env) { _, new in new }
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Read both pipes while it runs so that a chatty child cannot block on a full pipe.
        nonisolated(unsafe) var outData = Data(), errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
        }
        p.waitUntilExit()
        group.wait()
        return RunResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }

    /// The path of a program on PATH; fails the test with a clear message when it is missing.
    public static func tool(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        for dir in dirs {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        XCTFail("\(name) is not installed; `make test-deps` installs the test dependencies", file: file, line: line)
        throw XCTSkip("missing \(name)")
    }

    /// The package's root directory (README.md, man/, scripts/).
    public static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/_TestSupport/TestSupport.swift
        return url.path
    }()

    /// The locksmith binary built alongside the tests.
    public static var locksmith: String {
        let dir = Bundle.main.bundleURL.path  // .build/<config> for swift test on Linux
        let candidates = [dir + "/locksmith", dir + "/../debug/locksmith"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Runs the locksmith binary. Whatever it prints with --json is held against the
    /// command's JSON Schema (docs/schema/), so every test that reads locksmith's JSON also
    /// checks the contract.
    @discardableResult
    public static func locksmith(_ args: [String], timeout: Double = 60, environment: [String: String]? = nil,
                                 file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = try capture(locksmith, args, timeout: timeout, environment: environment)
        if args.contains("--json"), !r.stdout.isEmpty {
            let command = args.first.flatMap { $0.hasPrefix("-") ? nil : $0 } ?? "list"
            if ["list", "why", "try", "audit", "watch", "processes"].contains(command) {
                JSONSchema.check(r.stdout, command: command, file: file, line: line)
            }
        }
        return r
    }
}

/// locksmith's JSON Schemas (docs/schema/), checked by scripts/check-json with Debian's
/// python3-jsonschema.
public enum JSONSchema {
    public static func check(_ json: String, command: String, file: StaticString = #filePath, line: UInt = #line) {
        let dir = TempDir("schema")
        let path = dir.file("out.json")
        do {
            try json.write(toFile: path, atomically: false, encoding: .utf8)
            let r = try Run.capture(GlusterTestBed.repository + "/scripts/check-json", [command, path])
            XCTAssertEqual(r.status, 0, "locksmith \(command) --json does not match docs/schema/\(command).json:\n"
                           + r.stderr + "\n" + String(json.prefix(2000)), file: file, line: line)
        } catch {
            XCTFail("cannot check the JSON Schema: \(error)", file: file, line: line)
        }
    }
}

/// A real process running in the background (holding a lock, usually).
public final class Background: @unchecked Sendable {
    public let process = Process()
    public var pid: Int32 { process.processIdentifier }

    public init(_ exe: String, _ args: [String], environment: [String: String]? = nil) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        if let env = environment {
            process.environment = ProcessInfo.processInfo.environment.merging(env) { _, new in new }
        }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// A python3 process holding a classic POSIX lock (`fcntl.lockf`) on the whole of
    /// `path`: exclusive (the file opened read-write) or shared (read-only), for a minute.
    public static func lockf(_ path: String, exclusive: Bool) throws -> Background {
        try Background(try Run.tool("python3"), ["-c", """
            import fcntl, sys, time
            f = open(sys.argv[1], "\(exclusive ? "r+" : "r")")
            fcntl.lockf(f, fcntl.\(exclusive ? "LOCK_EX" : "LOCK_SH"))
            time.sleep(60)
            """, path])
    }

    /// Waits until the kernel lists at least `count` locks (not waiters) on `path`'s inode.
    public func waitForLocks(on path: String, count: Int = 1, timeout: Double = 15,
                             file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if ProcLocks.rows(for: path).filter({ !$0.isWaiter }).count >= count { return }
            if !process.isRunning {
                XCTFail("process \(pid) ended before it took its lock on \(path)", file: file, line: line)
                return
            }
            usleep(10_000)
        }
        XCTFail("no lock appeared on \(path) within \(timeout) s", file: file, line: line)
    }

    /// SIGTERM, then SIGKILL after a second; waits for the end.
    public func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(1)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// The kernel's lock table, for checks that compare against the truth.
public enum ProcLocks {
    public static func inode(of path: String) -> UInt64? {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    /// The /proc/locks rows on `path`'s inode (any device: tests use one filesystem).
    public static func rows(for path: String) -> [KernelLock] {
        guard let ino = inode(of: path) else { return [] }
        return ProcFS.locks(procRoot: "/proc").filter { $0.inode == ino }
    }

    /// The table with the IDs left out, sorted: equal before and after = nothing changed.
    /// With `paths`, only the rows of those files (other tests running at the same time
    /// change the rest).
    public static func table(of paths: [String]? = nil) -> [String] {
        let inodes = paths.map { Set($0.compactMap { inode(of: $0) }.map { ":\($0) " }) }
        return ((try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? "")
            .split(separator: "\n")
            .filter { row in inodes.map { $0.contains { row.contains($0) } } ?? true }
            .map { $0.split(separator: " ").dropFirst().joined(separator: " ") }
            .sorted()
    }
}

/// QEMU images made with the real qemu-img.
public enum Qemu {
    @discardableResult
    public static func createImage(_ path: String, format: String = "qcow2", size: String = "16M",
                                   backing: String? = nil) throws -> String {
        var args = ["create", "-q", "-f", format]
        if let b = backing { args += ["-b", b, "-F", "qcow2"] }
        args += [path]
        if backing == nil { args.append(size) }
        let r = try Run.capture(try Run.tool("qemu-img"), args)
        XCTAssertEqual(r.status, 0, "qemu-img create: \(r)")
        return path
    }
}

/// The GlusterFS test bed that scripts/run-tests (`make test`) starts: a glusterd and a
/// single-brick volume on 127.0.0.2 (scripts/gluster-testbed). Tests read where it is
/// from the environment it exports.
public struct GlusterTestBed: Sendable {
    public var host: String
    public var port: Int
    public var volume: String
    public var socket: String
    public var stateDirectory: String
    public var dumpDirectory: String

    /// The repository (for scripts/gluster-testbed).
    public static var repository: String { Run.repository }

    /// The running test bed; fails the test (and skips the rest of it) when the environment
    /// does not name one.
    public static func require(file: StaticString = #filePath, line: UInt = #line) throws -> GlusterTestBed {
        let env = ProcessInfo.processInfo.environment
        guard let host = env["GLUSTER_HOST"], !host.isEmpty, let volume = env["GLUSTER_VOLUME"],
              let sock = env["GLUSTER_SOCK"], let state = env["GLUSTER_STATEDIR"] else {
            XCTFail("""
                GLUSTER_HOST is not set: the Gluster tests need the test bed. Run them through \
                `make test` or scripts/run-tests (they start and stop it), or first run \
                eval "$(scripts/gluster-testbed start)" in this shell
                """, file: file, line: line)
            throw XCTSkip("no Gluster test bed")
        }
        return GlusterTestBed(host: host, port: Int(env["GLUSTER_PORT"] ?? "") ?? 24007, volume: volume, socket: sock,
                              stateDirectory: state, dumpDirectory: env["GLUSTER_DUMPDIR"] ?? state + "/dumps")
    }

    /// gluster://HOST/VOLUME/NAME
    public func url(_ name: String) -> String {
        "gluster://\(host)\(port == 24007 ? "" : ":\(port)")/\(volume)/\(name)"
    }

    /// The FUSE mount the tests share (made on first use; `gluster-testbed stop` unmounts it).
    public func mountPoint(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let dir = stateDirectory + "/mnt-tests"
        var st = stat()
        let reachable = stat(dir, &st) == 0
        let why = errno
        if reachable, try Run.capture("/usr/bin/mountpoint", ["-q", dir]).status == 0 { return dir }
        if !reachable && why == ENOTCONN {
            // A mount whose glusterfs client died (the brick-killing test can do that): drop it.
            try Run.capture("/bin/umount", ["-l", dir])
        }
        // The mount leaves a glusterfs daemon behind. Foundation's Process learns that its
        // child ended when an fd it passes down is closed, and the daemon would inherit and
        // keep that fd (waitUntilExit then never returns): close every fd above 2 first.
        let closeAndRun = "for fd in $(ls /proc/self/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done; exec \"$@\""
        let r = try Run.capture("/bin/bash", ["-c", closeAndRun, "bash", GlusterTestBed.repository + "/scripts/gluster-testbed",
                                              "mount", dir, stateDirectory])
        XCTAssertEqual(r.status, 0, "gluster-testbed mount: \(r)", file: file, line: line)
        return dir
    }

    /// Creates a file of `size` bytes on the volume (through the FUSE mount) with a name
    /// unique to this run, and returns its name in the volume.
    public func makeFile(_ label: String, size: Int = 1 << 20) throws -> String {
        let name = "\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img"
        let path = try mountPoint() + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(count: size)), "create \(path)")
        return name
    }

    /// The gluster CLI against the test bed's glusterd.
    public var cli: GlusterCLI { GlusterCLI(glusterdSocket: socket) }

    /// Polls (in this process, through libgfapi) until an exclusive lock on `url` is
    /// `held` (or free); false when that did not happen within `timeout` seconds.
    @discardableResult
    public func waitUntil(_ url: String, held: Bool, timeout: Double = 15,
                          file: StaticString = #filePath, line: UInt = #line) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            do {
                let r = try ImageLocker().probe(url, scheme: .gluster, mode: .exclusive)
                if r.acquired != held { return true }
            } catch {
                last = " (last error: \(error))"
            }
            usleep(50_000)
        }
        XCTFail("\(url) did not become \(held ? "held" : "free") within \(timeout) s\(last)", file: file, line: line)
        return false
    }

    /// The pid of the volume's brick process (glusterfsd) when it is online, from `gluster volume status`.
    public func brickPID() throws -> Int32? {
        let r = try Run.capture("/usr/sbin/gluster", ["--mode=script", "--glusterd-sock=\(socket)", "volume", "status", volume, "--xml"])
        func value(_ tag: String) -> String? {
            guard let a = r.stdout.range(of: "<\(tag)>"), let b = r.stdout[a.upperBound...].range(of: "</\(tag)>") else { return nil }
            return String(r.stdout[a.upperBound..<b.lowerBound])
        }
        guard let pid = value("pid").flatMap({ Int32($0) }), pid > 0 else { return nil }
        return pid
    }

    /// Starts the volume's brick again after a test killed it. glusterd notices a dead
    /// brick only after a moment, and until then `start force` does nothing: retry.
    public func restartBrick(timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last: RunResult?
        while Date() < deadline {
            // glusterd may still name the killed brick's pid: it must be a live, running process.
            if let pid = try brickPID(), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               !stat.contains(") Z "), !stat.contains(") T ") {
                // FUSE clients reconnect to the new brick port within a few seconds.
                let mount = stateDirectory + "/mnt-tests"
                while Date() < deadline && access(mount + "/.", F_OK) != 0 && errno == ENOTCONN { usleep(200_000) }
                return
            }
            last = try Run.capture("/usr/sbin/gluster", ["--mode=script", "--glusterd-sock=\(socket)", "volume", "start", volume, "force"])
            usleep(500_000)
        }
        XCTFail("the brick did not come back within \(timeout) s: \(last.map { "\($0)" } ?? "")", file: file, line: line)
    }
}

/// A program run under `unshare --uts` with its own host name: a second "host" on this machine.
public enum OtherHost {
    public static func argv(_ hostname: String, _ exe: String, _ args: [String]) -> (String, [String]) {
        ("/usr/bin/unshare", ["--uts", "/bin/sh", "-c", "hostname \"$0\" && exec \"$@\"", hostname, exe] + args)
    }
}

/// Prometheus' own linter, `promtool check metrics` (Debian's package prometheus).
public enum Promtool {
    /// Fails the test unless promtool accepts `text` without a complaint.
    public static func check(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = TempDir("prom")
        let path = dir.file("m.prom")
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let r = try Run.capture("/bin/sh", ["-c", "exec \"$0\" check metrics < \"$1\"", try Run.tool("promtool"), path])
        XCTAssertEqual(r.status, 0, "promtool: \(r)\n\(text)", file: file, line: line)
        XCTAssertEqual(r.stdout + r.stderr, "", "promtool complained: \(r)", file: file, line: line)
    }
}

/// The CPUs the calling thread may run on, as the kernel says (/proc/thread-self/status,
/// `Cpus_allowed_list`: `0-3,6`).
public func allowedCPUs() -> Set<Int32> {
    let status = (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)) ?? ""
    let list = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }?.split(separator: ":").last ?? ""
    var cpus = Set<Int32>()
    for part in list.trimmingCharacters(in: .whitespaces).split(separator: ",") {
        let ends = part.split(separator: "-").compactMap { Int32($0) }
        if let a = ends.first, let b = ends.last, a <= b { cpus.formUnion(a...b) }
    }
    return cpus
}
