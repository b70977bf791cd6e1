import _TestSupport
import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI
import XCTest

/// The TUI's `K` (TUISources.sigterm, HolderSignal) with real holders, played as issue 15
/// tells it: the holder, run as nobody, ends and its pid is given to another of nobody's
/// processes, or it lets go of its lock, before the admin answers `y` to the prompt the
/// earlier scan led to. The wrong process must survive; the refusal is shown in one line.
final class HolderKillTests: XCTestCase {
    /// A python holder of a POSIX lock on a lockfile-scheme lock file, run as nobody; it
    /// lets go of the lock (and stays) on SIGUSR1.
    struct Scene {
        let dir: TempDir
        let lockDir: String
        let lockFile: String
        let holder: Background

        init() throws {
            dir = TempDir("tui-kill")
            XCTAssertEqual(chmod(dir.path, 0o755), 0)
            lockDir = dir.file("locks")
            try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: false)
            let image = dir.makeFile("disk.img")
            lockFile = ImageLocker(lockDirectory: lockDir).lockFilePath(realPath: image)
            FileManager.default.createFile(atPath: lockFile, contents: Data())
            XCTAssertEqual(chown(lockFile, 65534, 65534), 0)
            let script = """
                import fcntl, signal, sys, time
                f = open(sys.argv[1], "r+")
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                signal.signal(signal.SIGUSR1, lambda *a: fcntl.lockf(f, fcntl.LOCK_UN))
                while True: time.sleep(60)
                """
            holder = try Background(try Run.tool("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                                           "/usr/bin/python3", "-c", script, lockFile])
            holder.waitForLocks(on: lockFile)
        }

        /// The scan's view of the lock dir, as the TUI got it.
        func snapshot() throws -> Snapshot {
            try Inspector(InspectorOptions(lockDirectories: [lockDir], libvirtDirectories: [], leaseDirectories: [])).snapshot()
        }
    }

    /// The TUI on `snapshot`, filtered to the scene's lock dir, answering K then y; the frames.
    func pressKillAndYes(on snapshot: Snapshot, filter: String) throws -> [ScreenBuffer] {
        let t = FakeTerminal([(0.15, .char("K")), (0.05, .char("y")), (0.5, .char("q"))])
        t.width = 200
        let app = TUIApp(sources: TUISources(snapshot: { .fresh(snapshot) }),
                         options: TUIOptions(interval: 10, color: false, filter: filter))
        app.pollMilliseconds = 20
        XCTAssertEqual(try app.run(on: t), .quit)
        return t.frames
    }

    func holder(in s: Snapshot, lockFile: String, file: StaticString = #filePath, line: UInt = #line) throws -> Holder {
        let image = try XCTUnwrap(s.images.first { $0.lockFiles.contains(lockFile) }, "no row for \(lockFile)", file: file, line: line)
        let h = try XCTUnwrap(image.holders.first, "no holder: \(image)", file: file, line: line)
        XCTAssertNotNil(h.startTicks, file: file, line: line)
        XCTAssertNotNil(h.fd, file: file, line: line)
        return h
    }

    func isAlive(_ b: Background) -> Bool {
        guard b.process.isRunning, let stat = try? String(contentsOfFile: "/proc/\(b.pid)/stat", encoding: .utf8) else { return false }
        return !stat.contains(") Z ")
    }

    /// Starts `exe args` until it gets `pid` (through /proc/sys/kernel/ns_last_pid, retried
    /// while other processes take the pid first); nil when it never does.
    func spawn(withPID pid: Int32, _ exe: String, _ args: [String], attempts: Int = 400) throws -> Background? {
        for _ in 0..<attempts {
            guard let f = fopen("/proc/sys/kernel/ns_last_pid", "w") else { return nil }
            fputs("\(pid - 1)", f)
            fclose(f)
            let b = try Background(exe, args)
            if b.pid == pid { return b }
            kill(b.pid, SIGKILL)
            b.process.waitUntilExit()
        }
        return nil
    }

    func testKSignalsTheHolderItSaw() throws {
        let scene = try Scene()
        let h = try holder(in: try scene.snapshot(), lockFile: scene.lockFile)
        XCTAssertEqual(h.pid, scene.holder.pid)
        let frames = try pressKillAndYes(on: try scene.snapshot(), filter: scene.lockDir)
        XCTAssertTrue(frames.contains { $0.text.contains("Sent SIGTERM to pid \(h.pid) (python3).") },
                      frames.last?.text ?? "")
        scene.holder.process.waitUntilExit()
        XCTAssertEqual(scene.holder.process.terminationReason, .uncaughtSignal)
        XCTAssertEqual(scene.holder.process.terminationStatus, SIGTERM)
    }

    /// The holder ends after the scan; nobody's `sleep` gets its pid; y: the sleep survives.
    func testKRefusesAPidNowNamingAnotherProcess() throws {
        let scene = try Scene()
        let seen = try scene.snapshot()
        let h = try holder(in: seen, lockFile: scene.lockFile)
        kill(scene.holder.pid, SIGKILL)
        scene.holder.process.waitUntilExit()
        let other = try XCTUnwrap(try spawn(withPID: h.pid, try Run.tool("setpriv"),
                                            ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sleep", "600"]),
                                  "pid \(h.pid) could not be reused")
        defer { other.stop() }
        usleep(100_000)  // past the exec: the pid is sleep's now
        let frames = try pressKillAndYes(on: seen, filter: scene.lockDir)
        let expected = "Not signalled: pid \(h.pid) (python3) has ended: the pid now names another process (a different start time)."
        XCTAssertTrue(frames.contains { $0.text.contains(expected) }, frames.last?.text ?? "")
        XCTAssertFalse(frames.contains { $0.text.contains("Sent SIGTERM") })
        usleep(200_000)
        XCTAssertTrue(isAlive(other), "the process that took the pid was signalled")
    }

    /// The holder lets go of its lock after the scan and goes on running: y is refused.
    func testKRefusesAHolderThatNoLongerHoldsTheLock() throws {
        let scene = try Scene()
        let seen = try scene.snapshot()
        let h = try holder(in: seen, lockFile: scene.lockFile)
        kill(scene.holder.pid, SIGUSR1)
        let deadline = Date().addingTimeInterval(10)
        while !ProcLocks.rows(for: scene.lockFile).isEmpty && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(ProcLocks.rows(for: scene.lockFile), [], "the holder kept its lock")
        let frames = try pressKillAndYes(on: seen, filter: scene.lockDir)
        let expected = "Not signalled: pid \(h.pid) (python3) no longer holds the lock through fd \(h.fd!)."
        XCTAssertTrue(frames.contains { $0.text.contains(expected) }, frames.last?.text ?? "")
        usleep(200_000)
        XCTAssertTrue(isAlive(scene.holder), "the former holder was signalled")
    }
}
