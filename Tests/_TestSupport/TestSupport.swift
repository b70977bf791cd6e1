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

    /// The locksmith binary built alongside the tests.
    public static var locksmith: String {
        let dir = Bundle.main.bundleURL.path  // .build/<config> for swift test on Linux
        let candidates = [dir + "/locksmith", dir + "/../debug/locksmith"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    /// Runs the locksmith binary.
    @discardableResult
    public static func locksmith(_ args: [String], timeout: Double = 60, environment: [String: String]? = nil) throws -> RunResult {
        try capture(locksmith, args, timeout: timeout, environment: environment)
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

    /// The whole table with the IDs left out, sorted: equal before and after = nothing changed.
    public static func table() -> [String] {
        ((try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? "")
            .split(separator: "\n")
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
