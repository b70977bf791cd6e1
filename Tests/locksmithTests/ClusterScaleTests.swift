import Foundation
import XCTest
import _TestSupport

/// 100 hosts through `--ssh` pointed at scripts/ssh-replay, which answers each from a
/// recording with 50 ms of latency: the merge is exact (one shared image with a holder per
/// host, each named by its host; every host reached; a missing host is the only failure).
/// The time it takes is measured by scripts/bench-cluster, not here.
final class ClusterScaleTests: XCTestCase {
    func testAHundredRecordedHostsMergeExactly() throws {
        let dir = TempDir("cluster-scale")
        let locks = dir.path + "/locks", answers = dir.path + "/answers", image = dir.path + "/img.qcow2"
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: answers, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: image, contents: nil)
        // A real answer: `locksmith hold` holds the image, `list --json` names it.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: Run.locksmith)
        holder.arguments = ["hold", "--exclusive", "--lock-dir", locks, image, "--", "sleep", "600"]
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        var recorded = ""
        for _ in 0..<200 {
            recorded = try Run.capture(Run.locksmith, ["list", "--json", "--lock-dir", locks]).stdout
            if recorded.contains("\"pid\":\(holder.processIdentifier)") { break }
            usleep(25_000)
        }
        // Each host: its own name, this test's image only (the machine's other images are other
        // tests'), marked as one file on shared storage.
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(recorded.utf8)) as? [String: Any])
        var mine = (obj["images"] as? [[String: Any]] ?? []).filter { $0["path"] as? String == image }
        XCTAssertEqual(mine.count, 1, recorded)
        XCTAssertTrue(mine.first?["storage"] is NSNull, "a local file has no storage identity")
        mine[0]["storage"] = "gluster:scale/img.qcow2"
        obj["images"] = mine
        obj["lock_files"] = (obj["lock_files"] as? [[String: Any]] ?? []).filter { $0["image"] as? String == image }
        for i in 1...100 {
            obj["host"] = "h\(i)"
            try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: "\(answers)/h\(i).json"))
        }
        let replay = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/ssh-replay").path
        let hosts = (1...100).flatMap { ["--host", "h\($0)"] }
        let r = try Run.capture(Run.locksmith, ["list", "--json", "--ssh", "\(replay) \(answers)"] + hosts, timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r.stderr)")
        obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let reached = (obj["hosts"] as? [[String: Any]] ?? []).map { "\($0["name"] as? String ?? "?")=\($0["reached"] as? Bool ?? false)" }
        XCTAssertEqual(reached, (1...100).map { "h\($0)=true" })
        let images = obj["images"] as? [[String: Any]] ?? []
        XCTAssertEqual(images.count, 1, "one shared image, however many hosts: \(images.map { $0["path"] ?? "?" })")
        let holders = images.first?["holders"] as? [[String: Any]] ?? []
        XCTAssertEqual(holders.map { $0["host"] as? String ?? "?" }.sorted(), (1...100).map { "h\($0)" }.sorted())
        XCTAssertTrue(holders.allSatisfy { $0["pid"] as? Int == Int(holder.processIdentifier) && $0["command"] as? String == "locksmith" })
        XCTAssertEqual((obj["lock_files"] as? [[String: Any]] ?? []).compactMap { $0["host"] as? String }.count, 100)

        // The same with one host that has no answer: the 100 others are all there, exit 2.
        let more = try Run.capture(Run.locksmith, ["list", "--json", "--ssh", "\(replay) \(answers)"] + hosts + ["--host", "h101"], timeout: 120)
        XCTAssertEqual(more.status, 2)
        XCTAssertEqual(more.stderr, "locksmith: host h101: ssh failed: ssh: connect to host h101 port 22: No route to host\n")
        let obj2 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(more.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(((obj2["images"] as? [[String: Any]])?.first?["holders"] as? [Any])?.count, 100)

        // On a terminal, a progress line on stderr while the hosts answer, gone at the end.
        let pane = try TmuxPane(width: 120, height: 10)
        try pane.type("REPLAY_LATENCY=0.2 \(Run.locksmith) list --json --ssh '\(replay) \(answers)' \(hosts.joined(separator: " ")) >/dev/null; echo EXIT=$?")
        try pane.waitFor("/100 hosts answered", timeout: 60)
        let end = try pane.waitFor("EXIT=0", timeout: 60)
        let last = end.split(separator: "\n").first { $0.contains("EXIT=0") } ?? ""
        XCTAssertFalse(last.contains("answered"), "the progress line is cleared: \(end)")
    }

    /// What cannot be a cluster view is a usage error, before anything is run: a destination
    /// that ssh would take for an option, a host list with no host, an unbalanced --ssh,
    /// --fix across hosts; a --hosts file that cannot be read cannot be checked (2).
    func testBadClusterOptionsAreRefusedBeforeAnythingRuns() throws {
        let dir = TempDir("cluster-usage")
        let mark = dir.path + "/ran"
        let empty = dir.path + "/hosts"
        try "# nobody\n\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let cases: [([String], Int32, String)] = [
            (["list", "--host=-oProxyCommand=touch \(mark)"], 64, "not an ssh destination: -oProxyCommand=touch"),
            (["list", "--hosts", empty], 64, "--hosts names no host"),
            (["list", "--host", "h1", "--ssh", "ssh 'open"], 64, "--ssh: an unterminated quote"),
            (["list", "--ssh", "ssh"], 64, "--ssh needs --host or --hosts"),
            (["list", "--host", "h1", "--parallel", "0"], 64, "--parallel takes 1 to 1024"),
            (["audit", "--fix", "--host", "h1"], 64, "--fix works on this host only"),
            (["list", "--hosts", dir.path + "/missing"], 2, "cannot read --hosts"),
        ]
        for (args, status, says) in cases {
            let r = try Run.capture(Run.locksmith, args)
            XCTAssertEqual(r.status, status, "\(args): \(r)")
            XCTAssertTrue(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: mark), "no ssh ran")
        // LOCKSMITH_SSH matters only to a cluster view.
        let plain = try Run.capture(Run.locksmith, ["list", "--lock-dir", dir.path], environment: ["LOCKSMITH_SSH": "ssh '"])
        XCTAssertEqual(plain.status, 0, "\(plain)")
    }
}
