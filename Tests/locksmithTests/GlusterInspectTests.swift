import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `list --gluster`, `why gluster://…` and the TUI's gluster rows, as the real binary,
/// against the real test bed. Holders on "other hosts" run under `unshare --uts`.
final class GlusterInspectTests: XCTestCase {
    private func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A directory of its own on the volume (so that a scan sees only this test's files),
    /// made through the FUSE mount; returns its path in the volume (`/gl-list-123-456`).
    private func volumeDirectory(_ bed: GlusterTestBed, _ label: String) throws -> String {
        let name = "gl-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let mount = try bed.mountPoint()
        XCTAssertEqual(mkdir(mount + "/" + name, 0o755), 0, "mkdir \(name)")
        return "/" + name
    }

    /// Creates a 1 MiB file at `path` in the volume; returns its gluster:// URL.
    private func makeFile(_ bed: GlusterTestBed, _ path: String) throws -> String {
        let full = try bed.mountPoint() + path
        XCTAssertTrue(FileManager.default.createFile(atPath: full, contents: Data(count: 1 << 20)), "create \(full)")
        return bed.url(String(path.dropFirst()))
    }

    /// `locksmith hold URL -- sleep 120` on host `host`.
    private func holder(on host: String, _ url: String, shared: Bool = false) throws -> Background {
        let (exe, args) = OtherHost.argv(host, Run.locksmith,
                                         ["hold"] + (shared ? ["--shared"] : []) + [url, "--", "sleep", "120"])
        return try Background(exe, args)
    }

    /// SIGKILL to a holder and its command (which would otherwise live on with the fd
    /// through which Foundation notices the end).
    private func killHolder(_ h: Background) throws {
        let children = try Run.capture("/usr/bin/pgrep", ["-P", String(h.pid)]).stdout.split(separator: "\n").compactMap { Int32($0) }
        kill(h.pid, SIGKILL)
        for c in children { kill(c, SIGKILL) }
        h.process.waitUntilExit()
    }

    /// A /proc with an empty lock table and no processes: the local part of a scan takes no
    /// time and shows nothing, so timings and output are the volume's alone.
    private func emptyProc() -> TempDir {
        let d = TempDir("gl-proc")
        d.makeFile("locks", size: 0)
        d.makeFile("stat", size: 0)
        return d
    }

    private func json(_ r: RunResult) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    // MARK: - list --gluster

    func testListShowsLockedImagesWithPidAndHostAndForgetsAKilledHolder() throws {
        let bed = try GlusterTestBed.require()
        let dir = try volumeDirectory(bed, "list")
        XCTAssertEqual(mkdir(try bed.mountPoint() + dir + "/sub", 0o755), 0)
        let vm1 = try makeFile(bed, dir + "/vm1.qcow2")
        let vm2 = try makeFile(bed, dir + "/sub/vm2.raw")
        let free = try makeFile(bed, dir + "/free.img")
        let notes = try makeFile(bed, dir + "/notes.txt")
        let h1 = try holder(on: "h1", vm1)
        defer { h1.stop() }
        let h2 = try holder(on: "h2", vm2, shared: true)
        defer { h2.stop() }
        let h3 = try holder(on: "h1", notes)
        defer { h3.stop() }
        for u in [vm1, vm2, notes] { bed.waitUntil(u, held: true) }
        let proc = emptyProc()
        let base = ["list", "--proc", proc.path, "--gluster", "\(bed.host)/\(bed.volume)", "--gluster-path", dir]

        // F_GETLK alone: pid and mode, no host (no HOST column then).
        let plain = try Run.locksmith(base + ["--no-statedump"])
        XCTAssertEqual(plain.status, 0, "\(plain)")
        let lines = plain.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first?.split(separator: " ").map(String.init), ["IMAGE", "SCHEME", "MODE", "PID", "COMMAND", "VM", "USER", "AGE"],
                       plain.stdout)
        XCTAssertEqual(lines.count, 3, "two locked images, by name: \(plain.stdout)")
        XCTAssertTrue(lines.contains { $0.hasPrefix(vm1 + " ") && $0.contains(" gluster write \(h1.pid) ") }, plain.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix(vm2 + " ") && $0.contains(" gluster read  \(h2.pid) ") }, plain.stdout)
        XCTAssertFalse(plain.stdout.contains(free), "a free image is no lock: \(plain.stdout)")
        XCTAssertFalse(plain.stdout.contains("notes.txt"), "not an image name: \(plain.stdout)")

        let all = try Run.locksmith(base + ["--all-files", "--no-statedump"])
        XCTAssertTrue(all.stdout.contains(notes + " "), "--all-files probes every regular file: \(all)")

        // On a server node (the bed's glusterd socket is in the environment) one statedump
        // names every holder's host by default; --force asks for it as before.
        let byDefault = try Run.locksmith(base)
        XCTAssertTrue(byDefault.stdout.contains(" write \(h1.pid) h1 "), byDefault.stdout)
        let named = try Run.locksmith(base + ["--force"])
        XCTAssertEqual(named.status, 0, "\(named)")
        XCTAssertTrue(named.stdout.hasPrefix("IMAGE "), named.stdout)
        XCTAssertTrue(named.stdout.split(separator: "\n").first?.contains(" PID HOST ") ?? false, "HOST after PID: \(named.stdout)")
        XCTAssertTrue(named.stdout.contains(" write \(h1.pid) h1 "), named.stdout)
        XCTAssertTrue(named.stdout.contains(" read  \(h2.pid) h2 "), named.stdout)
        XCTAssertEqual(named.stderr, "", "nothing unseen: \(named)")

        let j = try Run.locksmith(base + ["--force", "--json"])
        XCTAssertEqual(j.status, 0, "\(j)")
        let images = try XCTUnwrap(try json(j)["images"] as? [[String: Any]])
        let one = try XCTUnwrap(images.first { $0["path"] as? String == vm1 }, j.stdout)
        XCTAssertEqual(one["schemes"] as? [String], ["gluster"])
        let holders = try XCTUnwrap(one["holders"] as? [[String: Any]])
        XCTAssertEqual(holders.count, 1)
        XCTAssertEqual(holders.first?["pid"] as? Int, Int(h1.pid))
        XCTAssertEqual(holders.first?["host"] as? String, "h1")
        XCTAssertEqual(holders.first?["mode"] as? String, "write")
        XCTAssertEqual(holders.first?["scheme"] as? String, "gluster")

        // The bricks drop a killed client's locks when its connection closes.
        try killHolder(h1)
        XCTAssertTrue(bed.waitUntil(vm1, held: false, timeout: 10))
        let after = try Run.locksmith(base)
        XCTAssertEqual(after.status, 0, "\(after)")
        XCTAssertFalse(after.stdout.contains(vm1), "released: \(after.stdout)")
        XCTAssertTrue(after.stdout.contains(vm2), after.stdout)
    }

    func testListOfAVolumeThatCannotBeScannedExits2WithinTheTimeout() throws {
        let bed = try GlusterTestBed.require()
        let proc = emptyProc()
        let cases: [(volume: [String], message: String)] = [
            (["\(bed.host)/no-such-volume"], "locksmith: gluster server \(bed.host):24007 has no volume no-such-volume"),
            (["\(bed.host):24999/\(bed.volume)"], "locksmith: cannot reach glusterd at \(bed.host):24999 for volume \(bed.volume)"),
            (["\(bed.host)/\(bed.volume)", "--gluster-path", "/no-such-dir-\(getpid())"],
             "locksmith: read directory gluster://\(bed.host)/\(bed.volume)/no-such-dir-\(getpid()): No such file or directory"),
        ]
        for c in cases {
            let start = Date()
            let r = try Run.locksmith(["list", "--proc", proc.path, "--timeout", "2", "--gluster"] + c.volume)
            XCTAssertEqual(r.status, 2, "\(c.volume): \(r)")
            XCTAssertTrue(r.stderr.hasPrefix(c.message), "\(c.volume): \(r)")
            XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "one line: \(r)")
            XCTAssertLessThan(Date().timeIntervalSince(start), 2.5, "\(c.volume)")
        }
        // --json: still one JSON object on stdout, the volume under "unseen"; exit 2.
        let j = try Run.locksmith(["list", "--json", "--proc", proc.path, "--gluster", "\(bed.host)/no-such-volume"])
        XCTAssertEqual(j.status, 2, "\(j)")
        let unseen = try XCTUnwrap(try json(j)["unseen"] as? [[String: Any]])
        XCTAssertEqual(unseen.count, 1)
        XCTAssertEqual(unseen.first?["what"] as? String, "gluster volume \(bed.host)/no-such-volume (not scanned)")

        // A server that accepts TCP and never answers: given up at --timeout.
        let py = try Background(try Run.tool("python3"), ["-c", """
            import socket
            s = socket.socket(); s.bind(("127.0.0.3", 24556)); s.listen(16)
            conns = []
            while True:
                conns.append(s.accept())
            """])
        defer { py.stop() }
        usleep(300_000)
        let start = Date()
        let silent = try Run.locksmith(["list", "--proc", proc.path, "--timeout", "1", "--gluster", "127.0.0.3:24556/v"])
        XCTAssertEqual(silent.status, 2, "\(silent)")
        XCTAssertTrue(silent.stderr.hasPrefix("locksmith: gluster server 127.0.0.3:24556 did not answer within 1 s"), "\(silent)")
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)

        let usage = try Run.locksmith(["list", "--gluster", "\(bed.host)/\(bed.volume)/sub"])
        XCTAssertEqual(usage.status, 64, "\(usage)")
        XCTAssertEqual(try Run.locksmith(["list", "--gluster-path", "/x"]).status, 64)
    }

    // MARK: - why gluster://

    func testWhyNamesPidAndWithForceTheHostOfALocksmithHoldOnAnotherHost() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("why-cross"))
        let h = try holder(on: "h1", url)
        defer { h.stop() }
        bed.waitUntil(url, held: true)

        let plain = try Run.locksmith(["why", "--no-statedump", url])
        XCTAssertEqual(plain.status, 1, "\(plain)")
        XCTAssertTrue(plain.stdout.hasPrefix("\(url): won't open read-write — blocked by pid \(h.pid)\n"), plain.stdout)
        XCTAssertTrue(plain.stdout.contains("`locksmith why \(url)` on a server node names the host"), plain.stdout)

        // On a server node (the test bed's glusterd socket is in the environment) why takes
        // the statedump by default, as try does.
        let named = try Run.locksmith(["why", url])
        XCTAssertEqual(named.status, 1, "\(named)")
        XCTAssertTrue(named.stdout.hasPrefix("\(url): won't open read-write — blocked by pid \(h.pid) on host h1\n"), named.stdout)

        let forced = try Run.locksmith(["why", "--force", url])
        XCTAssertEqual(forced.status, 1, "\(forced)")
        XCTAssertTrue(forced.stdout.hasPrefix("\(url): won't open read-write — blocked by pid \(h.pid) on host h1\n"), forced.stdout)
        XCTAssertTrue(forced.stdout.contains("  blocker: pid \(h.pid) on host h1; gluster scheme, holds write on \(url); conflicting lock: exclusive; proven\n"),
                      forced.stdout)
        XCTAssertTrue(forced.stdout.contains("remedy: stop pid \(h.pid) on host h1, or wait for it; if its host is down or cut off from the servers, `locksmith clear-locks \(url)` on a server node drops the lock"),
                      forced.stdout)

        let j = try Run.locksmith(["why", "--force", "--read-only", "--json", url])
        XCTAssertEqual(j.status, 1, "a write lock keeps readers out: \(j)")
        let obj = try json(j)
        XCTAssertEqual(Set(obj.keys), ["schema", "host", "generated", "image", "named", "mode", "opens", "outcome", "qemu_message",
                                       "qemu_failures", "blockers", "reasons", "chain", "waiters", "facts", "proven"], "the shape of every why")
        XCTAssertEqual(obj["outcome"] as? String, "fails")
        XCTAssertEqual(obj["proven"] as? Bool, true)
        let b = try XCTUnwrap((obj["blockers"] as? [[String: Any]])?.first)
        XCTAssertEqual(b["pid"] as? Int, Int(h.pid))
        XCTAssertEqual(b["host"] as? String, "h1")
        XCTAssertEqual(b["scheme"] as? String, "gluster")
        XCTAssertEqual(b["lock"] as? String, "write")

        h.stop()
        bed.waitUntil(url, held: false)
        let free = try Run.locksmith(["why", url])
        XCTAssertEqual(free.status, 0, "\(free)")
        XCTAssertEqual(free.stdout.split(separator: "\n").first.map(String.init), "\(url): opens read-write (proven)")
    }

    func testWhyForceNamesAFuseMountHolderFromTheStatedump() throws {
        let bed = try GlusterTestBed.require()
        let name = try bed.makeFile("why-fuse")
        let url = bed.url(name)
        let py = try Background.lockf(try bed.mountPoint() + "/" + name, exclusive: false)
        defer { py.stop() }
        bed.waitUntil(url, held: true)

        XCTAssertEqual(try Run.locksmith(["why", "--read-only", url]).status, 0, "readers share")
        let r = try Run.locksmith(["why", "--force", url])
        XCTAssertEqual(r.status, 1, "\(r)")
        // A holder on this host is a local process: its command comes from /proc.
        XCTAssertTrue(r.stdout.hasPrefix("\(url): won't open read-write — blocked by python3 (pid \(py.pid)) on host \(hostname())\n"),
                      r.stdout)
        XCTAssertTrue(r.stdout.contains("holds read on \(url); conflicting lock: shared"), r.stdout)
        XCTAssertTrue(r.stdout.contains("remedy: stop pid \(py.pid) (python3) on this host, or wait for it to finish"), r.stdout)
    }

    func testWhyOfAVolumeThatCannotBeReachedExits2WithinTheTimeout() throws {
        let bed = try GlusterTestBed.require()
        let cases: [(url: String, message: String)] = [
            ("gluster://\(bed.host)/no-such-volume/x.img", "locksmith: gluster server \(bed.host):24007 has no volume no-such-volume"),
            ("gluster://\(bed.host):24999/\(bed.volume)/x.img", "locksmith: cannot reach glusterd at \(bed.host):24999 for volume \(bed.volume)"),
        ]
        for c in cases {
            let start = Date()
            let r = try Run.locksmith(["why", "--timeout", "2", c.url])
            XCTAssertEqual(r.status, 2, "\(c.url): \(r)")
            XCTAssertTrue(r.stderr.hasPrefix(c.message), "\(r)")
            XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "one line: \(r)")
            XCTAssertTrue(r.stdout.hasPrefix("\(c.url): can't tell whether it opens read-write\n"), "\(r)")
            XCTAssertLessThan(Date().timeIntervalSince(start), 2.5)
        }
        let missing = try Run.locksmith(["why", bed.url("no-such-file-\(getpid()).img")])
        XCTAssertEqual(missing.status, 1, "a missing image is an answer: \(missing)")
        XCTAssertTrue(missing.stdout.contains("no such file on the volume"), "\(missing)")
    }

    // MARK: - TUI

    func testTUIShowsAGlusterRowWithItsHostAndClearsItsLockAfterAY() throws {
        let bed = try GlusterTestBed.require()
        let dir = try volumeDirectory(bed, "tui")
        let url = try makeFile(bed, dir + "/vm.qcow2")
        let h = try holder(on: "h1", url)
        defer { h.stop() }
        bed.waitUntil(url, held: true)
        let empty = TempDir("gl-tui")
        let pane = try TmuxPane(width: 120, height: 30)
        try pane.type("\(Run.locksmith) tui --interval 0.5 --lock-dir \(empty.path) --gluster \(bed.host)/\(bed.volume) "
                      + "--gluster-path \(dir) --force --filter \(dir); echo EXIT=$?")
        var screen = try pane.waitFor(" h1 ")
        let rows = screen.split(separator: "\n").map(String.init)
        XCTAssertTrue(rows.contains { $0.contains(" PID HOST ") }, "the HOST column joins:\n\(screen)")
        XCTAssertTrue(rows.contains { $0.hasPrefix(">") && $0.contains("gluster") && $0.contains(" write ") && $0.contains(" \(h.pid) h1 ") },
                      screen)
        XCTAssertTrue(screen.contains("pid \(h.pid) ? write  on h1  [gluster]"), "the detail pane names the host:\n\(screen)")
        XCTAssertTrue(screen.contains("press C"), screen)

        try pane.keys("K")
        try pane.waitFor("pid \(h.pid) runs on h1, not here: cannot signal it.")
        try pane.keys("C")
        try pane.waitFor("Clear the granted locks on \(url) if every holder is proven stale?")
        try pane.keys("n")
        try pane.waitFor("Nothing cleared.")
        XCTAssertEqual(try Run.locksmith(["try", "--no-statedump", url]).status, 1, "still held")
        // y: its host (h1) is not in view, so the holder is only possibly stale: nothing cleared.
        try pane.keys("C")
        try pane.waitFor("if every holder is proven stale?")
        try pane.keys("y")
        screen = try pane.waitFor("Nothing cleared: pid \(h.pid) on h1: possibly-stale (`locksmith clear-locks --force-live` clears them).")
        XCTAssertEqual(try Run.locksmith(["try", "--no-statedump", url]).status, 1, "still held")
        XCTAssertTrue(h.process.isRunning)
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }
}
