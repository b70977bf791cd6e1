import Foundation
import ImageLock
import XCTest
import _TestSupport

/// Two hypervisors h1 and h2 (scripts/cluster-testbed) share a GlusterFS volume through their
/// own FUSE mounts, where no host's /proc/locks shows a lock. A real holder on h1; on h2 real
/// QEMU fails, and `why` must fail with it in its words and name the holder (its host and pid
/// where a statedump can be taken); on h1 `list` names the holder and `audit` stays quiet
/// about it; `try` and `why` agree throughout.
final class ClusterSharedStorageTests: XCTestCase {
    struct Holder {
        var label: String
        /// The command as /proc names it on h1.
        var command: String
        var argv: (String) -> [String]
    }

    var holders: [Holder] {
        [
            Holder(label: "qemu-io", command: "qemu-io") { ["qemu-io", "-c", "sleep 600000", $0] },
            Holder(label: "qemu-nbd", command: "qemu-nbd") { ["qemu-nbd", "-f", "qcow2", "-k", "/var/tmp/nbd-\(getpid()).sock", $0] },
            Holder(label: "hold", command: "locksmith") { [Run.locksmith, "hold", "--scheme", "qemu", $0, "--", "sleep", "600"] },
        ]
    }

    /// QEMU's own answer on `host`: nil when the read-write open succeeds, else its message.
    func qemuSays(_ bed: ClusterTestBed, _ host: String, _ image: String) throws -> String? {
        let r = try bed.run(on: host, ["qemu-io", "-c", "quit", image])
        if r.status == 0 { return nil }
        let prefix = "qemu-io: can't open device \(image): "
        let line = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(line.hasPrefix(prefix), r.stderr)
        return String(line.dropFirst(prefix.count))
    }

    /// Whether anyone holds a lock on QEMU's byte 201 (every QEMU user that does not share
    /// write locks it), asked with F_GETLK from `host`: nothing is taken, so a holder that is
    /// still starting is not disturbed (a racing QEMU open could make both fail).
    func locked(_ bed: ClusterTestBed, _ host: String, _ image: String) throws -> Bool {
        let py = """
            import fcntl, os, struct, sys
            fd = os.open(sys.argv[1], os.O_RDONLY)
            r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 201, 1, 0))
            sys.exit(0 if struct.unpack("hhqqi", r)[0] != fcntl.F_UNLCK else 1)
            """
        return try bed.run(on: host, ["python3", "-c", py, image]).status == 0
    }

    /// `try --scheme qemu` and `why` on `host` agree with each other and with QEMU.
    func assertAgree(_ bed: ClusterTestBed, _ host: String, _ image: String, held: Bool, serverNode: Bool,
                     file: StaticString = #filePath, line: UInt = #line) throws -> (why: RunResult, force: RunResult) {
        let qemu = try qemuSays(bed, host, image)
        XCTAssertEqual(qemu != nil, held, "real QEMU on \(host): \(qemu ?? "opens")", file: file, line: line)
        let t = try bed.run(on: host, [Run.locksmith, "try", "--scheme", "qemu", image], serverNode: serverNode)
        let w = try bed.run(on: host, [Run.locksmith, "why", image], serverNode: serverNode)
        let f = try bed.run(on: host, [Run.locksmith, "why", "--force", image], serverNode: serverNode)
        let want: Int32 = held ? 1 : 0
        XCTAssertEqual(t.status, want, "try on \(host): \(t)", file: file, line: line)
        XCTAssertEqual(w.status, want, "why on \(host): \(w)", file: file, line: line)
        XCTAssertEqual(f.status, want, "why --force on \(host): \(f)", file: file, line: line)
        if let q = qemu {
            XCTAssertTrue(w.stdout.contains("  QEMU says: \(q)\n"), "why speaks QEMU's words (\(q)): \(w.stdout)", file: file, line: line)
            XCTAssertTrue(f.stdout.contains("  QEMU says: \(q)\n"), "why --force too: \(f.stdout)", file: file, line: line)
            XCTAssertTrue(w.stdout.hasPrefix("\(image): won't open read-write"), w.stdout, file: file, line: line)
        } else {
            XCTAssertEqual(w.stdout.split(separator: "\n").first.map(String.init), "\(image): opens read-write", file: file, line: line)
            XCTAssertEqual(f.stdout.split(separator: "\n").first.map(String.init), "\(image): opens read-write (proven)", file: file, line: line)
        }
        return (w, f)
    }

    func testAHolderOnH1SeenFromH2AndOnH1() throws {
        let bed = try ClusterTestBed.require(hosts: 2)
        for h in holders {
            let image = bed.imagePath("cl-\(h.label)")
            XCTAssertEqual(try bed.run(on: "h1", ["qemu-img", "create", "-q", "-f", "qcow2", image, "16M"]).status, 0)
            defer { _ = try? bed.run(on: "h1", ["rm", "-f", image]) }
            _ = try assertAgree(bed, "h2", image, held: false, serverNode: false)

            let pid = try bed.spawn(on: "h1", h.argv(image))
            defer { try? bed.stop(pid, on: "h1") }
            // Until the holder has its locks (bounded by rounds).
            var rounds = 0
            while try !locked(bed, "h2", image) && rounds < 400 {
                rounds += 1
                usleep(25_000)
            }
            XCTAssertLessThan(rounds, 400, "\(h.label) never locked \(image)")
            XCTAssertEqual(try bed.run(on: "h2", ["cat", "/proc/locks"]).stdout.contains(":\(try inode(bed, image)) "), false,
                           "no host's /proc/locks shows a FUSE lock")

            // h2, a plain client: fails as QEMU does; the holder cannot be named from there.
            let plain = try assertAgree(bed, "h2", image, held: true, serverNode: false)
            XCTAssertTrue(plain.why.stdout.contains("held on the fuse server"), "\(h.label): \(plain.why.stdout)")
            XCTAssertTrue(plain.why.stdout.contains("a brick statedump needs the gluster CLI"), plain.why.stdout)

            // h2 with the server's glusterd socket (hyperconverged): the statedump names host and pid.
            let named = try assertAgree(bed, "h2", image, held: true, serverNode: true)
            for r in [named.why, named.force] {
                XCTAssertTrue(r.stdout.hasPrefix("\(image): won't open read-write — blocked by pid \(pid) on host h1\n"),
                              "\(h.label): \(r.stdout)")
                XCTAssertTrue(r.stdout.contains("names 1 holder of "), r.stdout)
            }
            XCTAssertTrue(named.force.stdout.contains("; proven\n"), named.force.stdout)

            // h1: list names the holder; audit finds nothing wrong with it.
            let list = try bed.run(on: "h1", [Run.locksmith, "list", "--json"])
            XCTAssertEqual(list.status, 0, "\(list)")
            let json = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
            let images = json?["images"] as? [[String: Any]] ?? []
            let entry = images.first { $0["path"] as? String == image }
            let listed = (entry?["holders"] as? [[String: Any]] ?? []).map { ($0["pid"] as? Int, $0["command"] as? String) }
            XCTAssertTrue(listed.contains { $0.0 == Int(pid) && $0.1 == h.command }, "\(h.label): list on h1: \(list.stdout.prefix(2000))")
            let audit = try bed.run(on: "h1", [Run.locksmith, "audit", "--json"])
            XCTAssertFalse(audit.stdout.contains(image), "\(h.label): audit on h1 is quiet about it: \(audit)")
            // And on h1 itself, why names the local process.
            let local = try bed.run(on: "h1", [Run.locksmith, "why", image])
            XCTAssertEqual(local.status, 1)
            XCTAssertTrue(local.stdout.contains("blocked by \(h.command) (pid \(pid))"), "\(h.label): \(local.stdout)")

            try bed.stop(pid, on: "h1")
            rounds = 0
            while try locked(bed, "h2", image) && rounds < 400 {
                rounds += 1
                usleep(25_000)
            }
            _ = try assertAgree(bed, "h2", image, held: false, serverNode: true)
        }
    }

    /// Readers on h1 and h2 of one image: F_GETLK answers with one of them only (one
    /// conflicting lock per byte), so h2's own reader used to go unlisted on h2 whenever the
    /// answer was h1's. Where a statedump can be taken it lists every lock: both are named,
    /// each with its host.
    func testTwoReadersOnTwoHostsAreBothListedOnAServerNode() throws {
        let bed = try ClusterTestBed.require(hosts: 2)
        let image = bed.imagePath("cl-readers")
        XCTAssertEqual(try bed.run(on: "h1", ["qemu-img", "create", "-q", "-f", "qcow2", image, "16M"]).status, 0)
        defer { _ = try? bed.run(on: "h1", ["rm", "-f", image]) }
        let reader = ["qemu-io", "-r", "-c", "sleep 600000", image]
        let p1 = try bed.spawn(on: "h1", reader)
        defer { try? bed.stop(p1, on: "h1") }
        var rounds = 0
        while try !locked(bed, "h2", image) && rounds < 400 {
            rounds += 1
            usleep(25_000)
        }
        let p2 = try bed.spawn(on: "h2", reader)
        defer { try? bed.stop(p2, on: "h2") }
        // h2's reader takes its locks some time after it starts: asked again until then
        // (bounded by rounds); then once more, for an answer that stays.
        func holders() throws -> Set<String> {
            let list = try bed.run(on: "h2", [Run.locksmith, "list", "--json"], serverNode: true)
            XCTAssertEqual(list.status, 0, "\(list)")
            let json = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
            let entry = (json?["images"] as? [[String: Any]] ?? []).first { $0["path"] as? String == image }
            return Set((entry?["holders"] as? [[String: Any]] ?? []).map {
                "\($0["pid"] as? Int ?? 0)@\($0["host"] as? String ?? "here") \($0["mode"] as? String ?? "?")"
            })
        }
        let want: Set = ["\(p1)@h1 ro", "\(p2)@here ro"]
        rounds = 0
        while try holders() != want && rounds < 40 {
            rounds += 1
            usleep(100_000)
        }
        XCTAssertEqual(try holders(), want)
    }

    func inode(_ bed: ClusterTestBed, _ image: String) throws -> String {
        try bed.run(on: "h2", ["stat", "-c", "%i", image]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The bed's hosts are what the tests assume: their own name, /var/tmp and PID numbering,
    /// one shared FUSE mount, and a real sshd taking root's key (for cluster-wide commands).
    func testTheHostsAreSeparateButShareTheVolume() throws {
        let bed = try ClusterTestBed.require(hosts: 2)
        let key = try XCTUnwrap(ProcessInfo.processInfo.environment["CLUSTER_SSH_KEY"])
        let mark = "mark-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(try bed.run(on: "h1", ["touch", "/var/tmp/\(mark)", "\(bed.shared)/\(mark)"]).status, 0)
        defer { _ = try? bed.run(on: "h1", ["rm", "-f", "/var/tmp/\(mark)", "\(bed.shared)/\(mark)"]) }
        XCTAssertEqual(try bed.run(on: "h2", ["test", "-e", "/var/tmp/\(mark)"]).status, 1, "each host has its own /var/tmp")
        XCTAssertEqual(try bed.run(on: "h2", ["test", "-e", "\(bed.shared)/\(mark)"]).status, 0, "the volume is shared")
        XCTAssertEqual(try bed.run(on: "h2", ["stat", "-f", "-c", "%T", bed.shared]).stdout, "fuseblk\n")
        for h in bed.hosts {
            let ssh = try Run.capture(try Run.tool("ssh"), ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                                          "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
                                                          "root@\(h.address)", "hostname; readlink /proc/self/ns/pid"], timeout: 20)
            XCTAssertEqual(ssh.status, 0, "\(ssh)")
            let lines = ssh.stdout.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.first, h.name, "\(ssh)")
            let ns = try bed.run(on: h.name, ["readlink", "/proc/self/ns/pid"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(lines.last, ns, "ssh lands in the host's own PID namespace")
            XCTAssertNotEqual(ns, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid"))
        }
    }

    /// audit on a host where a process has a shared image open for writing: with locks on the
    /// server it cannot attribute (h1's qemu-io), it cannot tell: info, not critical; with no
    /// lock on the server at all, the writer is unlocked: critical. A read-only look agrees
    /// with QEMU's (`qemu-io -r`) and with `try --shared` too.
    func testAuditOfAWriterOnH2AndReadOnlyAgreement() throws {
        let bed = try ClusterTestBed.require(hosts: 2)
        let image = bed.imagePath("cl-audit")
        XCTAssertEqual(try bed.run(on: "h1", ["qemu-img", "create", "-q", "-f", "qcow2", image, "16M"]).status, 0)
        defer { _ = try? bed.run(on: "h1", ["rm", "-f", image]) }
        // A writer without locks on h2 (python keeps the file open read-write).
        let writer = try bed.spawn(on: "h2", ["python3", "-c", "import os, time; fd = os.open(\"\(image)\", os.O_RDWR); time.sleep(600)"])
        defer { try? bed.stop(writer, on: "h2") }
        func finding() throws -> [String: Any]? {
            var rounds = 0
            while rounds < 200 {
                let a = try bed.run(on: "h2", [Run.locksmith, "audit", "--json", "--fail-on", "info"])
                let obj = try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as? [String: Any]
                let f = (obj?["findings"] as? [[String: Any]] ?? []).first { $0["image"] as? String == image }
                if f != nil { return f }
                rounds += 1
                usleep(25_000)
            }
            return nil
        }
        let bare = try XCTUnwrap(try finding(), "the writer is seen")
        XCTAssertEqual(bare["rule"] as? String, "unlocked-writer")
        XCTAssertEqual(bare["severity"] as? String, "critical", "no lock anywhere on the server: \(bare)")

        let holder = try bed.spawn(on: "h1", ["qemu-io", "-r", "-c", "sleep 600000", image])
        defer { try? bed.stop(holder, on: "h1") }
        var rounds = 0
        while try !locked(bed, "h2", image) && rounds < 400 {
            rounds += 1
            usleep(25_000)
        }
        let unsure = try XCTUnwrap(try finding())
        XCTAssertEqual(unsure["rule"] as? String, "unlocked-writer")
        XCTAssertEqual(unsure["severity"] as? String, "info", "locks on the server it cannot attribute: \(unsure)")
        XCTAssertTrue((unsure["evidence"] as? String ?? "").contains("cannot tell"), "\(unsure)")

        // list on h2, a server node: a statedump names the holder on h1 of a file h2 has open.
        func listed(serverNode: Bool, _ extra: [String] = []) throws -> [(Int?, String?)] {
            let l = try bed.run(on: "h2", [Run.locksmith, "list", "--json"] + extra, serverNode: serverNode)
            XCTAssertEqual(l.status, 0, "\(l)")
            let obj = try JSONSerialization.jsonObject(with: Data(l.stdout.utf8)) as? [String: Any]
            let entry = (obj?["images"] as? [[String: Any]] ?? []).first { $0["path"] as? String == image }
            return (entry?["holders"] as? [[String: Any]] ?? []).map { ($0["pid"] as? Int, $0["host"] as? String) }
        }
        XCTAssertTrue(try listed(serverNode: true).contains { $0.0 == Int(holder) && $0.1 == "h1" }, "list on h2 names h1's holder")
        XCTAssertTrue(try listed(serverNode: true, ["--no-statedump"]).isEmpty, "--no-statedump: no host to name")
        XCTAssertTrue(try listed(serverNode: false).isEmpty, "a client cannot take a statedump")

        // A reader on h1: a read-only look from h2 opens, a read-write open does not.
        XCTAssertEqual(try bed.run(on: "h2", ["qemu-io", "-r", "-c", "quit", image]).status, 0)
        XCTAssertEqual(try bed.run(on: "h2", [Run.locksmith, "why", "--read-only", image]).status, 0)
        XCTAssertEqual(try bed.run(on: "h2", [Run.locksmith, "try", "--shared", "--scheme", "qemu", image]).status, 0)
        XCTAssertNotEqual(try bed.run(on: "h2", ["qemu-io", "-c", "quit", image]).status, 0)
        XCTAssertEqual(try bed.run(on: "h2", [Run.locksmith, "why", image]).status, 1)
        XCTAssertEqual(try bed.run(on: "h2", [Run.locksmith, "try", "--scheme", "qemu", image]).status, 1)
    }
}
