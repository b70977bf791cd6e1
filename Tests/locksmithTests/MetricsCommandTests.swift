import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `locksmith metrics` on real states (a QEMU holder of an oddly named image, a lock-file
/// holder, a kernel waiter, an unmapped lock file), checked by the real promtool and served
/// by a real node_exporter's textfile collector; the shipped systemd units verified.
final class MetricsCommandTests: XCTestCase {
    /// `name{labels} value` lines whose name is `name` and whose text contains every part.
    func lines(_ text: String, _ name: String, containing parts: [String]) -> [Substring] {
        text.split(separator: "\n").filter { l in l.hasPrefix(name + "{") && parts.allSatisfy { l.contains($0) } }
    }

    struct State {
        let dir = TempDir("metrics")
        var locks: String { dir.file("locks") }
        var oddImage: String { dir.file("we\"ird\\\nname.qcow2") }
        var plain: String { dir.file("plain.img") }
        var qemu: Background!
        var holder: Background!
        var waiter: Background!

        init() throws {
            try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
            try Qemu.createImage(oddImage)
            dir.makeFile("plain.img")
            qemu = try Background(try Run.tool("qemu-io"), ["-c", "sleep 600000", oddImage])
            qemu.waitForLocks(on: oddImage)
            holder = try Background(Run.locksmith, ["hold", "--lock-dir", locks, plain, "--", "sleep", "600"])
            let lockFile = ImageLocker(lockDirectory: locks).lockFilePath(realPath: plain)
            holder.waitForLocks(on: lockFile)
            waiter = try Background(try Run.tool("python3"), [
                "-c", "import fcntl, sys\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX)\n", lockFile])
            let deadline = Date().addingTimeInterval(15)
            while !ProcLocks.rows(for: lockFile).contains(where: \.isWaiter) && Date() < deadline { usleep(10_000) }
            // A lock file of the scheme whose image nobody can name.
            FileManager.default.createFile(atPath: locks + "/.qemu-" + String(repeating: "0", count: 40) + ".lock",
                                           contents: Data())
        }

        func stop() { [waiter, holder, qemu].forEach { $0?.stop() } }
    }

    func testRealStatePassesPromtoolAndNamesEveryone() throws {
        let s = try State()
        defer { s.stop() }
        let r = try Run.locksmith(["metrics", "--lock-dir", s.locks, "--images", s.dir.path])
        XCTAssertEqual(r.status, 0, "\(r)")
        let text = r.stdout
        let escaped = s.oddImage.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        XCTAssertEqual(lines(text, "locksmith_image_lock_info",
                             containing: ["image=\"\(escaped)\"", "scheme=\"qemu\"", "mode=\"rw\"",
                                          "pid=\"\(s.qemu.pid)\"", "command=\"qemu-io\""]).count, 1, text)
        XCTAssertEqual(lines(text, "locksmith_image_lock_info",
                             containing: ["image=\"\(s.plain)\"", "scheme=\"lockfile\"", "mode=\"write\"",
                                          "pid=\"\(s.holder.pid)\""]).count, 1, text)
        XCTAssertEqual(lines(text, "locksmith_image_lock_held_seconds", containing: ["pid=\"\(s.qemu.pid)\""]).count, 1)
        XCTAssertEqual(lines(text, "locksmith_blocked_waiters", containing: ["image=\"\(s.plain)\"} 1"]).count, 1, text)
        for state in ["held", "unmapped"] {
            XCTAssertEqual(lines(text, "locksmith_lock_files", containing: ["state=\"\(state)\"} 1"]).count, 1, text)
        }
        XCTAssertTrue(text.contains("\nlocksmith_scan_duration_seconds "), text)
        XCTAssertTrue(text.contains("\nlocksmith_hosts_unreachable 0\n"), text)
        try Promtool.check(text)
    }

    func testOutputIsReplacedWholeAndNeverThroughALink() throws {
        let s = try State()
        defer { s.stop() }
        let out = s.dir.file("textfile")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let prom = out + "/locksmith.prom"
        // A link planted at FILE.tmp must not be written through.
        let victim = s.dir.file("victim")
        try "keep\n".write(toFile: victim, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: prom + ".tmp", withDestinationPath: victim)
        let r = try Run.locksmith(["metrics", "--lock-dir", s.locks, "--output", prom])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "keep\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: prom + ".tmp"))
        let attrs = try FileManager.default.attributesOfItem(atPath: prom)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o644)
        let text = try String(contentsOfFile: prom, encoding: .utf8)
        XCTAssertEqual(lines(text, "locksmith_image_lock_info", containing: ["pid=\"\(s.holder.pid)\""]).count, 1, text)
        try Promtool.check(text)

        // A scan that fails leaves the last good file in place, with exit 2 and one line.
        let bad = try Run.locksmith(["metrics", "--proc", s.dir.file("no-proc"), "--output", prom])
        XCTAssertEqual(bad.status, 2, "\(bad)")
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        XCTAssertEqual(try String(contentsOfFile: prom, encoding: .utf8), text)
        // An output dir that does not exist: exit 2, one line.
        let nodir = try Run.locksmith(["metrics", "--lock-dir", s.locks, "--output", s.dir.file("nodir/x.prom")])
        XCTAssertEqual(nodir.status, 2, "\(nodir)")
        XCTAssertEqual(nodir.stderr.split(separator: "\n").count, 1, nodir.stderr)
    }

    /// A real prometheus-node-exporter serves the file: its /metrics has our series and no
    /// textfile scrape error.
    func testNodeExporterServesTheFile() throws {
        let s = try State()
        defer { s.stop() }
        let textfiles = s.dir.file("textfile")
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: false)
        let r = try Run.locksmith(["metrics", "--lock-dir", s.locks, "--images", s.dir.path,
                                   "--output", textfiles + "/locksmith.prom"])
        XCTAssertEqual(r.status, 0, "\(r)")
        let exporter = try Run.tool("prometheus-node-exporter")
        var body = ""
        // A free loopback port: try a few, as the exporter cannot be told to pick one.
        for attempt in 0..<5 {
            let port = 20000 + Int(getpid() % 10000) + attempt * 997
            let ne = try Background(exporter, ["--web.listen-address=127.0.0.1:\(port)", "--collector.disable-defaults",
                                               "--collector.textfile", "--collector.textfile.directory=\(textfiles)"])
            defer { ne.stop() }
            let deadline = Date().addingTimeInterval(10)
            while ne.process.isRunning && Date() < deadline {
                let get = try Run.capture(try Run.tool("python3"), ["-c", """
                    import sys, urllib.request
                    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
                    """, "http://127.0.0.1:\(port)/metrics"], timeout: 10)
                if get.status == 0 { body = get.stdout; break }
                usleep(100_000)
            }
            if !body.isEmpty { break }
        }
        XCTAssertTrue(body.contains("\nnode_textfile_scrape_error 0\n"), body)
        let served = body.split(separator: "\n").filter { $0.hasPrefix("locksmith_image_lock_info{") }
        XCTAssertTrue(served.contains { $0.contains("pid=\"\(s.qemu.pid)\"") && $0.contains("command=\"qemu-io\"") },
                      served.joined(separator: "\n"))
        XCTAssertTrue(body.contains("locksmith_lock_files{"), body)
    }

    /// The units `make install` installs pass `systemd-analyze verify` (with the man page
    /// their Documentation= names, and the binary their ExecStart= runs).
    func testShippedSystemdUnitsVerify() throws {
        let analyze = try Run.tool("systemd-analyze")
        let dir = TempDir("units")
        let bin = URL(fileURLWithPath: Run.locksmith).deletingLastPathComponent().path
        let units = GlusterTestBed.repository + "/systemd"
        var names: [String] = []
        for f in try FileManager.default.contentsOfDirectory(atPath: units) where f.hasSuffix(".in") {
            let text = try String(contentsOfFile: units + "/" + f, encoding: .utf8)
                .replacingOccurrences(of: "@BINDIR@", with: bin)
            let name = String(f.dropLast(3))
            try text.write(toFile: dir.file(name), atomically: false, encoding: .utf8)
            names.append(dir.file(name))
        }
        XCTAssertEqual(Set(names.map { URL(fileURLWithPath: $0).lastPathComponent }),
                       ["locksmith-metrics.service", "locksmith-metrics.timer", "locksmith-watch.service"])
        try FileManager.default.createDirectory(atPath: dir.file("man/man1"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: GlusterTestBed.repository + "/man/locksmith.1",
                                         toPath: dir.file("man/man1/locksmith.1"))
        let r = try Run.capture(analyze, ["verify"] + names.sorted(), environment: ["MANPATH": dir.file("man")])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stderr, "", "\(r)")
        let metrics = try String(contentsOfFile: dir.file("locksmith-metrics.service"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("ExecStart=\(bin)/locksmith metrics --output "), metrics)
    }
}

/// `metrics --host`: every host's series, labelled by host, through `--ssh` pointed at
/// scripts/ssh-replay (recorded `list --json --audit` answers); a host with no answer is
/// counted and named, and the rest is still written.
final class MetricsClusterTests: XCTestCase {
    func testEveryHostsSeriesAndTheUnreachableOne() throws {
        let dir = TempDir("metrics-cluster")
        let locks = dir.file("locks"), answers = dir.file("answers"), image = dir.file("disk.img")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: answers, withIntermediateDirectories: true)
        dir.makeFile("disk.img")
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "sleep", "600"])
        defer { holder.stop() }
        holder.waitForLocks(on: ImageLocker(lockDirectory: locks).lockFilePath(realPath: image))
        // The answer each host would give (this host's, with only this test's image), renamed.
        let recorded = try Run.locksmith(["list", "--json", "--audit", "--lock-dir", locks])
        XCTAssertEqual(recorded.status, 0, "\(recorded)")
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(recorded.stdout.utf8)) as? [String: Any])
        obj["images"] = (obj["images"] as? [[String: Any]] ?? []).filter { $0["path"] as? String == image }
        obj["lock_files"] = (obj["lock_files"] as? [[String: Any]] ?? []).filter { $0["image"] as? String == image }
        obj["findings"] = []
        obj["writers"] = []
        for h in ["h1", "h2"] {
            obj["host"] = h
            try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: "\(answers)/\(h).json"))
        }
        let replay = Run.repository + "/scripts/ssh-replay"
        let out = dir.file("locksmith.prom")
        let r = try Run.locksmith(["metrics", "--ssh", "\(replay) \(answers)", "--host", "h1", "--host", "h2",
                                   "--host", "h3", "--output", out])
        XCTAssertEqual(r.status, 2, "a host was not seen: \(r)")
        XCTAssertTrue(r.stderr.contains("host h3"), r.stderr)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        for h in ["h1", "h2"] {
            XCTAssertEqual(text.split(separator: "\n").filter {
                $0.hasPrefix("locksmith_image_lock_info{host=\"\(h)\"") && $0.contains("pid=\"\(holder.pid)\"")
            }.count, 1, text)
            XCTAssertTrue(text.contains("locksmith_audit_findings{host=\"\(h)\",rule=\"unlocked-writer\",severity=\"critical\"} 0"), text)
            XCTAssertTrue(text.contains("locksmith_lock_files{host=\"\(h)\",state=\"held\"} 1"), text)
        }
        XCTAssertTrue(text.contains("\nlocksmith_hosts_unreachable 1\n"), text)
        try Promtool.check(text)
    }
}
