import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `try`, `hold` and `clear-locks` on gluster:// images, as the real binary, against the
/// real test bed. Two "hosts" are processes in UTS namespaces of their own (`unshare --uts`).
final class GlusterCommandsTests: XCTestCase {
    private func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `locksmith hold URL -- sleep 60` on host `host`.
    private func holder(on host: String, _ url: String, shared: Bool = false) throws -> Background {
        let (exe, args) = OtherHost.argv(host, Run.locksmith,
                                         ["hold"] + (shared ? ["--shared"] : []) + [url, "--", "sleep", "60"])
        return try Background(exe, args)
    }

    /// Shared holders of a new file on h1 (a) and h2 (b), and the first `try` that shows both
    /// (b got its lock then). The caller stops the holders.
    private func sharedHoldersOnTwoHosts(_ label: String, _ bed: GlusterTestBed) throws
        -> (url: String, a: Background, b: Background, shown: RunResult) {
        let url = bed.url(try bed.makeFile(label))
        let a = try holder(on: "h1", url, shared: true)
        bed.waitUntil(url, held: true)
        let b: Background
        do { b = try holder(on: "h2", url, shared: true) } catch {
            a.stop()
            throw error
        }
        var r = try Run.locksmith(["try", url])
        for _ in 0..<100 where !r.stdout.contains("on host h2") {
            usleep(100_000)
            r = try Run.locksmith(["try", url])
        }
        return (url, a, b, r)
    }

    private func onHost(_ host: String, _ args: [String]) throws -> RunResult {
        let (exe, argv) = OtherHost.argv(host, Run.locksmith, args)
        return try Run.capture(exe, argv)
    }

    func testCrossHostTryNamesHostAndPid() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("cli-cross"))
        let h1 = try holder(on: "h1", url)
        defer { h1.stop() }
        bed.waitUntil(url, held: true)

        let r = try onHost("h2", ["try", url])
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stdout.hasPrefix("\(url): held: an exclusive lock (gluster scheme) cannot be taken\n"), "\(r)")
        XCTAssertTrue(r.stdout.contains("holder: pid \(h1.pid) on host h1 holds a WRITE lock on bytes 0-EOF (lk-owner h1:\(h1.pid))"),
                      "\(r)")

        let plain = try onHost("h2", ["try", "--no-statedump", "--shared", url])
        XCTAssertEqual(plain.status, 1, "\(plain)")
        XCTAssertTrue(plain.stdout.contains("holder: pid \(h1.pid) holds a WRITE lock"), "F_GETLK alone gives the pid: \(plain)")
        XCTAssertFalse(plain.stdout.contains("on host"), "\(plain)")

        let json = try Run.locksmith(["try", "--json", url])
        XCTAssertEqual(json.status, 1, "\(json)")
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], json.stdout)
        XCTAssertEqual(obj["scheme"] as? String, "gluster")
        XCTAssertEqual(obj["image"] as? String, url)
        let holders = try XCTUnwrap(obj["gluster_holders"] as? [[String: Any]])
        XCTAssertEqual(holders.count, 1)
        XCTAssertEqual(holders.first?["pid"] as? Int, Int(h1.pid))
        XCTAssertEqual(holders.first?["host"] as? String, "h1")
        XCTAssertEqual(holders.first?["owner"] as? String, "h1:\(h1.pid)")
        XCTAssertEqual(holders.first?["source"] as? String, "statedump")

        let blocked = try onHost("h2", ["hold", url, "--", "true"])
        XCTAssertEqual(blocked.status, 1, "\(blocked)")
        XCTAssertTrue(blocked.stderr.contains("is locked by pid \(h1.pid)"), "\(blocked)")
    }

    func testSharedHoldersOnTwoHosts() throws {
        let (url, a, b, r) = try sharedHoldersOnTwoHosts("cli-shared", try GlusterTestBed.require())
        defer { a.stop(); b.stop() }
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stdout.contains("pid \(a.pid) on host h1 holds a READ lock"), "\(r)")
        XCTAssertTrue(r.stdout.contains("pid \(b.pid) on host h2 holds a READ lock"), "\(r)")
        XCTAssertEqual(try Run.locksmith(["try", "--shared", url]).status, 0, "shared locks coexist")
    }

    func testFuseMountLockIsSeenWithItsPidAndHost() throws {
        let bed = try GlusterTestBed.require()
        let name = try bed.makeFile("cli-fuse")
        let url = bed.url(name)
        let path = try bed.mountPoint() + "/" + name
        let py = try Background.lockf(path, exclusive: true)
        defer { py.stop() }
        bed.waitUntil(url, held: true)
        XCTAssertTrue(ProcLocks.rows(for: path).isEmpty, "FUSE locks are not in the local /proc/locks")

        let r = try Run.locksmith(["try", url])
        XCTAssertEqual(r.status, 1, "\(r)")
        // The statedump names the locking process and the host that made the mount; the
        // lk-owner is the kernel's opaque 8 bytes.
        XCTAssertTrue(r.stdout.contains("holder: pid \(py.pid) on host \(hostname()) holds a WRITE lock on bytes 0-EOF"), "\(r)")
        XCTAssertTrue(r.stdout.contains("client pid "), "the FUSE daemon is the client: \(r)")
    }

    func testLockReleasedWhenTheHolderIsKilled() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("cli-kill"))
        let h = try holder(on: "h1", url)
        bed.waitUntil(url, held: true)
        // Its command (sleep) would live on, keeping the fd by which Foundation sees the end.
        let command = try Run.capture("/usr/bin/pgrep", ["-P", String(h.pid)]).stdout.split(separator: "\n").compactMap { Int32($0) }
        kill(h.pid, SIGKILL)
        let start = Date()
        for c in command { kill(c, SIGKILL) }
        h.process.waitUntilExit()
        // The bricks drop a dead client's locks when its connection closes (about 1 s).
        XCTAssertTrue(bed.waitUntil(url, held: false, timeout: 10))
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertEqual(try Run.locksmith(["try", url]).status, 0)
    }

    func testClearLocksNeedsConfirmationThenFreesALiveHoldersLock() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("cli-clear"))
        let h = try holder(on: "h1", url)
        defer { h.stop() }
        bed.waitUntil(url, held: true)

        // Its host (h1) is not in view: possibly stale, so nothing is cleared, even with --yes.
        let standing = try Run.locksmith(["clear-locks", "--yes", url])
        XCTAssertEqual(standing.status, 1, "\(standing)")
        XCTAssertTrue(standing.stdout.contains("  possibly stale: pid \(h.pid) on host h1: host h1 is not in view\n"), "\(standing)")
        XCTAssertTrue(standing.stdout.contains("Nothing cleared: 1 holder is not proven stale"), "\(standing)")
        XCTAssertEqual(try Run.locksmith(["try", "--no-statedump", url]).status, 1, "still held")

        let refused = try Run.locksmith(["clear-locks", "--force-live", url])
        XCTAssertEqual(refused.status, 64, "no terminal, no --yes: \(refused)")
        XCTAssertEqual(refused.stderr, "locksmith: refusing to clear locks without confirmation: stdin is not a terminal; pass --yes\n")
        XCTAssertTrue(refused.stdout.contains("WRITE lock on bytes 0-EOF: pid \(h.pid) on host h1 (lk-owner h1:\(h.pid)"),
                      "shows what would be cleared: \(refused)")

        // --force-live on a terminal (script(1) gives it one): "n" keeps the lock.
        let script = try Run.tool("script")
        let no = try Run.capture("/bin/sh", ["-c", "echo n | \"$0\" -qec \"$1 clear-locks --force-live $2\" /dev/null", script, Run.locksmith, url])
        XCTAssertEqual(no.status, 1, "\(no)")
        XCTAssertTrue(no.stdout.contains("Clear it? [y/N]") && no.stdout.contains("Nothing cleared."), "\(no)")
        XCTAssertEqual(try Run.locksmith(["try", "--no-statedump", url]).status, 1, "still held")

        let yes = try Run.capture("/bin/sh", ["-c", "echo y | \"$0\" -qec \"$1 clear-locks --force-live $2\" /dev/null", script, Run.locksmith, url])
        XCTAssertEqual(yes.status, 0, "\(yes)")
        XCTAssertTrue(yes.stdout.contains("\(url): cleared 1 granted lock"), "\(yes)")
        XCTAssertTrue(h.process.isRunning, "the holder is alive and was not told")
        XCTAssertEqual(try Run.locksmith(["try", url]).status, 0, "free although its holder lives")

        let nothing = try Run.locksmith(["clear-locks", "--yes", url])
        XCTAssertEqual(nothing.status, 0, "\(nothing)")
        XCTAssertEqual(nothing.stdout, "\(url): no granted locks on this node's bricks; nothing to clear\n")
    }

    func testClearLocksWithYesClearsEveryHolder() throws {
        let (url, a, b, _) = try sharedHoldersOnTwoHosts("cli-clear2", try GlusterTestBed.require())
        defer { a.stop(); b.stop() }
        let kept = try Run.locksmith(["clear-locks", "--yes", url])
        XCTAssertEqual(kept.status, 1, "hosts h1 and h2 are not in view: \(kept)")
        XCTAssertTrue(kept.stdout.contains("Nothing cleared: 2 holders are not proven stale"), "\(kept)")
        let cleared = try Run.locksmith(["clear-locks", "--yes", "--force-live", url])
        XCTAssertEqual(cleared.status, 0, "\(cleared)")
        XCTAssertTrue(cleared.stdout.contains("2 granted locks of 2 holders:"), "\(cleared)")
        XCTAssertTrue(cleared.stdout.contains("cleared 2 granted locks"), "\(cleared)")
        XCTAssertEqual(try Run.locksmith(["try", url]).status, 0)
    }

    func testUnreachableServerOrVolumeExit2WithinTheTimeout() throws {
        let bed = try GlusterTestBed.require()
        let cases: [(args: [String], message: String)] = [
            (["try", "--timeout", "2", "gluster://\(bed.host)/no-such-volume/x.img"],
             "locksmith: gluster server \(bed.host):24007 has no volume no-such-volume"),
            (["hold", "--timeout", "2", "gluster://\(bed.host):24999/\(bed.volume)/x.img", "--", "true"],
             "locksmith: cannot reach glusterd at \(bed.host):24999 for volume \(bed.volume)"),
            (["try", bed.url("no-such-file.img")], "locksmith: \(bed.url("no-such-file.img")): no such image"),
            (["try", "gluster://\(bed.host)/\(bed.volume)"],
             "locksmith: gluster://\(bed.host)/\(bed.volume): not a Gluster image name: missing the file's path"),
        ]
        for c in cases {
            let start = Date()
            let r = try Run.locksmith(c.args)
            XCTAssertEqual(r.status, 2, "\(c.args): \(r)")
            XCTAssertTrue(r.stderr.hasPrefix(c.message), "\(c.args): \(r)")
            XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "one line: \(r)")
            XCTAssertEqual(r.stdout, "")
            XCTAssertLessThan(Date().timeIntervalSince(start), 2.5, "\(c.args)")
        }
        // clear-locks needs this node's glusterd.
        let noCLI = try Run.locksmith(["clear-locks", "--yes", bed.url("x.img")], environment: ["GLUSTER_SOCK": "/nonexistent/glusterd.socket"])
        XCTAssertEqual(noCLI.status, 2, "\(noCLI)")
        XCTAssertTrue(noCLI.stderr.contains("clear-locks needs the gluster CLI and a glusterd on this node"), "\(noCLI)")
    }

    func testSilentServerGivesUpAtTheTimeout() throws {
        _ = try GlusterTestBed.require()
        // Accepts TCP, never answers: libgfapi's glfs_init would wait forever.
        let py = try Background(try Run.tool("python3"), ["-c", """
            import socket, time
            s = socket.socket(); s.bind(("127.0.0.3", 24555)); s.listen(16)
            conns = []
            while True:
                conns.append(s.accept())
            """])
        defer { py.stop() }
        usleep(300_000)
        for args in [["try", "--timeout", "1"], ["hold", "--timeout", "1"]] {
            let start = Date()
            let r = try Run.locksmith(args + ["gluster://127.0.0.3:24555/v/x.img"] + (args[0] == "hold" ? ["--", "true"] : []))
            XCTAssertEqual(r.status, 2, "\(r)")
            XCTAssertTrue(r.stderr.hasPrefix("locksmith: gluster server 127.0.0.3:24555 did not answer within 1 s"), "\(r)")
            XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        }
    }

    func testHoldExitsPromptlyWhenTheServerDiesOrHangs() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("cli-dies"))
        defer {
            // Leave a working volume for the next test, whatever happened.
            if let p = try? bed.brickPID() { kill(p, SIGCONT) }
            try? bed.restartBrick()
            bed.waitUntil(url, held: false, timeout: 30)
        }

        // Hangs: a stopped brick answers nothing; the release gives up after --timeout.
        var brick = try XCTUnwrap(bed.brickPID())
        let hung = try Background(Run.locksmith, ["hold", "--timeout", "1", url, "--", "sleep", "1"])
        bed.waitUntil(url, held: true)
        kill(brick, SIGSTOP)
        var start = Date()
        hung.process.waitUntilExit()
        kill(brick, SIGCONT)
        XCTAssertEqual(hung.process.terminationStatus, 0, "the command's status")
        XCTAssertLessThan(Date().timeIntervalSince(start), 3.5, "sleep 1 + release timeout 1 + slack")
        bed.waitUntil(url, held: false)

        // Dies: the brick process is killed while the lock is held.
        let died = try Background(Run.locksmith, ["hold", url, "--", "sleep", "1"])
        bed.waitUntil(url, held: true)
        brick = try XCTUnwrap(bed.brickPID())
        kill(brick, SIGKILL)
        start = Date()
        died.process.waitUntilExit()
        XCTAssertEqual(died.process.terminationStatus, 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 3, "exits without waiting for the dead server")
    }
}
