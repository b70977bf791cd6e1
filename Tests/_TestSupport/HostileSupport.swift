import Foundation
import ImageLock
import XCTest

// What the hostile-user tests share: programs run with arguments that are not UTF-8 (as
// `PathBytes` carrier strings) and their output as raw bytes, files named by bytes,
// things planted by `nobody`, and the check that output is safe for a terminal.

/// What a finished command wrote, byte for byte.
public struct RawRunResult: CustomStringConvertible {
    public var status: Int32
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var out: String { String(decoding: stdout, as: UTF8.self) }
    public var err: String { String(decoding: stderr, as: UTF8.self) }
    public var description: String { "status \(status)\nstdout: \(out.debugDescription)\nstderr: \(err.debugDescription)" }
}

extension Run {
    /// Runs `exe` with `args` passed as their exact bytes (carrier strings, `PathBytes`)
    /// and returns its output unchanged; killed after `timeout` seconds.
    public static func raw(_ exe: String, _ args: [String], timeout: Double = 120) throws -> RawRunResult {
        let out = Pipe(), err = Pipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out.fileHandleForWriting.fileDescriptor, 1)
        posix_spawn_file_actions_adddup2(&actions, err.fileHandleForWriting.fileDescriptor, 2)
        var pid: pid_t = 0
        let rc = CleanSpawn.spawn(&pid, [exe] + args, fileActions: &actions, searchPath: false)
        try out.fileHandleForWriting.close()
        try err.fileHandleForWriting.close()
        guard rc == 0 else { throw NSError(domain: "spawn", code: Int(rc)) }
        nonisolated(unsafe) var o = Data(), e = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { o = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { e = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if Date() > deadline { kill(pid, SIGKILL) }
            usleep(5_000)
        }
        group.wait()
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return RawRunResult(status: code, stdout: Array(o), stderr: Array(e))
    }

    /// The locksmith binary, arguments as exact bytes; its --json output is held against
    /// the command's JSON Schema, as `Run.locksmith` does.
    public static func locksmithRaw(_ args: [String], timeout: Double = 120,
                                    file: StaticString = #filePath, line: UInt = #line) throws -> RawRunResult {
        let r = try raw(locksmith, args, timeout: timeout)
        if args.contains("--json"), !r.stdout.isEmpty, let command = args.first, ["list", "why", "try", "audit", "watch"].contains(command) {
            JSONSchema.check(r.out, command: command, file: file, line: line)
        }
        return r
    }
}

/// A background process started with exact-byte arguments (`Run.raw`'s way), stopped by pid.
public final class RawBackground: @unchecked Sendable {
    public let pid: pid_t

    public init(_ exe: String, _ args: [String]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var p: pid_t = 0
        let rc = CleanSpawn.spawn(&p, [exe] + args, fileActions: &actions, searchPath: false)
        guard rc == 0 else { throw NSError(domain: "spawn", code: Int(rc)) }
        pid = p
    }

    private var reaped = false

    /// Whether it still runs (reaps it when it has ended).
    public var isRunning: Bool {
        if reaped { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { reaped = true }
        return !reaped
    }

    /// Waits until the kernel lists a lock (not a waiter) on `path`.
    public func waitForLock(on path: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if Hostile.locks(on: path).contains(where: { !$0.isWaiter }) { return }
            if !isRunning { return XCTFail("pid \(pid) ended before it locked \(path)", file: file, line: line) }
            usleep(10_000)
        }
        XCTFail("no lock on \(path) within \(timeout) s", file: file, line: line)
    }

    public func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(2)
        while isRunning && Date() < deadline { usleep(5_000) }
        if isRunning { kill(pid, SIGKILL) }
        var status: Int32 = 0
        if !reaped { _ = waitpid(pid, &status, 0) }
        reaped = true
    }

    deinit { stop() }
}

public enum Hostile {
    /// The /proc/locks rows on the inode of a path named by exact bytes (a carrier string).
    public static func locks(on path: String) -> [KernelLock] {
        var st = stat()
        guard PathBytes.withCString(path, { lstat($0, &st) }) == 0 else { return [] }
        return ProcFS.locks(procRoot: "/proc").filter { $0.inode == UInt64(st.st_ino) }
    }

    /// Creates a file named by exact bytes (a carrier string); returns whether it was made.
    @discardableResult
    public static func makeFile(_ path: String, contents: [UInt8] = Array(repeating: 0, count: 1 << 20)) -> Bool {
        let fd = PathBytes.withCString(path) { open($0, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return contents.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == contents.count
    }

    /// Runs a python3 script as `nobody` (setpriv, no groups): another user planting things.
    /// Arguments go through as exact bytes.
    public static func asNobody(_ script: String, _ args: [String], timeout: Double = 300,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let setpriv = try Run.tool("setpriv", file: file, line: line)
        let r = try Run.raw(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script] + args,
                            timeout: timeout)
        XCTAssertEqual(r.status, 0, "as nobody: \(r)", file: file, line: line)
    }

    /// A python3 process whose name (`comm`, PR_SET_NAME) is `name`'s bytes, holding a POSIX
    /// write lock on `lockFile` (with `content` written in it, as QEMU's lock files have the
    /// image's path), started with `extraArgs` in its command line.
    public static func namedHolder(name: [UInt8], lockFile: String, content: [UInt8], extraArgs: [String] = []) throws -> RawBackground {
        let script = """
            import ctypes, fcntl, os, sys, time
            libc = ctypes.CDLL(None)
            libc.prctl(15, ctypes.c_char_p(os.fsencode(sys.argv[1])), 0, 0, 0)
            fd = os.open(os.fsencode(sys.argv[2]), os.O_RDWR | os.O_CREAT, 0o644)
            os.write(fd, os.fsencode(sys.argv[3]))
            fcntl.lockf(fd, fcntl.LOCK_EX)
            time.sleep(120)
            """
        return try RawBackground("/usr/bin/python3", ["-c", script, PathBytes.string(name), lockFile, PathBytes.string(content)] + extraArgs)
    }

    /// Fails unless `bytes` are safe for a terminal: valid UTF-8 without any control
    /// character but newline (no C0, DEL or C1), no bidi or other format character.
    public static func assertTerminalSafe(_ bytes: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return XCTFail("\(what): not UTF-8 (a raw byte reached the terminal): \(String(decoding: bytes, as: UTF8.self).debugDescription)",
                           file: file, line: line)
        }
        for s in text.unicodeScalars where s != "\n" {
            if s.value < 0x20 || (0x7F...0x9F).contains(s.value) || s.properties.generalCategory == .format || PathBytes.isCarrier(s) {
                return XCTFail("\(what): raw U+\(String(s.value, radix: 16)) in \(text.debugDescription)", file: file, line: line)
            }
        }
    }
}
