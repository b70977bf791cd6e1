import Foundation
import XCTest
import _TestSupport

/// The cluster view over real OpenSSH (scripts/cluster-testbed: h1 and h2, each with its
/// own sshd, /var/tmp and PID numbering, sharing one GlusterFS volume through FUSE), with
/// real holders: qemu-io and `locksmith hold`. This machine runs the view; each host runs
/// the locksmith binary of this build through its own sshd.
final class ClusterViewTests: XCTestCase {
    var bed: ClusterTestBed!
    var ssh = ""
    var held: [(host: String, pid: Int32)] = []
    var files: [String] = []

    override func setUpWithError() throws {
        bed = try ClusterTestBed.require(hosts: 2)
        let key = try XCTUnwrap(ProcessInfo.processInfo.environment["CLUSTER_SSH_KEY"])
        ssh = "ssh -i \(key) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -l root"
    }

    override func tearDown() {
        for h in held { try? bed.stop(h.pid, on: h.host) }
        for f in files { _ = try? bed.run(on: "h1", ["rm", "-f", f]) }
        held = []
        files = []
    }

    /// The view's options naming `hosts` (bed names, `.`, or raw destinations).
    func view(_ hosts: [String], timeout: Double = 20) -> [String] {
        ["--ssh", ssh, "--remote-command", Run.locksmith, "--host-timeout", "\(timeout)"]
            + hosts.flatMap { h in ["--host", bed.hosts.first { $0.name == h }?.address ?? h] }
    }

    func image(_ label: String) throws -> String {
        let path = bed.imagePath(label)
        XCTAssertEqual(try bed.run(on: "h1", ["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"]).status, 0)
        files.append(path)
        return path
    }

    func hold(_ host: String, _ argv: [String]) throws {
        held.append((host, try bed.spawn(on: host, argv)))
    }

    /// `list --json` over the hosts until `done` holds for it (bounded by rounds).
    func listUntil(_ hosts: [String], extra: [String] = [], _ done: ([String: Any]) -> Bool) throws -> (RunResult, [String: Any]) {
        var last: (RunResult, [String: Any])!
        for _ in 0..<100 {
            let r = try Run.capture(Run.locksmith, ["list", "--json"] + extra + view(hosts), timeout: 120)
            let obj = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
            last = (r, obj)
            if done(obj) { return last }
            usleep(50_000)
        }
        return last
    }

    func images(_ obj: [String: Any], path: String) -> [[String: Any]] {
        (obj["images"] as? [[String: Any]] ?? []).filter { $0["path"] as? String == path }
    }

    func holders(_ img: [String: Any]) -> [String] {
        (img["holders"] as? [[String: Any]] ?? []).map { "\($0["host"] as? String ?? "?")/\($0["command"] as? String ?? "?")" }.sorted()
    }

    /// One image on the shared volume held on h1 (qemu-io, read-only) and on h2 (`locksmith
    /// hold --shared`): one image, two holders, two hosts. Equal local paths on h1 and h2
    /// (each host's own /var/tmp) stay two images. The table gains HOST.
    func testOneSharedImageTwoHostsAndEqualLocalPathsStayApart() throws {
        let shared = try image("cv-shared")
        let local = "/var/tmp/cv-local-\(getpid()).img"
        for h in ["h1", "h2"] {
            XCTAssertEqual(try bed.run(on: h, ["qemu-img", "create", "-q", "-f", "raw", local, "1M"]).status, 0)
            try hold(h, ["qemu-io", "-r", "-f", "raw", "-c", "sleep 600000", local])
        }
        defer { for h in ["h1", "h2"] { _ = try? bed.run(on: h, ["rm", "-f", local]) } }
        try hold("h1", ["qemu-io", "-r", "-c", "sleep 600000", shared])
        try hold("h2", [Run.locksmith, "hold", "--shared", shared, "--", "sleep", "600"])

        let (r, obj) = try listUntil(["h1", "h2"]) { o in
            images(o, path: shared).first.map { holders($0).count == 2 } == true && images(o, path: local).count == 2
        }
        XCTAssertEqual(r.status, 0, "\(r)")
        let one = images(obj, path: shared)
        XCTAssertEqual(one.count, 1, "one image on shared storage: \(r.stdout.prefix(3000))")
        XCTAssertEqual(one.first.map(holders), ["h1/qemu-io", "h2/locksmith"])
        XCTAssertEqual(one.first?["storage"] as? String, "gluster:\(bed.volume)/\((shared as NSString).lastPathComponent)")
        XCTAssertTrue(one.first?["host"] is NSNull, "seen from two hosts")
        let two = images(obj, path: local)
        XCTAssertEqual(two.map { $0["host"] as? String ?? "?" }.sorted(), ["h1", "h2"])
        XCTAssertEqual(two.map(holders), [["h1/qemu-io"], ["h2/qemu-io"]])
        XCTAssertTrue(two.allSatisfy { $0["storage"] is NSNull })
        let hosts = obj["hosts"] as? [[String: Any]] ?? []
        XCTAssertEqual(hosts.map { $0["hostname"] as? String ?? "?" }, ["h1", "h2"])
        XCTAssertEqual(hosts.map { $0["reached"] as? Bool ?? false }, [true, true])
        XCTAssertEqual(hosts.map { $0["name"] as? String ?? "?" }, bed.hosts.map(\.address))
        // The pids are each host's own: h1's qemu-io on the shared image is h1's pid.
        let h1pid = held[2].pid
        XCTAssertTrue((one.first?["holders"] as? [[String: Any]] ?? []).contains { $0["host"] as? String == "h1" && $0["pid"] as? Int == Int(h1pid) })

        let table = try Run.capture(Run.locksmith, ["list"] + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(table.status, 0, "\(table)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.contains(" HOST ") ?? false, table.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix(shared) && $0.contains(" h1 ") && $0.contains("qemu-io") }, table.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix(shared) && $0.contains(" h2 ") && $0.contains("locksmith") }, table.stdout)
    }

    /// A host that does not answer (an address on the bed's bridge nobody has) is bounded by
    /// --host-timeout, one line on stderr and an entry in `hosts`; the others are printed;
    /// exit 2. So are a host without locksmith and one whose locksmith prints something else.
    func testFailingHostsAreOneLineEachAndHideNothing() throws {
        let shared = try image("cv-fail")
        try hold("h1", ["qemu-io", "-r", "-c", "sleep 600000", shared])
        let dir = TempDir("cv")
        let liar = dir.path + "/liar"
        try "#!/bin/sh\nprintf '{\"schema\":2,\"host\":\"x\\033[2J\"}'\n".write(toFile: liar, atomically: true, encoding: .utf8)
        chmod(liar, 0o755)
        _ = try listUntil(["h1"]) { images($0, path: shared).first.map { holders($0).count == 1 } == true }

        let start = Date()
        let r = try Run.capture(Run.locksmith, ["list", "--json"] + view(["h1", "10.77.0.250"], timeout: 3), timeout: 60)
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(r.status, 2, "\(r)")
        XCTAssertLessThan(took, 20, "bounded by --host-timeout")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        XCTAssertEqual(images(obj, path: shared).first.map(holders), ["h1/qemu-io"], "h1 is printed")
        let hosts = obj["hosts"] as? [[String: Any]] ?? []
        XCTAssertEqual(hosts.map { $0["reached"] as? Bool ?? true }, [true, false])
        XCTAssertNotNil(hosts.last?["error"] as? String)
        let errs = r.stderr.split(separator: "\n")
        XCTAssertEqual(errs.count, 1, r.stderr)
        XCTAssertTrue(errs.first?.hasPrefix("locksmith: host 10.77.0.250: ") ?? false, r.stderr)

        // No locksmith there; another schema (with an escape sequence in its host name).
        var missing = view(["h1"])
        missing[missing.firstIndex(of: "--remote-command")! + 1] = "/nonexistent/locksmith"
        let none = try Run.capture(Run.locksmith, ["list"] + missing, timeout: 60)
        XCTAssertEqual(none.status, 2, "\(none)")
        XCTAssertTrue(none.stderr.contains("cannot run /nonexistent/locksmith there (exit 127)"), none.stderr)
        var lie = view(["h1"])
        lie[lie.firstIndex(of: "--remote-command")! + 1] = liar
        let other = try Run.capture(Run.locksmith, ["list", "--host", "."] + lie, timeout: 60)
        XCTAssertEqual(other.status, 2, "\(other)")
        XCTAssertTrue(other.stderr.contains("answers in JSON schema 2, not 1"), other.stderr)
        XCTAssertFalse(other.stderr.contains("\u{1B}") || other.stdout.contains("\u{1B}"), "\(other)")
    }

    /// why on h2 about an image h1's qemu-io holds read-write: the verdict for h2 (QEMU's
    /// words), then the blocker named with its host and a remedy there.
    func testWhyOnH2NamesH1sHolder() throws {
        let shared = try image("cv-why")
        try hold("h1", ["qemu-io", "-c", "sleep 600000", shared])
        let pid = held[0].pid
        _ = try listUntil(["h1"]) { images($0, path: shared).first.map { holders($0).count == 1 } == true }
        let r = try bed.run(on: "h2", [Run.locksmith, "why", shared] + view([".", "h1"]), timeout: 120)
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stdout.hasPrefix("\(shared): won't open read-write"), r.stdout)
        XCTAssertTrue(r.stdout.contains("  QEMU says: Failed to get \"write\" lock\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("  cluster: 2 hosts in view (h2, h1); shared storage gluster:"), r.stdout)
        XCTAssertTrue(r.stdout.contains("  blocked by qemu-io (pid \(pid)) on h1 (qemu, rw)\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("remedy: on h1: stop qemu-io (pid \(pid))"), r.stdout)
        let j = try bed.run(on: "h2", [Run.locksmith, "why", "--json", shared] + view([".", "h1"]), timeout: 120)
        let obj = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any] ?? [:]
        let cl = obj["cluster"] as? [String: Any] ?? [:]
        let hs = cl["holders"] as? [[String: Any]] ?? []
        XCTAssertEqual(hs.map { "\($0["host"] as? String ?? "?")/\($0["pid"] as? Int ?? 0)/\($0["blocks"] as? Bool ?? false)" },
                       ["h1/\(pid)/true"], j.stdout)
        let hosts = cl["hosts"] as? [[String: Any]] ?? []
        XCTAssertEqual(hosts.map { "\($0["name"] as? String ?? "?")=\($0["hostname"] as? String ?? "?")" }, [".=h2", "\(bed.host("h1").address)=h1"])
        XCTAssertTrue(hosts.allSatisfy { ($0["version"] as? String)?.isEmpty == false && $0["reached"] as? Bool == true }, "\(hosts)")
    }

    /// Two `locksmith hold --exclusive` of one shared image, on h1 and h2, each in its own
    /// host's /var/tmp: each believes it is alone. audit across the hosts says split-lock
    /// (critical), with the evidence of each host and a remedy; on one host alone it cannot.
    func testAuditFindsASplitLock() throws {
        let shared = try image("cv-split")
        try hold("h1", [Run.locksmith, "hold", "--exclusive", shared, "--", "sleep", "600"])
        try hold("h2", [Run.locksmith, "hold", "--exclusive", shared, "--", "sleep", "600"])
        _ = try listUntil(["h1", "h2"]) { images($0, path: shared).first.map { holders($0).count == 2 } == true }
        let r = try Run.capture(Run.locksmith, ["audit", "--json"] + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(r.status, 1, "\(r)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        let split = (obj["findings"] as? [[String: Any]] ?? []).filter { $0["rule"] as? String == "split-lock" && $0["image"] as? String == shared }
        XCTAssertEqual(split.count, 1, r.stdout)
        let f = split.first ?? [:]
        XCTAssertEqual(f["severity"] as? String, "critical")
        let who = (f["holders"] as? [[String: Any]] ?? []).map { "\($0["host"] as? String ?? "?")/\($0["pid"] as? Int ?? 0)" }
        XCTAssertEqual(who, ["h1/\(held[0].pid)", "h2/\(held[1].pid)"])
        XCTAssertEqual((f["files"] as? [String] ?? []).map { $0.prefix(3) }, ["h1:", "h2:"])
        XCTAssertTrue((f["evidence"] as? String ?? "").contains("each host believes it is alone"), "\(f)")
        XCTAssertFalse((f["remedy"] as? String ?? "").isEmpty)
        // Each host's own findings carry their host.
        XCTAssertTrue((obj["findings"] as? [[String: Any]] ?? []).contains { $0["rule"] as? String == "local-lock-on-shared-storage" && $0["host"] as? String == "h2" })
        // One host alone sees no split.
        let alone = try Run.capture(Run.locksmith, ["audit", "--json"] + view(["h1"]), timeout: 120)
        XCTAssertFalse(alone.stdout.contains("split-lock"), alone.stdout)
        let text = try Run.capture(Run.locksmith, ["audit"] + view(["h1", "h2"]), timeout: 120)
        XCTAssertTrue(text.stdout.contains("CRITICAL split-lock  \(shared)\n"), text.stdout)
    }

    /// One shared image open for writing on h1 and on h2 (python, no lock: each host's
    /// audit alone can only call it an unlocked writer): cross-host-writers, critical, with
    /// each host's writer; a writer on one host only is not.
    func testAuditFindsCrossHostWriters() throws {
        let shared = try image("cv-writers")
        let py = "import os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); time.sleep(600)"
        try hold("h1", ["python3", "-c", py, shared])
        func finding(_ hosts: [String]) throws -> [String: Any]? {
            let r = try Run.capture(Run.locksmith, ["audit", "--json"] + view(hosts), timeout: 120)
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
            return (obj["findings"] as? [[String: Any]] ?? []).first { $0["rule"] as? String == "cross-host-writers" && $0["image"] as? String == shared }
        }
        // Until h1's writer is seen (bounded by rounds): one host writing is no cross-host hazard.
        for _ in 0..<100 {
            let r = try Run.capture(Run.locksmith, ["audit", "--json", "--fail-on", "info"] + view(["h1", "h2"]), timeout: 120)
            if r.stdout.contains(shared) { break }
            usleep(50_000)
        }
        XCTAssertNil(try finding(["h1", "h2"]))
        try hold("h2", ["python3", "-c", py, shared])
        var f: [String: Any]?
        for _ in 0..<100 {
            f = try finding(["h1", "h2"])
            if f != nil { break }
            usleep(50_000)
        }
        let found = try XCTUnwrap(f, "cross-host-writers")
        XCTAssertEqual(found["severity"] as? String, "critical")
        let who = (found["holders"] as? [[String: Any]] ?? []).map { "\($0["host"] as? String ?? "?")/\($0["pid"] as? Int ?? 0)/\($0["role"] as? String ?? "?")" }
        XCTAssertEqual(who, ["h1/\(held[0].pid)/writer", "h2/\(held[1].pid)/writer"])
        XCTAssertTrue((found["evidence"] as? String ?? "").contains("open for writing on 2 hosts"), "\(found)")
        XCTAssertTrue((found["remedy"] as? String ?? "").contains("share-rw=on"), "\(found)")
    }

    /// watch over h1 and h2: one stream; a `locksmith hold` of one shared image on each host
    /// is two lock-acquired events, each naming its host.
    func testWatchIsOneStreamWithTheHostOfEveryEvent() throws {
        let shared = try image("cv-watch")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Run.locksmith)
        p.arguments = ["watch", "--interval", "0.3", "--max-events", "2", "--findings", "none", "--count", "400"] + view(["h1", "h2"])
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // Its first snapshot of both hosts is taken when it says so on stderr.
        var said = ""
        while !said.contains("watching every") {
            let d = err.fileHandleForReading.availableData
            if d.isEmpty { break }
            said += String(decoding: d, as: UTF8.self)
        }
        XCTAssertTrue(said.contains("watching every"), said)
        try hold("h1", [Run.locksmith, "hold", "--shared", shared, "--", "sleep", "600"])
        try hold("h2", [Run.locksmith, "hold", "--shared", shared, "--", "sleep", "600"])
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, text)
        for (h, pid) in held {
            XCTAssertTrue(lines.contains { $0.contains(" lock-acquired \(shared) pid \(pid) (locksmith) read lockfile") && $0.hasSuffix(" on \(h)") },
                          "\(h): \(text)")
        }
    }

    /// The TUI over h1, h2 and a host that does not answer: the shared image's rows with
    /// HOST, holders per host and the host down in the header; `/h2` keeps h2's row.
    func testTUIShowsEveryHostsRowsAndTheHostDown() throws {
        let shared = try image("cv-tui")
        try hold("h1", [Run.locksmith, "hold", "--shared", shared, "--", "sleep", "600"])
        try hold("h2", [Run.locksmith, "hold", "--shared", shared, "--", "sleep", "600"])
        _ = try listUntil(["h1", "h2"]) { images($0, path: shared).first.map { holders($0).count == 2 } == true }
        let pane = try TmuxPane(width: 160, height: 30)
        let name = (shared as NSString).lastPathComponent
        let args = (["tui", "--interval", "0.5", "--filter", name] + view(["h1", "h2", "10.77.0.250"], timeout: 2))
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        try pane.type("\(Run.locksmith) \(args); echo EXIT=$?")
        // The list's rows (a row starts with the selection mark or a blank, then the image).
        func rows(_ screen: String) -> [Substring] {
            screen.split(separator: "\n").filter { $0.dropFirst().hasPrefix(shared) }
        }
        // (The screen is captured while curses may be drawing: wait for a whole frame.)
        var screen = try pane.waitFor("1 host down and two rows", timeout: 60) { $0.contains("1 host down") && rows($0).count == 2 }
        XCTAssertTrue(screen.contains("h1:1 h2:1"), screen)
        XCTAssertEqual(rows(screen).count, 2, screen)
        XCTAssertTrue(rows(screen).contains { $0.contains(" h1 ") } && rows(screen).contains { $0.contains(" h2 ") }, screen)
        // The filter now: this image on h2.
        try pane.keys("/")
        for _ in name { try pane.keys("BSpace") }
        try pane.keys("h2", "Enter")
        screen = try pane.waitFor("filter h2 and one row", timeout: 30) { $0.contains("filter \"h2\"") && rows($0).count == 1 }
        XCTAssertEqual(rows(screen).count, 1, screen)
        XCTAssertTrue(rows(screen).first?.contains(" h2 ") ?? false, screen)
        try pane.keys("q")
        try pane.waitFor("EXIT=0", timeout: 30)
    }

    /// A local file of the same path on h1 and h2 is two files: h1's holder of its own does
    /// not block h2's, and why on h2 over both hosts says so and opens.
    func testWhyOnALocalPathCountsOnlyThisHost() throws {
        let local = "/var/tmp/cv-why-local-\(getpid()).img"
        for h in ["h1", "h2"] {
            XCTAssertEqual(try bed.run(on: h, ["qemu-img", "create", "-q", "-f", "raw", local, "1M"]).status, 0)
        }
        defer { for h in ["h1", "h2"] { _ = try? bed.run(on: h, ["rm", "-f", local]) } }
        try hold("h1", ["qemu-io", "-f", "raw", "-c", "sleep 600000", local])
        _ = try listUntil(["h1"]) { images($0, path: local).first.map { holders($0).count == 1 } == true }
        let r = try bed.run(on: "h2", [Run.locksmith, "why", local] + view([".", "h1"]), timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.hasPrefix("\(local): opens read-write\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("; a local file: only this host's holders count\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("  no holder on any host in view\n"), r.stdout)
        XCTAssertFalse(r.stdout.contains("blocked by"), r.stdout)
        // On h1 the same question names its own holder.
        let h1 = try bed.run(on: "h1", [Run.locksmith, "why", local] + view([".", "h2"]), timeout: 120)
        XCTAssertEqual(h1.status, 1, "\(h1)")
        XCTAssertTrue(h1.stdout.contains("  blocked by qemu-io (pid \(held[0].pid)) on h1 (qemu, rw)\n"), h1.stdout)
    }
}
