import Foundation
import XCTest

extension Background {
    /// Waits until the process has `path` open (an fd link naming it): for processes that
    /// take no lock, such as QEMU with `file.locking=off`.
    public func waitForOpen(_ path: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        let fdDir = "/proc/\(pid)/fd"
        while Date() < deadline {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? [] {
                if (try? FileManager.default.destinationOfSymbolicLink(atPath: fdDir + "/" + name)) == path { return }
            }
            if !process.isRunning {
                XCTFail("process \(pid) ended before it opened \(path)", file: file, line: line)
                return
            }
            usleep(10_000)
        }
        XCTFail("\(path) was not opened within \(timeout) s", file: file, line: line)
    }
}

extension Qemu {
    /// `qemu-io` writing `image` with locking off: a writer that holds no lock.
    public static func unlockedWriter(_ image: String, file: StaticString = #filePath, line: UInt = #line) throws -> Background {
        let w = try Background(try Run.tool("qemu-io"), [
            "-c", "sleep 60000", "--image-opts",
            "driver=qcow2,file.driver=file,file.filename=\(image),file.locking=off",
        ])
        w.waitForOpen(image, file: file, line: line)
        return w
    }
}

/// The Gluster test volume mounted through FUSE at a temp dir, unmounted when released.
/// Needs the test bed that scripts/run-tests starts (GLUSTER_STATEDIR set).
public final class GlusterMount: @unchecked Sendable {
    /// The mount point; removed with rmdir only (never recursively) after the unmount.
    public let path: String
    let script: String

    public init(file: StaticString = #filePath, line: UInt = #line) throws {
        guard ProcessInfo.processInfo.environment["GLUSTER_STATEDIR"] != nil else {
            XCTFail("GLUSTER_STATEDIR is not set: run the tests through scripts/run-tests, which starts the Gluster test bed",
                    file: file, line: line)
            throw XCTSkip("no Gluster test bed")
        }
        // Tests/_TestSupport/AuditSupport.swift -> the package root.
        script = URL(fileURLWithPath: "\(#filePath)").deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/gluster-testbed").path
        var template = Array("/tmp/locksmith-glmnt-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let (status, output) = try GlusterMount.run(script, ["mount", path])
        guard status == 0 else {
            rmdir(path)
            XCTFail("gluster-testbed mount failed (status \(status)): \(output)", file: file, line: line)
            throw XCTSkip("no Gluster mount")
        }
    }

    public func unmount() {
        _ = try? GlusterMount.run(script, ["unmount", path])
        rmdir(path)
    }

    /// Runs the test-bed script with its output in a file and no fd of ours but 0-2: the
    /// FUSE daemon that `mount` starts inherits them, and would keep a pipe (ours, or the
    /// one Foundation's Process watches to see its child end) open for its whole life.
    /// The corresponding C functions are `posix_spawn` and `waitpid`.
    static func run(_ script: String, _ args: [String], timeout: Double = 60) throws -> (Int32, String) {
        let log = TempDir("glmnt-log")
        let logPath = log.file("out")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        let argv = [script] + args
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, script, &actions, nil, cargs, environ)
        guard rc == 0 else { return (127, "posix_spawn: \(String(cString: strerror(rc)))") }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(10_000)
        }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
    }

    deinit { unmount() }
}
