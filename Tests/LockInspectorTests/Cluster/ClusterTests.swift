import Foundation
import ImageLock
import LockInspector
import XCTest

/// The cluster view's pure parts: --ssh words, host lists, storage identity from mountinfo,
/// strict reading of another host's JSON, the merge, and the cross-host rules.
final class ClusterTests: XCTestCase {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let fuse = DeviceID(major: 0, minor: 0x35)
    let disk = DeviceID(major: 0xfe, minor: 1)

    func testShellWordsSplitLikeAShellWithoutExpanding() throws {
        XCTAssertEqual(try ShellWords.split("ssh -i '/k ey' -o \"User=a b\" $HOME \\x"), ["ssh", "-i", "/k ey", "-o", "User=a b", "$HOME", "x"])
        XCTAssertEqual(try ShellWords.split("  a''b \"c\\\"d\" ''"), ["ab", "c\"d", ""])
        XCTAssertThrowsError(try ShellWords.split("ssh 'open"))
        XCTAssertThrowsError(try ShellWords.split("ssh \"open"))
        XCTAssertThrowsError(try ShellWords.split("ssh \\"))
        XCTAssertEqual(ShellWords.quote("list"), "list")
        XCTAssertEqual(ShellWords.quote("/var/tmp"), "/var/tmp")
        XCTAssertEqual(ShellWords.quote("a b;rm -rf /"), "'a b;rm -rf /'")
        XCTAssertEqual(ShellWords.quote("it's"), "'it'\\''s'")
        XCTAssertEqual(ShellWords.quote(""), "''")
        // A quoted word comes back whole through a shell word split (what the remote shell does).
        for w in ["$(reboot)", "a'b\"c", "`x`", "tab\there", "new\nline"] {
            XCTAssertEqual(try ShellWords.split(ShellWords.quote(w)), [w])
        }
        XCTAssertEqual(ShellWords.hostList("# hosts\nh1\n  h2  # second\n\n#h3\nroot@h4\n"), ["h1", "h2", "root@h4"])
    }

    func testTheRemoteCommandLineIsQuotedForTheRemoteShell() {
        var q = ClusterQuery(hosts: ["h1"])
        q.ssh = ["ssh", "-i", "/k"]
        q.remoteCommand = "/opt/locksmith bin/locksmith"
        q.remoteArguments = ["--lock-dir", "/var/tmp;reboot"]
        q.timeout = 7
        XCTAssertEqual(q.argv(for: "root@h1"), ["ssh", "-i", "/k", "-o", "BatchMode=yes", "-o", "ConnectTimeout=7", "--", "root@h1",
                                                "'/opt/locksmith bin/locksmith' list --json --lock-dir '/var/tmp;reboot'"])
    }

    let mountinfo = """
        22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        60 22 0:53 / /shared rw,relatime shared:30 - fuse.glusterfs 10.77.0.1:clvol rw,user_id=0
        61 22 0:54 /sub /mnt/nfs\\040dir rw - nfs4 srv:/export/sub rw
        """

    func testStorageIdentityFromMountinfo() {
        let m = StorageIdentity.mounts(mountinfo: mountinfo)
        XCTAssertEqual(m.map(\.isShared), [false, true, true])
        // Fields are split on the kernel's bytes: a source that begins with a combining mark
        // (whatever a mount's maker chose) does not join the fstype before it.
        let odd = StorageIdentity.mounts(mountinfo: "63 22 0:56 / /mnt/m rw - nfs4 \u{301}srv:/e rw")
        XCTAssertEqual(odd.map(\.fstype), ["nfs4"])
        XCTAssertEqual(odd.map(\.source), ["\u{301}srv:/e"])
        let glusterDev = DeviceID(major: 0, minor: 53)
        for dev in [glusterDev, nil] {
            XCTAssertEqual(StorageIdentity.of(path: "/shared/vm/a.qcow2", device: dev, mounts: m), "gluster:clvol/vm/a.qcow2")
        }
        XCTAssertEqual(StorageIdentity.of(path: "gluster://10.77.0.1/clvol/vm/a.qcow2", device: nil, mounts: m),
                       "gluster:clvol/vm/a.qcow2", "FUSE and gluster:// name one file alike")
        XCTAssertEqual(StorageIdentity.of(path: "/mnt/nfs dir/b.img", device: nil, mounts: m), "nfs4:srv:/export/sub:/sub/b.img")
        XCTAssertNil(StorageIdentity.of(path: "/var/lib/a.qcow2", device: DeviceID(major: 254, minor: 1), mounts: m), "local")
        XCTAssertNil(StorageIdentity.of(path: "/var/lib/a.qcow2", device: nil, mounts: m), "local")
        XCTAssertNil(StorageIdentity.of(path: "/sharedx/a", device: nil, mounts: m), "a prefix is not a parent")
        XCTAssertNil(StorageIdentity.of(path: "relative/a", device: nil, mounts: m))
    }

    // MARK: remote JSON

    /// A host's answer as `list --json` writes it.
    func answer(_ s: Snapshot, findings: [Finding]? = nil) -> [UInt8] {
        SnapshotJSON.render(s, extras: .init(version: "9.9", findings: findings))
    }

    func holder(_ pid: Int32, _ command: String, scheme: LockScheme = .qemu, type: LockType? = nil, qemu: QemuPermissions? = .readWrite) -> Holder {
        Holder(pid: pid, command: command, args: [command, "x"], user: "root", uid: 0, started: t0, fd: 5, openMode: .readWrite,
               scheme: scheme, lockType: type ?? (qemu?.held.contains(.write) == true ? .write : .read), qemu: qemu)
    }

    func testAnAnswerReadsBackAsTheSnapshotItWas() throws {
        var img = ImageLocks(id: "/shared/a", path: "/shared/a", device: fuse, inode: 9, schemes: [.qemu, .lockfile],
                             lockFiles: ["/var/tmp/.qemu-x.lock"], holders: [holder(10, "qemu-io\u{1B}[2J")],
                             locks: [KernelLock(id: 1, kind: KernelLock.Kind(rawValue: "OFD"), mode: "ADVISORY", type: "READ", pid: nil, device: fuse, inode: 9, start: 201, end: 201)])
        img.storage = "gluster:clvol/a"
        var s = Snapshot(host: "h1", generated: t0, images: [img],
                         lockFiles: [LockFileEntry(path: "/var/tmp/.qemu-x.lock", kind: .regular, device: disk, inode: 3, held: true,
                                                   image: "/shared/a", mappedBy: "content")],
                         unseen: [Unseen(what: "pid 4", why: "EACCES")],
                         writers: [ImageWriter(path: "/shared/a", device: fuse, inode: 9, pid: 10, fd: 5, command: "qemu-io")])
        let findings = [Finding(rule: .unlockedWriter, severity: .critical, image: "/shared/a",
                                holders: [InvolvedProcess(holder: holder(10, "qemu-io"))], evidence: "e", remedy: "r")]
        s.writers[0].storage = "gluster:clvol/a"
        let (audited, version) = try RemoteSnapshot.parse(answer(s, findings: findings))
        let back = audited.snapshot
        XCTAssertEqual(version, "9.9")
        XCTAssertEqual(back.host, "h1")
        XCTAssertEqual(back.images.first?.holders, img.holders, "the escape sequence is kept as data")
        XCTAssertEqual(back.images.first?.storage, "gluster:clvol/a")
        XCTAssertEqual(back.images.first?.locks.first?.start, 201)
        XCTAssertNil(back.images.first?.locks.first?.pid)
        XCTAssertEqual(back.lockFiles, s.lockFiles)
        XCTAssertEqual(back.unseen, s.unseen)
        XCTAssertEqual(back.writers, s.writers)
        XCTAssertEqual(audited.findings.map(\.rule), [.unlockedWriter])
        XCTAssertEqual(audited.findings.first?.holders.first?.pid, 10)
        XCTAssertEqual(try RemoteSnapshot.parse(answer(s)).0.findings, [], "not audited: no findings")
    }

    func testHostileAnswersAreRefusedInOneLine() throws {
        let good = String(decoding: answer(Snapshot(host: "h1", generated: t0, images: [
            ImageLocks(id: "/a", path: "/a", schemes: [.qemu], holders: [holder(10, "q")]),
        ], lockFiles: [], unseen: [])), as: UTF8.self)
        XCTAssertNoThrow(try RemoteSnapshot.parse(Array(good.utf8)))
        let cases: [(String, String)] = [
            ("", "not a locksmith"),
            ("Welcome to h1!\n" + good, "not a locksmith"),
            ("[1,2]", "not a locksmith"),
            (good.replacingOccurrences(of: "\"schema\":1", with: "\"schema\":2"), "schema 2"),
            (good.replacingOccurrences(of: "\"schema\":1", with: "\"schema\":\"1\""), "not a locksmith"),
            (good.replacingOccurrences(of: "\"pid\":10", with: "\"pid\":\"10\""), "wrong type"),
            (good.replacingOccurrences(of: "\"pid\":10", with: "\"pid\":4294967296"), "bad answer"),
            (good.replacingOccurrences(of: "\"pid\":10", with: "\"pid\":true"), "bad answer"),
            (good.replacingOccurrences(of: "\"scheme\":\"qemu\"", with: "\"scheme\":\"evil\""), "unknown lock scheme"),
            (good.replacingOccurrences(of: "\"write\"", with: "\"teleport\""), "unknown QEMU permission"),
            (good.replacingOccurrences(of: ",\"unseen\":[]", with: ""), "missing"),
            (String(good.dropLast(3)), "bad answer"),
        ]
        for (text, want) in cases {
            XCTAssertThrowsError(try RemoteSnapshot.parse(Array(text.utf8)), text) { e in
                let d = "\(e)"
                XCTAssertTrue(d.contains(want), "\(d) for \(text.prefix(80))")
                XCTAssertFalse(d.contains("\n"), d)
            }
        }
        // Deep nesting is refused, not a crash.
        let deep = "{\"schema\":1,\"host\":\"h\",\"images\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        XCTAssertThrowsError(try RemoteSnapshot.parse(Array(deep.utf8)))
    }

    // MARK: merge and rules

    func answers(_ snaps: [(String, Snapshot?)]) -> ClusterAnswers {
        ClusterAnswers(hosts: snaps.map { ClusterHost(name: $0.0, hostname: $0.1?.host, reached: $0.1 != nil, label: $0.0) },
                       snapshots: snaps.map { $0.1.map { AuditedSnapshot($0) } })
    }

    func shared(_ path: String, _ holders: [Holder], storage: String? = "gluster:clvol/a", lockFiles: [String] = []) -> ImageLocks {
        var i = ImageLocks(id: path, path: path, device: fuse, inode: 9, schemes: [holders.first?.scheme ?? .qemu],
                           lockFiles: lockFiles, holders: holders)
        i.storage = storage
        return i
    }

    func testOneSharedImageFromTwoHostsIsOneImageAndEqualLocalPathsStayTwo() {
        let h1 = Snapshot(host: "h1", generated: t0, images: [
            shared("/shared/a", [holder(10, "qemu-io", qemu: .readOnly)]),
            shared("/var/lib/b", [holder(11, "qemu-nbd")], storage: nil),
        ], lockFiles: [], unseen: [Unseen(what: "pid 3", why: "x")])
        let h2 = Snapshot(host: "h2", generated: t0, images: [
            shared("/mnt/a", [holder(10, "qemu-io", qemu: .readOnly)]),
            shared("/var/lib/b", [holder(12, "qemu-nbd")], storage: nil),
        ], lockFiles: [], unseen: [])
        let m = ClusterMerge.merge(answers([("h1", h1), ("h2", h2), ("h3", nil)]), host: "me", generated: t0).snapshot
        XCTAssertEqual(m.images.count, 3, "\(m.images.map(\.id))")
        let a = m.images.first { $0.storage == "gluster:clvol/a" }
        XCTAssertEqual(a?.holders.map { "\($0.host!)/\($0.pid)" }, ["h1/10", "h2/10"], "same pid on two hosts: two holders")
        XCTAssertNil(a?.host, "seen from two hosts")
        let b = m.images.filter { $0.path == "/var/lib/b" }
        XCTAssertEqual(b.map(\.host), ["h1", "h2"])
        XCTAssertEqual(b.map { $0.holders.map(\.pid) }, [[11], [12]])
        XCTAssertEqual(m.unseen.map(\.what), ["h1: pid 3"])
        // HOST joins the table with more than one host in view.
        XCTAssertTrue(Column.defaults(for: LockRow.rows(of: m), hostsInView: 2).contains(.host))
        XCTAssertEqual(LockRow.rows(of: m).map { Column.host.cell($0) }.sorted(), ["h1", "h1", "h2", "h2"])
    }

    /// A host's two local images whose names Unicode calls equal (é as one code point, and
    /// as e with a combining accent) stay two in the cluster's view.
    func testNFCAndNFDTwinsStayTwoImages() {
        let nfc = "/var/lib/vm-\u{E9}.raw", nfd = "/var/lib/vm-e\u{301}.raw"
        let h1 = Snapshot(host: "h1", generated: t0, images: [
            shared(nfd, [holder(11, "qemu-nbd")], storage: nil), shared(nfc, [holder(12, "qemu-nbd")], storage: nil),
        ], lockFiles: [], unseen: [])
        let m = ClusterMerge.merge(answers([("h1", h1)]), host: "me", generated: t0).snapshot
        XCTAssertEqual(m.images.map { $0.holders.map(\.pid) }, [[11], [12]])
    }

    /// h2, a server node, names h1's holder from a brick statedump (host h1, no fd, command
    /// ?); h1 lists it itself: one holder, h1's own entry, whichever host answers first.
    func testAHolderNamedByAnotherHostsStatedumpIsItsOwnHostsEntry() {
        var named = holder(91, "?")
        named.host = "h1"
        named.fd = nil
        let own = holder(91, "qemu-io")
        let h1 = Snapshot(host: "h1", generated: t0, images: [shared("/shared/a", [own])], lockFiles: [], unseen: [])
        let h2 = Snapshot(host: "h2", generated: t0, images: [shared("/shared/a", [named, holder(7, "qemu-nbd")])], lockFiles: [], unseen: [])
        for order in [[("h1", h1), ("h2", h2)], [("h2", h2), ("h1", h1)]] {
            let m = ClusterMerge.merge(answers(order.map { ($0.0, Optional($0.1)) }), host: "me").snapshot
            XCTAssertEqual(m.images.count, 1)
            XCTAssertEqual(m.images.first?.holders.map { "\($0.host!)/\($0.pid)/\($0.command)" }.sorted(),
                           ["h1/91/qemu-io", "h2/7/qemu-nbd"], "\(order.map(\.0))")
        }
        // Without h1 in view, h2's statedump is all there is: kept.
        let alone = ClusterMerge.merge(answers([("h2", h2)]), host: "me").snapshot
        XCTAssertEqual(alone.images.first?.holders.map { "\($0.host!)/\($0.pid)" }.sorted(), ["h1/91", "h2/7"])
    }

    func testSplitLockNeedsTwoHostsHoldingOneSharedImageExclusively() {
        let lf = "/var/tmp/.qemu-x.lock"
        func snap(_ host: String, _ pid: Int32, type: LockType, storage: String? = "gluster:clvol/a") -> Snapshot {
            Snapshot(host: host, generated: t0, images: [shared("/shared/a", [holder(pid, "locksmith", scheme: .lockfile, type: type, qemu: nil)],
                                                                storage: storage, lockFiles: [lf])],
                     lockFiles: [LockFileEntry(path: lf, kind: .regular, device: disk, inode: 3, held: true, image: "/shared/a")], unseen: [])
        }
        let split = ClusterMerge.merge(answers([("h1", snap("h1", 10, type: .write)), ("h2", snap("h2", 20, type: .write))]), host: "me").snapshot
        let f = ClusterRules.splitLock(split)
        XCTAssertEqual(f.map(\.rule), [.splitLock])
        XCTAssertEqual(f.first?.severity, .critical)
        XCTAssertEqual(f.first?.holders.map { "\($0.host!)/\($0.pid)" }, ["h1/10", "h2/20"])
        XCTAssertEqual(f.first?.files, ["h1:\(lf)", "h2:\(lf)"])
        XCTAssertTrue(f.first?.evidence.contains("on h1 pid 10 (locksmith, user root) holds \(lf) exclusively") ?? false, f.first?.evidence ?? "")
        XCTAssertTrue(f.first?.remedy.contains("lock dir") ?? false || f.first?.remedy.contains("lock-dir") ?? false)
        // Shared locks, one host, or two local images: no split.
        XCTAssertEqual(ClusterRules.splitLock(ClusterMerge.merge(answers([("h1", snap("h1", 10, type: .read)), ("h2", snap("h2", 20, type: .read))]), host: "me").snapshot), [])
        XCTAssertEqual(ClusterRules.splitLock(ClusterMerge.merge(answers([("h1", snap("h1", 10, type: .write))]), host: "me").snapshot), [])
        XCTAssertEqual(ClusterRules.splitLock(ClusterMerge.merge(answers([("h1", snap("h1", 10, type: .write, storage: nil)),
                                                                          ("h2", snap("h2", 20, type: .write, storage: nil))]), host: "me").snapshot), [])
    }

    func testCrossHostWritersUnlessEveryWriterSharesWrite() {
        let shareRW = QemuPermissions(held: [.consistentRead, .write], unshared: [])
        func snap(_ host: String, _ pid: Int32, qemu: QemuPermissions?, storage: String = "gluster:clvol/a") -> Snapshot {
            var w = ImageWriter(path: "/shared/a", device: fuse, inode: 9, pid: pid, fd: 5, command: "qemu-io")
            w.storage = storage
            let imgs = qemu.map { [shared("/shared/a", [holder(pid, "qemu-io", qemu: $0)], storage: storage)] } ?? []
            return Snapshot(host: host, generated: t0, images: imgs, lockFiles: [], unseen: [], writers: [w])
        }
        let bare = ClusterMerge.merge(answers([("h1", snap("h1", 10, qemu: nil)), ("h2", snap("h2", 20, qemu: nil))]), host: "me").snapshot
        let f = ClusterRules.crossHostWriters(bare)
        XCTAssertEqual(f.map(\.rule), [.crossHostWriters])
        XCTAssertEqual(f.first?.holders.map { "\($0.host!)/\($0.pid)/\($0.role)" }, ["h1/10/writer", "h2/20/writer"])
        XCTAssertTrue(f.first?.evidence.contains("on h2 pid 20 (qemu-io)") ?? false, f.first?.evidence ?? "")
        // Every writer with share-rw=on: a shared disk meant to be.
        let meant = ClusterMerge.merge(answers([("h1", snap("h1", 10, qemu: shareRW)), ("h2", snap("h2", 20, qemu: shareRW))]), host: "me").snapshot
        XCTAssertEqual(ClusterRules.crossHostWriters(meant), [])
        // One of them without: still a hazard.
        let half = ClusterMerge.merge(answers([("h1", snap("h1", 10, qemu: shareRW)), ("h2", snap("h2", 20, qemu: .readWrite))]), host: "me").snapshot
        XCTAssertEqual(ClusterRules.crossHostWriters(half).count, 1)
        // Two writers on one host are concurrent-writers' business, not this rule's.
        XCTAssertEqual(ClusterRules.crossHostWriters(ClusterMerge.merge(answers([("h1", snap("h1", 10, qemu: nil))]), host: "me").snapshot), [])
    }

    // MARK: bounds, with real processes in place of ssh

    /// A script standing in for ssh: `body` is its shell text (it gets ssh's arguments).
    func fakeSSH(_ dir: String, _ body: String) throws -> String {
        let p = dir + "/fake-ssh"
        try "#!/bin/sh\n\(body)\n".write(toFile: p, atomically: true, encoding: .utf8)
        chmod(p, 0o755)
        return p
    }

    func testAnswersAreBoundedInSizeAndTimeAndFailuresAreOneLine() throws {
        let dir = NSTemporaryDirectory() + "cluster-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func ask(_ body: String, timeout: Double = 10, max: Int = 1 << 20) throws -> (ClusterHost, Double) {
            var q = ClusterQuery(hosts: ["h1"])
            q.ssh = [try fakeSSH(dir, body)]
            q.timeout = timeout
            q.maxAnswer = max
            let start = Date()
            let a = ClusterScan.ask(q, local: { .failure(CocoaError(.featureUnsupported)) })
            return (a.hosts[0], Date().timeIntervalSince(start))
        }
        let (big, _) = try ask("head -c 100000000 /dev/zero", max: 4096)
        XCTAssertEqual(big.error, "answer larger than 4096 bytes")
        let (slow, took) = try ask("exec sleep 30", timeout: 0.5)
        XCTAssertEqual(slow.error, "no answer within 0.5 s")
        XCTAssertLessThan(took, 10)
        let (denied, _) = try ask("printf 'Warning: added\\r\\nroot@h1: Permission denied (publickey).\\r\\n' >&2; exit 255")
        XCTAssertEqual(denied.error, "ssh failed: root@h1: Permission denied (publickey).")
        let (evil, _) = try ask("printf 'x\\033]0;pwned\\007' >&2; exit 255")
        // Kept as the host said it (JSON is exact); every terminal line escapes it
        // (TerminalText, through the CLI's complain: ClusterViewTests checks stderr).
        XCTAssertEqual(evil.error, "ssh failed: x\u{1b}]0;pwned\u{07}")
        XCTAssertEqual(TerminalText.escaped(evil.error ?? ""), "ssh failed: x\\x1b]0;pwned\\x07")
        let (garbage, _) = try ask("echo 'Last login: today'")
        XCTAssertTrue(garbage.error?.hasPrefix("bad answer: not a locksmith list --json object") ?? false, garbage.error ?? "")
        let (args, _) = try ask("printf '%s|' \"$@\" >&2; exit 255")
        XCTAssertEqual(args.error, "ssh failed: -o|BatchMode=yes|-o|ConnectTimeout=10|--|h1|locksmith list --json|")
        XCTAssertFalse(big.reached || slow.reached || denied.reached || garbage.reached)
    }

    /// --parallel bounds how many hosts are asked at once, and they are asked at once: each
    /// stand-in counts the others running beside it.
    func testParallelBoundsTheHostsAskedAtOnce() throws {
        let dir = NSTemporaryDirectory() + "cluster-par-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var q = ClusterQuery(hosts: (1...9).map { "h\($0)" })
        q.ssh = [try fakeSSH(dir, "touch \(dir)/run.$$; sleep 0.3; ls \(dir) | grep -c '^run' >> \(dir)/seen; rm \(dir)/run.$$; exit 255")]
        q.parallel = 3
        let a = ClusterScan.ask(q, local: { .failure(CocoaError(.featureUnsupported)) })
        XCTAssertEqual(a.hosts.map(\.name), q.hosts, "in the order given")
        XCTAssertTrue(a.hosts.allSatisfy { !$0.reached && $0.error == "ssh failed (exit 255)" }, "\(a.hosts.map(\.error))")
        let seen = try String(contentsOfFile: dir + "/seen", encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        XCTAssertEqual(seen.count, 9)
        XCTAssertLessThanOrEqual(seen.max() ?? 0, 3, "never more than --parallel at once: \(seen)")
        XCTAssertGreaterThan(seen.max() ?? 0, 1, "hosts are asked side by side: \(seen)")
    }

    /// watch over a cluster: h2 joining h1 on a shared image is one event (h2's), not h1's
    /// holder going and coming back; the same pid on a local path of two hosts is two holders.
    func testWatchDiffOfMergedSnapshotsKeepsHostsApart() {
        let one = holder(10, "qemu-io", qemu: .readOnly)
        let h1 = Snapshot(host: "h1", generated: t0, images: [shared("/shared/a", [one]), shared("/var/tmp/x", [one], storage: nil)],
                          lockFiles: [], unseen: [])
        let h2idle = Snapshot(host: "h2", generated: t0, images: [], lockFiles: [], unseen: [])
        let h2 = Snapshot(host: "h2", generated: t0, images: [shared("/shared/a", [one]), shared("/var/tmp/x", [one], storage: nil)],
                          lockFiles: [], unseen: [])
        let before = ClusterMerge.merge(answers([("h1", h1), ("h2", h2idle)]), host: "me", generated: t0).snapshot
        let after = ClusterMerge.merge(answers([("h1", h1), ("h2", h2)]), host: "me", generated: t0.addingTimeInterval(2)).snapshot
        let events = SnapshotDiff.events(from: before, to: after)
        XCTAssertEqual(events.map { "\($0.kind.rawValue) \($0.image ?? "-") \($0.holder?.host ?? "-")" }.sorted(),
                       ["lock-acquired /shared/a h2", "lock-acquired /var/tmp/x h2"])
    }
}
