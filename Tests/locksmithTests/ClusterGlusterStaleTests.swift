import Foundation
import XCTest
import _TestSupport

/// Gluster locks across the cluster bed (scripts/cluster-testbed): this machine is the brick
/// host (its glusterd serves volume clvol; GLUSTER_SOCK), h1 and h2 mount it through FUSE.
/// A live holder (qemu-io on h1) and a proven-stale lock: a process on h2 locks a file, h2's
/// FUSE client is frozen (SIGSTOP), the process is killed: its unlock never reaches the brick,
/// which keeps the lock of a process h2 no longer has. `list`, `why` and `clear-locks` check
/// each holder on its host over ssh (`locksmith processes --json`); K in the TUI signals a
/// holder on h2 through h2's own locksmith (`locksmith signal`).
final class ClusterGlusterStaleTests: XCTestCase {
    var bed: ClusterTestBed!
    var ssh = ""
    var server = ""
    var dir = ""
    /// The frozen FUSE client of h2, to thaw whatever happens.
    var frozen: Int32?
    var held: [(host: String, pid: Int32)] = []

    override func setUpWithError() throws {
        bed = try ClusterTestBed.require(hosts: 2)
        let key = try XCTUnwrap(ProcessInfo.processInfo.environment["CLUSTER_SSH_KEY"])
        server = try XCTUnwrap(ProcessInfo.processInfo.environment["CLUSTER_SERVER"])
        ssh = "ssh -i \(key) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -l root"
        dir = "st-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(try bed.run(on: "h1", ["mkdir", "\(bed.shared)/\(dir)"]).status, 0)
    }

    override func tearDown() {
        thaw()
        for h in held { try? bed.stop(h.pid, on: h.host) }
        held = []
        _ = try? bed.run(on: "h1", ["rm", "-rf", "\(bed.shared)/\(dir)"])
    }

    func thaw() {
        if let g = frozen { _ = try? bed.run(on: "h2", ["/bin/kill", "-CONT", "\(g)"]) }
        frozen = nil
    }

    /// The view's options: `.` (this machine, the brick host) and the named bed hosts.
    func view(_ hosts: [String]) -> [String] {
        ["--ssh", ssh, "--remote-command", Run.locksmith, "--host-timeout", "30", "--host", "."]
            + hosts.flatMap { h in ["--host", bed.host(h).address] }
    }

    func image(_ name: String) throws -> (path: String, url: String) {
        let path = "\(bed.shared)/\(dir)/\(name)"
        XCTAssertEqual(try bed.run(on: "h1", ["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"]).status, 0)
        return (path, "gluster://\(server)/\(bed.volume)/\(dir)/\(name)")
    }

    /// Whether any lock is on the file, asked with F_GETLK from h1 (nothing taken).
    func locked(_ path: String) throws -> Bool {
        let py = """
            import fcntl, os, struct, sys
            fd = os.open(sys.argv[1], os.O_RDONLY)
            r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
            sys.exit(0 if struct.unpack("hhqqi", r)[0] != fcntl.F_UNLCK else 1)
            """
        return try bed.run(on: "h1", ["python3", "-c", py, path]).status == 0
    }

    func waitLocked(_ path: String, _ want: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        var rounds = 0
        while try locked(path) != want && rounds < 400 {
            rounds += 1
            usleep(25_000)
        }
        XCTAssertLessThan(rounds, 400, "\(path) never became \(want ? "locked" : "free")", file: file, line: line)
    }

    /// A live holder: qemu-io on h1 (through h1's FUSE mount).
    func liveHolder(_ path: String) throws -> Int32 {
        let pid = try bed.spawn(on: "h1", ["qemu-io", "-c", "sleep 600000", path])
        held.append(("h1", pid))
        try waitLocked(path)
        return pid
    }

    /// A stale lock: python on h2 takes a write lock, h2's FUSE client is frozen, python is
    /// killed. Returns python's pid (h2's numbering).
    func staleLock(_ path: String) throws -> Int32 {
        let py = "import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR)\nfcntl.lockf(fd, fcntl.LOCK_EX)\ntime.sleep(600)"
        let pid = try bed.spawn(on: "h2", ["python3", "-c", py, path])
        try waitLocked(path)
        let g = try bed.run(on: "h2", ["pgrep", "-x", "glusterfs"]).stdout.split(separator: "\n").compactMap { Int32($0) }
        XCTAssertEqual(g.count, 1, "one FUSE client on h2")
        frozen = try XCTUnwrap(g.first)
        XCTAssertEqual(try bed.run(on: "h2", ["/bin/kill", "-STOP", "\(frozen!)"]).status, 0)
        XCTAssertEqual(try bed.run(on: "h2", ["/bin/kill", "-KILL", "\(pid)"]).status, 0)
        // Until it has let go of its files (it may linger, exiting, while its unlock waits on the frozen client).
        var rounds = 0
        while rounds < 200, let fds = try? bed.run(on: "h2", ["ls", "/proc/\(pid)/fd"]), fds.status == 0, !fds.stdout.isEmpty {
            rounds += 1
            usleep(25_000)
        }
        XCTAssertTrue(try locked(path), "the brick keeps the lock of the killed process")
        return pid
    }

    func holders(_ obj: [String: Any], _ path: String) -> [[String: Any]] {
        (obj["images"] as? [[String: Any]] ?? []).filter { $0["path"] as? String == path }.flatMap { $0["holders"] as? [[String: Any]] ?? [] }
    }

    func testListAndWhyTellAProvenStaleLockFromALiveOne() throws {
        let live = try image("live.qcow2"), stale = try image("stale.qcow2")
        let livePid = try liveHolder(live.path)
        let stalePid = try staleLock(stale.path)
        let scan = ["--gluster", "\(server)/\(bed.volume)", "--gluster-path", "/\(dir)"]

        let r = try Run.locksmith(["list", "--json"] + scan + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r)")
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let s = holders(obj, stale.url).filter { $0["scheme"] as? String == "gluster" }
        XCTAssertEqual(s.count, 1, "\(s)")
        XCTAssertEqual(s.first?["host"] as? String, "h2")
        XCTAssertEqual(s.first?["pid"] as? Int, Int(stalePid))
        XCTAssertEqual(s.first?["liveness"] as? String, "proven-stale", "\(s)")
        let dump = s.first?["statedump"] as? [String: Any]
        XCTAssertNotNil(dump?["granted"] as? String, "the brick's grant time rides along: \(s)")
        XCTAssertEqual(dump?["locksmith_owner"] as? Bool, false)
        let why = s.first?["liveness_reason"] as? String ?? ""
        XCTAssertTrue(why.contains("has no process \(stalePid)") || why.contains("has no file of volume \(bed.volume) open"), why)
        let l = holders(obj, live.url).filter { $0["scheme"] as? String == "gluster" }
        XCTAssertEqual(l.map { $0["liveness"] as? String }, ["live"], "\(l)")
        XCTAssertEqual(l.first?["command"] as? String, "qemu-io", "named from h1's process table")
        XCTAssertEqual(l.first?["pid"] as? Int, Int(livePid))
        XCTAssertEqual(l.first?["host"] as? String, "h1")

        // The table: STALE after HOST.
        let text = try Run.locksmith(["list"] + scan + view(["h1", "h2"]), timeout: 120)
        let row = { (url: String) in text.stdout.split(separator: "\n").first { $0.hasPrefix(url + " ") && $0.contains(" gluster ") }.map(String.init) ?? "" }
        XCTAssertTrue(text.stdout.split(separator: "\n").first?.contains(" HOST STALE ") ?? false, text.stdout)
        XCTAssertTrue(row(stale.url).contains(" h2   proven "), text.stdout)
        XCTAssertTrue(row(live.url).contains(" h1   live   qemu-io "), text.stdout)

        // h2 not in view: the same lock is only possibly stale.
        let partial = try Run.locksmith(["list", "--json"] + scan + view(["h1"]), timeout: 120)
        let p = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(partial.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(holders(p, stale.url).filter { $0["scheme"] as? String == "gluster" }.map { $0["liveness"] as? String },
                       ["possibly-stale"])

        // why on the gluster image: the blocker on h2 is proven stale, its remedy is clear-locks.
        let w = try Run.locksmith(["why", stale.url] + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(w.status, 1, "\(w)")
        XCTAssertTrue(w.stdout.contains("  blocked by python3 (pid \(stalePid); proven stale: ") || w.stdout.contains("  blocked by ? (pid \(stalePid); proven stale: "), w.stdout)
        XCTAssertTrue(w.stdout.contains("remedy: nobody holds it any more: `locksmith clear-locks \(stale.url)`"), w.stdout)
        let wj = try Run.locksmith(["why", "--json", stale.url] + view(["h1", "h2"]), timeout: 120)
        let cluster = (try JSONSerialization.jsonObject(with: Data(wj.stdout.utf8)) as? [String: Any])?["cluster"] as? [String: Any]
        let entries = (cluster?["holders"] as? [[String: Any]] ?? []).filter { $0["host"] as? String == "h2" }
        XCTAssertEqual(entries.map { $0["liveness"] as? String }, ["proven-stale"], "\(wj.stdout.prefix(3000))")
        let wl = try Run.locksmith(["why", live.url] + view(["h1", "h2"]), timeout: 120)
        XCTAssertTrue(wl.stdout.contains("  blocked by qemu-io (pid \(livePid)) on h1 (gluster"), wl.stdout)
    }

    func testClearLocksClearsOnlyProvenStaleLocksUnlessForceLive() throws {
        let live = try image("live.qcow2"), stale = try image("stale.qcow2")
        let livePid = try liveHolder(live.path)
        let stalePid = try staleLock(stale.path)

        // A live holder: named, nothing cleared (exit 1), its lock stays.
        var r = try Run.locksmith(["clear-locks", "--yes", live.url] + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stdout.contains("  live: pid \(livePid) on host h1 (qemu-io, user root)\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("Nothing cleared: 1 holder is not proven stale"), r.stdout)
        XCTAssertTrue(try locked(live.path))

        // The stale lock with h2 out of view: only possibly stale, nothing cleared.
        r = try Run.locksmith(["clear-locks", "--yes", stale.url] + view(["h1"]), timeout: 120)
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stdout.contains("  possibly stale: pid \(stalePid) on host h2: host h2 is not in view\n"), r.stdout)
        XCTAssertTrue(try locked(stale.path))
        // An unreachable host in view: possibly stale too.
        r = try Run.locksmith(["clear-locks", "--yes", stale.url, "--ssh", ssh, "--remote-command", Run.locksmith, "--host-timeout", "3",
                               "--host", "root@h2"], timeout: 120)
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertTrue(r.stdout.contains("  possibly stale: pid \(stalePid) on host h2: host h2 did not answer"), r.stdout)
        XCTAssertTrue(r.stderr.contains("locksmith: host root@h2: "), r.stderr)

        // h2 in view: proven stale, cleared; the file is free.
        r = try Run.locksmith(["clear-locks", "--yes", stale.url] + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("  proven stale: pid \(stalePid) on host h2"), r.stdout)
        XCTAssertTrue(r.stdout.contains("\(stale.url): cleared 1 granted lock"), r.stdout)
        XCTAssertFalse(try locked(stale.path), "the stale lock is gone")
        thaw()

        // --force-live asks on a terminal: n leaves the lock.
        let pane = try TmuxPane(width: 200, height: 50)
        let env = "GLUSTER_SOCK=\(bed.glusterSocket) "
        let args = (["clear-locks", "--force-live", live.url] + view(["h1", "h2"])).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        try pane.type(env + Run.locksmith + " " + args.joined(separator: " ") + "; echo EXIT=$?")
        try pane.waitFor("[y/N]", timeout: 60)
        try pane.keys("n", "Enter")
        let screen = try pane.waitFor("EXIT=", timeout: 30)
        XCTAssertTrue(screen.contains("Nothing cleared.\nEXIT=1"), screen)
        XCTAssertTrue(try locked(live.path))
        // --force-live --yes: cleared although live; the holder is not told (it runs on).
        r = try Run.locksmith(["clear-locks", "--force-live", "--yes", live.url] + view(["h1", "h2"]), timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("--force-live: the holders are not told"), r.stdout)
        XCTAssertFalse(try locked(live.path))
        XCTAssertEqual(try bed.run(on: "h1", ["/bin/kill", "-0", "\(livePid)"]).status, 0, "the live holder runs on")
    }

    /// K in h1's... this machine's TUI on a holder of h2 (qemu-io on h2's own /var/tmp): h2's
    /// locksmith signals it after its own checks; a holder replaced since the TUI's scan is refused.
    func testKOverSSHSignalsAHolderOnH2AndRefusesAReplacedOne() throws {
        let path = "/var/tmp/k-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).qcow2"
        XCTAssertEqual(try bed.run(on: "h2", ["qemu-img", "create", "-q", "-f", "qcow2", path, "1M"]).status, 0)
        defer { _ = try? bed.run(on: "h2", ["rm", "-f", path]) }
        func holder() throws -> Int32 {
            let pid = try bed.spawn(on: "h2", ["qemu-io", "-c", "sleep 600000", path])
            held.append(("h2", pid))
            var rounds = 0
            while rounds < 200, !(try bed.run(on: "h2", [Run.locksmith, "list", "--json"]).stdout.contains("\"pid\":\(pid),")) {
                rounds += 1
                usleep(25_000)
            }
            return pid
        }
        func alive(_ pid: Int32) throws -> Bool { try bed.run(on: "h2", ["/bin/kill", "-0", "\(pid)"]).status == 0 }
        let first = try holder()

        let pane = try TmuxPane(width: 160, height: 30)
        let args = (["tui", "--interval", "3600", "--filter", path] + view(["h1", "h2"]))
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        try pane.type(Run.locksmith + " " + args.joined(separator: " ") + "; echo EXIT=$?")
        var screen = try pane.waitFor("\(first) ", timeout: 60)
        XCTAssertTrue(screen.contains(" h2 "), screen)

        // Replaced behind the TUI's back: the pid it shows holds nothing any more.
        try bed.stop(first, on: "h2")
        let second = try holder()
        try pane.keys("K")
        screen = try pane.waitFor("on h2? y sends it")
        try pane.keys("y")
        screen = try pane.waitFor("Not signalled", timeout: 60)
        XCTAssertTrue(screen.contains("h2: Not signalled: pid \(first) holds no qemu lock on \(path)"), screen)
        XCTAssertTrue(try alive(second), "the new holder is left alone")

        // Refreshed: the new holder, signalled by h2's locksmith.
        try pane.keys("r")
        screen = try pane.waitFor("\(second) ", timeout: 60)
        try pane.keys("K")
        try pane.waitFor("SIGTERM pid \(second)")
        try pane.keys("n")
        screen = try pane.waitFor("Not sent")
        XCTAssertTrue(try alive(second), "n sends nothing")
        try pane.keys("K")
        try pane.waitFor("SIGTERM pid \(second)")
        try pane.keys("y")
        screen = try pane.waitFor("Sent SIGTERM", timeout: 60)
        XCTAssertTrue(screen.contains("h2: Sent SIGTERM to pid \(second) (qemu-io)."), screen)
        var rounds = 0
        while try alive(second) && rounds < 200 {
            rounds += 1
            usleep(25_000)
        }
        XCTAssertFalse(try alive(second), "the holder on h2 got SIGTERM")
        try pane.keys("q")
        try pane.waitFor("EXIT=0", timeout: 20)
    }
}
