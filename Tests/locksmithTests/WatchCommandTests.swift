import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `locksmith watch` against a scripted sequence of real lock changes.
final class WatchCommandTests: XCTestCase {
    typealias JSON = [String: Any]

    /// The watch process, writing to a file that the test reads as it grows.
    final class Watcher: @unchecked Sendable {
        let process = Process()
        let output: String

        init(_ args: [String], output: String) throws {
            self.output = output
            _ = FileManager.default.createFile(atPath: output, contents: Data())
            process.executableURL = URL(fileURLWithPath: Run.locksmith)
            process.arguments = ["watch"] + args
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try XCTUnwrap(FileHandle(forWritingAtPath: output))
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        var text: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

        /// Complete lines only.
        var lines: [String] {
            let t = text
            guard let lastNewline = t.lastIndex(of: "\n") else { return [] }
            return t[..<lastNewline].split(separator: "\n").map(String.init)
        }

        func stop(_ signal: Int32 = SIGTERM) -> Int32 {
            if process.isRunning { kill(process.processIdentifier, signal) }
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }

        deinit { _ = stop(SIGKILL) }
    }

    func testJSONLinesOfTakeReleaseBlockUnblockInOrder() throws {
        let dir = TempDir("watch")
        let locks = dir.file("locks")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        let image = dir.makeFile("disk.img")
        let lockFile = ImageLocker(lockDirectory: locks).lockFilePath(realPath: image)
        let watch = try Watcher(["--json", "--interval", "0.1", "--lock-dir", locks], output: dir.file("watch.jsonl"))
        defer { _ = watch.stop() }

        /// The events about `image` so far, as "kind pid".
        func events() -> [String] {
            watch.lines.compactMap { line -> String? in
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? JSON,
                      obj["image"] as? String == image else { return nil }
                let pid = ((obj["holder"] as? JSON)?["pid"] as? NSNumber)?.int32Value ?? 0
                return "\(obj["event"] as? String ?? "?") \(pid)"
            }
        }
        func waitFor(_ n: Int, line: UInt = #line) {
            let deadline = Date().addingTimeInterval(40)  // a scan of a busy host takes seconds
            while events().count < n && Date() < deadline { usleep(20_000) }
            XCTAssertGreaterThanOrEqual(events().count, n, "events so far: \(events())", line: line)
        }
        usleep(500_000)  // the first snapshot: the state at start is not reported

        // take, release
        let a = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "sleep", "60"])
        defer { a.stop() }
        a.waitForLocks(on: lockFile)
        waitFor(1)
        a.stop()
        waitFor(2)
        // block: a holder, then a real kernel waiter (F_SETLKW) that keeps the lock once it has it
        let b = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "sleep", "60"])
        defer { b.stop() }
        b.waitForLocks(on: lockFile)
        waitFor(3)
        let script = "import fcntl, sys, time\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX)\ntime.sleep(60)\n"
        let w = try Background(try Run.tool("python3"), ["-c", script, lockFile])
        defer { w.stop() }
        waitFor(4)
        // unblock: the holder goes, the waiter gets the lock
        b.stop()
        waitFor(7)
        w.stop()
        waitFor(8)

        XCTAssertEqual(events(), [
            "lock-acquired \(a.pid)", "lock-released \(a.pid)",
            "lock-acquired \(b.pid)", "waiter-blocked \(w.pid)",
            "lock-released \(b.pid)", "waiter-unblocked \(w.pid)", "lock-acquired \(w.pid)",
            "lock-released \(w.pid)",
        ])
        XCTAssertEqual(watch.stop(SIGTERM), 0, "SIGTERM ends watch cleanly")
        let text = watch.text
        XCTAssertTrue(text.hasSuffix("\n"), "the last line is complete")
        JSONSchema.check(text, command: "watch")
        for line in watch.lines {
            XCTAssertTrue(line.hasPrefix("{\"schema\":1,\"host\":"), line)
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? JSON, line)
            XCTAssertNotNil(obj["generated"] as? String)
            XCTAssertNotNil(obj["event"] as? String)
        }
        // Each line names the holder fully: the waiter too, also once it is gone.
        let unblocked = try XCTUnwrap(watch.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? JSON }
            .first { $0["event"] as? String == "waiter-unblocked" && $0["image"] as? String == image })
        let holder = try XCTUnwrap(unblocked["holder"] as? JSON)
        XCTAssertEqual(holder["command"] as? String, "python3")
        XCTAssertEqual(holder["scheme"] as? String, "lockfile")
        XCTAssertEqual(holder["mode"] as? String, "write")
    }

    /// Findings come and go as events too, and such a line (no image of its own for a lock
    /// file whose image is unknown) matches the schema.
    func testFindingRaisedAndClearedAreJSONLinesOfTheSchema() throws {
        let dir = TempDir("watch-finding")
        let locks = dir.file("locks")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        let watch = try Watcher(["--json", "--interval", "0.1", "--findings", "info", "--lock-dir", locks],
                                output: dir.file("watch.jsonl"))
        defer { _ = watch.stop() }
        let unknown = locks + "/.qemu-" + String(repeating: "7", count: 40) + ".lock"
        func events(_ kind: String) -> [JSON] {
            watch.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? JSON }
                .filter { $0["event"] as? String == kind && "\($0["finding"] ?? "")".contains(unknown) }
        }
        func waitFor(_ kind: String, line: UInt = #line) {
            let deadline = Date().addingTimeInterval(40)
            while events(kind).isEmpty && Date() < deadline { usleep(20_000) }
            XCTAssertFalse(events(kind).isEmpty, "no \(kind) in \(watch.text)", line: line)
        }
        usleep(500_000)
        XCTAssertTrue(FileManager.default.createFile(atPath: unknown, contents: nil))
        waitFor("finding-raised")
        XCTAssertEqual(unlink(unknown), 0)
        waitFor("finding-cleared")
        XCTAssertEqual(watch.stop(SIGTERM), 0)
        JSONSchema.check(watch.text, command: "watch")
        let rules = Set(events("finding-raised").compactMap { ($0["finding"] as? JSON)?["rule"] as? String })
        XCTAssertEqual(rules, ["unmapped-lock-file", "stale-lock-file"])
        XCTAssertTrue(events("finding-raised").allSatisfy { $0["image_id"] is NSNull }, watch.text)
    }

    func testTextLinesCountAndSIGINT() throws {
        let dir = TempDir("watch-text")
        let locks = dir.file("locks")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        // --count ends it by itself.
        let r = try Run.locksmith(["watch", "--interval", "0.05", "--count", "3", "--lock-dir", locks], timeout: 30)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stderr.hasPrefix("locksmith: watching every 0.05 s"), r.stderr)

        let image = dir.makeFile("disk.img")
        let watch = try Watcher(["--interval", "0.1", "--lock-dir", locks], output: dir.file("watch.txt"))
        usleep(500_000)
        let a = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "sleep", "60"])
        defer { a.stop() }
        let deadline = Date().addingTimeInterval(40)
        while !watch.lines.contains(where: { $0.contains(image) }) && Date() < deadline { usleep(20_000) }
        XCTAssertEqual(watch.stop(SIGINT), 0, "SIGINT ends watch cleanly")
        let line = try XCTUnwrap(watch.lines.first { $0.contains(image) })
        XCTAssertTrue(line.contains(" lock-acquired \(image) pid \(a.pid) (locksmith) write lockfile fd "), line)
        XCTAssertNotNil(try? Date(line.split(separator: " ")[0].description, strategy: .iso8601), line)
        XCTAssertEqual(try Run.locksmith(["watch", "--interval", "0"]).status, 64)
    }
}
