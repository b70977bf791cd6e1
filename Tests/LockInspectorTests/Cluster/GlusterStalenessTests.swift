import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// The Gluster staleness check over gathered facts: a statedump's lock (host, pid, client
/// pid, owner, grant time) against its host's process table (`locksmith processes --json`).
final class GlusterStalenessTests: XCTestCase {
    let granted = Date(timeIntervalSince1970: 1_800_000_000)

    func process(_ pid: Int32, _ command: String = "qemu-io", state: String = "S", started: Date? = nil,
                 open: [String] = [], named: [String] = []) -> HostProcess {
        HostProcess(details: ProcessDetails(pid: pid, command: command, user: "root", started: started ?? granted.addingTimeInterval(-60)),
                    state: state, volumesOpen: open, volumesNamed: named)
    }

    func table(_ host: String, _ ps: [HostProcess]) -> [String: HostProcessTable] {
        [host: HostProcessTable(host: host, reached: true, processes: Dictionary(uniqueKeysWithValues: ps.map { ($0.pid, $0) }))]
    }

    /// A lock taken through h2's FUSE mount (pid 81, the mount's daemon 65).
    var fuseLock: GlusterLockFact { GlusterLockFact(volume: "clvol", host: "h2", pid: 81, clientPID: 65, granted: granted) }

    func testNoHostOrPidOrHostNotSeenIsOnlyPossiblyStale() {
        let t = table("h2", [])
        var l = fuseLock
        l.host = nil
        XCTAssertEqual(GlusterStaleness.judge(l, tables: t).0, .possiblyStale("the statedump names no host for it"))
        l = fuseLock
        l.pid = nil
        XCTAssertEqual(GlusterStaleness.judge(l, tables: t).0, .possiblyStale("the statedump names no pid for it"))
        XCTAssertEqual(GlusterStaleness.judge(fuseLock, tables: table("h1", [])).0, .possiblyStale("host h2 is not in view"))
        let down = ["h2": HostProcessTable(host: "h2", reached: false, error: "no answer within 5 s")]
        XCTAssertEqual(GlusterStaleness.judge(fuseLock, tables: down).0, .possiblyStale("host h2 did not answer: no answer within 5 s"))
    }

    func testAnsweredHostWithoutTheProcessProvesItStale() {
        let (l, p) = GlusterStaleness.judge(fuseLock, tables: table("h2", [process(82)]))
        XCTAssertEqual(l, .provenStale("host h2 has no process 81"))
        XCTAssertNil(p)
        XCTAssertTrue(l.isProvenStale)
        XCTAssertEqual(l.word, "proven-stale")
    }

    func testAnExitedOrReusedOrFileLessProcessCannotHoldIt() {
        // Exited: a zombie (its other threads may still wait on the frozen mount).
        XCTAssertTrue(GlusterStaleness.judge(fuseLock, tables: table("h2", [process(81, state: "Z", open: ["clvol"])])).0.isProvenStale)
        // Started after the grant (beyond the clocks' slack): the pid was given to another process.
        let late = process(81, "sleep", started: granted.addingTimeInterval(GlusterStaleness.clockSlack + 1), open: ["clvol"])
        guard case .provenStale(let why) = GlusterStaleness.judge(fuseLock, tables: table("h2", [late])).0 else {
            return XCTFail("a later process")
        }
        XCTAssertTrue(why.contains("after the lock was granted"), why)
        // Within the slack (whole seconds in the brick's clock): the holder itself.
        let early = process(81, started: granted.addingTimeInterval(GlusterStaleness.clockSlack - 1), open: ["clvol"])
        XCTAssertEqual(GlusterStaleness.judge(fuseLock, tables: table("h2", [early])).0, .live)
        // A FUSE holder has the file open; without any file of the volume open it holds nothing.
        let closed = process(81, open: ["other"])
        XCTAssertEqual(GlusterStaleness.judge(fuseLock, tables: table("h2", [closed])).0,
                       .provenStale("pid 81 (qemu-io) on h2 has no file of volume clvol open: a FUSE holder keeps the file open"))
    }

    func testLiveHoldersAreNamedFromTheirHost() {
        let p = process(81, open: ["clvol"])
        let (l, got) = GlusterStaleness.judge(fuseLock, tables: table("h2", [p]))
        XCTAssertEqual(l, .live)
        XCTAssertEqual(got, p)
        XCTAssertNil(l.reason)
        // A gfapi client (the connection is the locking process): nothing of its files tells.
        let gfapi = GlusterLockFact(volume: "clvol", host: "h2", pid: 90, clientPID: 90)
        XCTAssertEqual(GlusterStaleness.judge(gfapi, tables: table("h2", [process(90, "qemu-system-x86")])).0, .live)
        // A locksmith owner: the pid must be a client of the volume (its arguments name it).
        let ours = GlusterLockFact(volume: "clvol", host: "h2", pid: 91, clientPID: 91, isLocksmith: true)
        XCTAssertEqual(GlusterStaleness.judge(ours, tables: table("h2", [process(91, "locksmith", named: ["clvol"])])).0, .live)
        XCTAssertTrue(GlusterStaleness.judge(ours, tables: table("h2", [process(91, "bash")])).0.isProvenStale)
    }

    func testVolumesFromArgumentsAndMountSources() {
        XCTAssertEqual(GlusterStaleness.volumes(arguments: ["qemu-system-x86_64", "-drive", "file=gluster://gl1/vmstore/vm1.qcow2,format=qcow2"]), ["vmstore"])
        XCTAssertEqual(GlusterStaleness.volumes(arguments: ["locksmith", "hold", "gluster+tcp://10.0.0.1:24007/v2/a/b.img"]), ["v2"])
        XCTAssertEqual(GlusterStaleness.volumes(arguments: ["/usr/sbin/glusterfs", "--volfile-server=10.77.0.1", "--volfile-id=/clvol", "/shared"]), ["clvol"])
        XCTAssertEqual(GlusterStaleness.volumes(arguments: ["glusterfs", "--volfile-id", "clvol"]), ["clvol"])
        XCTAssertEqual(GlusterStaleness.volumes(arguments: ["curl", "https://example.com/x"]), [])
        XCTAssertEqual(GlusterStaleness.volume(mountSource: "10.77.0.1:/clvol"), "clvol")
        XCTAssertEqual(GlusterStaleness.volume(mountSource: "gl1:/vmstore/sub"), "vmstore")
        XCTAssertEqual(GlusterStaleness.volume(mountSource: "gl1:vmstore"), "vmstore")
        XCTAssertNil(GlusterStaleness.volume(mountSource: "nothing"))
        XCTAssertEqual(GlusterStaleness.grantTime("2026-11-28 03:42:58 +0000"), Date(timeIntervalSince1970: 1_795_837_378))
        XCTAssertNil(GlusterStaleness.grantTime("yesterday"))
    }

    /// The statedump's time is read and written as DateFormatter read and wrote it
    /// (`yyyy-MM-dd HH:mm:ss Z`; `yyyy-MM-dd HH:mm:ss 'UTC'` in UTC), without it.
    func testGrantTimesAndStampsAgreeWithDateFormatter() {
        let parse = DateFormatter()
        parse.locale = Locale(identifier: "en_US_POSIX")
        parse.dateFormat = "yyyy-MM-dd HH:mm:ss Z"
        for text in ["2026-11-28 03:42:58 +0000", "  2027-01-15 08:00:00 +0000 ", "2024-02-29 23:59:59 -0800",
                     "1970-01-01 00:00:00 +0000", "1969-12-31 23:59:59 +0000", "2000-03-01 12:30:00 +0530",
                     "2100-12-31 00:00:01 -1200", "2026-11-28 03:42:58 +05:30"] {
            XCTAssertEqual(GlusterStaleness.grantTime(text), parse.date(from: text.trimmingCharacters(in: .whitespaces)), text)
        }
        for bad in ["2026-02-30 00:00:00 +0000", "2026-13-01 00:00:00 +0000", "2026-11-28 24:00:00 +0000",
                    "2026-11-28 03:42:58", "2026-11-28T03:42:58 +0000", "2026-11-28 03:42:58 +0000 x", "",
                    "2026-1-28 03:42:58 +0000"] {
            XCTAssertNil(GlusterStaleness.grantTime(bad), bad)
        }
        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.timeZone = TimeZone(identifier: "UTC")
        stamp.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        var seconds: Double = -86_400 * 800
        while seconds < 5_000_000_000 {
            let d = Date(timeIntervalSince1970: seconds + 0.75)
            XCTAssertEqual(GlusterStaleness.stamp(d), stamp.string(from: d))
            seconds += 7_777_777.5
        }
    }

    func record(_ host: String, _ pid: Int32, client: Int32, start: Int64 = 0, since: String = "2027-01-15 08:00:00 +0000") -> GlusterLockRecord {
        GlusterLockRecord(volume: "clvol", path: "/vm.qcow2", state: .active, type: .write, range: ByteRange(start: start, length: 1),
                          pid: pid, owner: nil, connectionID: nil, clientHost: host, clientPID: client, clientName: nil, since: since)
    }

    func testClearLocksNeedsEveryHolderProvenStale() {
        let stale = [record("h2", 81, client: 65, start: 100), record("h2", 81, client: 65, start: 201)]
        let live = [record("h1", 93, client: 64)]
        let tables = ClearLocksReview.tables([
            ClusterScan.ProcessAnswer(destination: "root@10.0.0.1", table: HostProcessTable(host: "h1", reached: true, processes: [93: process(93, open: ["clvol"])])),
            ClusterScan.ProcessAnswer(destination: "h2", table: HostProcessTable(host: "h2", reached: true)),
            ClusterScan.ProcessAnswer(destination: "root@h3", table: HostProcessTable(host: "root@h3", reached: false, error: "ssh failed")),
        ])
        XCTAssertEqual(tables["h3"]?.reached, false, "a failed destination is filed under its host part")
        let onlyStale = ClearLocksReview.review(granted: stale, volume: "clvol", tables: tables)
        XCTAssertEqual(onlyStale.holders.count, 1, "one holder, two records")
        XCTAssertEqual(onlyStale.holders.first?.records.count, 2)
        XCTAssertTrue(onlyStale.allProvenStale)
        let both = ClearLocksReview.review(granted: stale + live, volume: "clvol", tables: tables)
        XCTAssertFalse(both.allProvenStale)
        XCTAssertEqual(both.notProvenStale.map(\.pid), [93])
        XCTAssertEqual(both.notProvenStale.first?.process?.details.command, "qemu-io")
        let unseen = ClearLocksReview.review(granted: [record("h3", 5, client: 4)], volume: "clvol", tables: tables)
        XCTAssertEqual(unseen.holders.first?.liveness, .possiblyStale("host h3 did not answer: ssh failed"))
        XCTAssertFalse(ClearLocksReview.review(granted: [], volume: "clvol", tables: tables).allProvenStale, "nothing to clear is not stale")
    }

    func testProcessesJSONReadsBackStrictly() throws {
        let p = HostProcess(details: ProcessDetails(pid: 81, command: "qemu\u{1b}[2J", args: ["qemu-io", "x"], uid: 0, user: "root",
                                                    started: granted, startTicks: 42, vm: "web01"),
                            state: "S", volumesOpen: ["clvol"], volumesNamed: [])
        let bytes = ProcessesJSON.render(host: "h2", version: "0.1.0", processes: [p, process(7)])
        let (host, got) = try ProcessesJSON.parse(bytes, asked: [81])
        XCTAssertEqual(host, "h2")
        XCTAssertEqual(got.keys.sorted(), [81], "only the pids asked about")
        XCTAssertEqual(got[81], p, "strings kept exact (escaping is the printer's)")
        XCTAssertThrowsError(try ProcessesJSON.parse(Array("{\"schema\":2,\"host\":\"h\",\"processes\":[]}".utf8), asked: []))
        XCTAssertThrowsError(try ProcessesJSON.parse(Array("not json".utf8), asked: []))
        XCTAssertThrowsError(try ProcessesJSON.parse(Array("{\"schema\":1,\"host\":\"h\",\"processes\":[{\"pid\":\"1\"}]}".utf8), asked: [1]))
    }

    func testAnnotateMarksGlusterHoldersAndNamesLiveOnes() {
        var remote = Holder(pid: 81, command: "?", scheme: .gluster, lockType: .write, host: "h2")
        remote.statedump = StatedumpNaming(clientPID: 65, locksmithOwner: false, granted: granted)
        var gone = Holder(pid: 82, command: "?", scheme: .gluster, lockType: .write, host: "h2")
        gone.statedump = StatedumpNaming(clientPID: 65, locksmithOwner: false, granted: granted)
        var img = ImageLocks(id: "gluster://s/clvol/vm.qcow2", path: "gluster://s/clvol/vm.qcow2", schemes: [.gluster], holders: [remote, gone])
        img.storage = "gluster:clvol/vm.qcow2"
        let local = ImageLocks(id: "/var/tmp/x.img", path: "/var/tmp/x.img", schemes: [.qemu], holders: [Holder(pid: 9, command: "qemu-io", scheme: .qemu)])
        var s = Snapshot(host: "view", generated: granted, images: [img, local], lockFiles: [], unseen: [])
        XCTAssertEqual(GlusterStaleness.pidsToAsk(s.images.compactMap { i in GlusterStaleness.volume(of: i) == nil ? nil : i }
            .flatMap(\.holders).map { GlusterLockFact(volume: "clvol", host: $0.host, pid: $0.pid) }), ["h2": [81, 82]])
        GlusterStaleness.annotate(&s, tables: table("h2", [process(81, "qemu-io", open: ["clvol"])]))
        XCTAssertEqual(s.images[0].holders.map(\.liveness), [.live, .provenStale("host h2 has no process 82")])
        XCTAssertEqual(s.images[0].holders[0].command, "qemu-io", "named from its host")
        XCTAssertEqual(s.images[0].holders[1].command, "?")
        XCTAssertNil(s.images[1].holders[0].liveness, "a local image is not a Gluster lock")
        let rows = LockRow.rows(of: s)
        XCTAssertEqual(rows.map { Column.stale.cell($0) }, ["live", "proven", "-"])
        XCTAssertTrue(Column.defaults(for: rows).contains(.stale))
    }
}

/// K on another host's holder, that host's side: the holder of its own fresh scan that
/// matches what the asking view saw (pid, start second, scheme, fd, image), or a refusal.
final class RemoteSignalTests: XCTestCase {
    let started = Date(timeIntervalSince1970: 1_800_000_000.7)

    func snapshot(_ holders: [Holder]) -> Snapshot {
        Snapshot(host: "h2", generated: started, images: [ImageLocks(id: "/var/tmp/a.qcow2", path: "/var/tmp/a.qcow2", schemes: [.qemu], holders: holders)],
                 lockFiles: [], unseen: [])
    }

    func testTheWordsNameTheHolderExactlyAndTheRemoteSideMatchesThem() throws {
        let h = Holder(pid: 42, command: "qemu-io", started: started, fd: 7, scheme: .qemu, host: "h2")
        let w = try XCTUnwrap(RemoteSignal.words(for: h, image: "/var/tmp/a.qcow2"))
        XCTAssertEqual(w, ["signal", "--signal", "TERM", "--pid", "42", "--started", "2027-01-15T08:00:00Z", "--scheme", "qemu",
                           "--fd", "7", "--", "/var/tmp/a.qcow2"])
        XCTAssertNil(RemoteSignal.words(for: Holder(pid: 42, command: "x", scheme: .qemu), image: "/a"), "no start time: not exact enough")
        let seen = "2027-01-15T08:00:00Z"
        let fresh = Holder(pid: 42, command: "qemu-io", started: started.addingTimeInterval(0.2), fd: 7, scheme: .qemu, startTicks: 9)
        XCTAssertEqual(try RemoteSignal.find(pid: 42, started: seen, scheme: .qemu, fd: 7, image: "/var/tmp/a.qcow2", in: snapshot([fresh])).get(), fresh)
        func refusal(_ s: Snapshot, pid: Int32 = 42, fd: Int32? = 7, image: String = "/var/tmp/a.qcow2") -> String? {
            if case .failure(let r) = RemoteSignal.find(pid: pid, started: seen, scheme: .qemu, fd: fd, image: image, in: s) { return r.why }
            return nil
        }
        XCTAssertEqual(refusal(snapshot([fresh]), image: "/var/tmp/b.qcow2"), "holds no lock on /var/tmp/b.qcow2 here any more")
        XCTAssertEqual(refusal(snapshot([fresh]), pid: 43), "holds no qemu lock on /var/tmp/a.qcow2 here any more")
        XCTAssertEqual(refusal(snapshot([fresh]), fd: 8), "holds no qemu lock on /var/tmp/a.qcow2 here any more")
        var later = fresh
        later.started = started.addingTimeInterval(3)
        XCTAssertEqual(refusal(snapshot([later])), "has ended: the pid now names another process (started 2027-01-15T08:00:03Z, not 2027-01-15T08:00:00Z)")
        guard case .refused(let line) = RemoteSignal.send(SIGTERM, named: "SIGTERM", pid: 42, started: seen, scheme: .qemu, fd: 7,
                                                          image: "/var/tmp/a.qcow2", in: snapshot([later])) else { return XCTFail("refused") }
        XCTAssertTrue(line.hasPrefix("Not signalled: pid 42 has ended"), line)
        // A lock on the image's NFD twin (another file, a string Swift calls equal) is no
        // lock on the image.
        let nfc = "/var/tmp/vm-\u{E9}.raw", nfd = "/var/tmp/vm-e\u{301}.raw"
        let twin = Snapshot(host: "h2", generated: started, images: [ImageLocks(id: nfd, path: nfd, schemes: [.qemu], holders: [fresh])],
                            lockFiles: [], unseen: [])
        XCTAssertEqual(refusal(twin, image: nfc), "holds no lock on \(nfc) here any more")
        XCTAssertNil(refusal(twin, image: nfd))
    }
}
