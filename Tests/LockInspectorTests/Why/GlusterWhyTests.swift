import ImageLock
import LockInspector
import XCTest

/// The verdict of `why gluster://…` from gathered facts (no server needed), and the image names.
final class GlusterWhyTests: XCTestCase {
    let url = "gluster://gl1/vmstore/vm1.qcow2"

    func input(_ probe: GlusterWhy.Input.Probe, intent: OpenIntent = .write, statedump: Bool = false,
               note: String? = nil) -> GlusterWhy.Input {
        GlusterWhy.Input(imageAsGiven: url, intent: intent, probe: probe, fromStatedump: statedump, namingNote: note, localHost: "here")
    }

    func testFreeIsProven() {
        let v = GlusterWhy.verdict(input(.free))
        XCTAssertEqual(v.outcome, .opens)
        XCTAssertTrue(v.proven)
        XCTAssertEqual(v.image, url)
        XCTAssertEqual(v.facts.map(\.statement),
                       ["F_GETLK through glfs_posix_lock: a whole-file WRITE lock (F_WRLCK) on \(url) would be granted"])
    }

    func testHeldByAHostFromTheStatedump() {
        let h = GlusterLockHolder(type: .read, range: .wholeFile, pid: 77, host: "h2",
                                  owner: .locksmith(host: "h2", pid: 77), source: .statedump)
        let v = GlusterWhy.verdict(input(.held([h]), statedump: true))
        XCTAssertEqual(v.outcome, .fails)
        XCTAssertEqual(v.blockers.count, 1)
        let b = v.blockers[0]
        XCTAssertEqual(b.pid, 77)
        XCTAssertEqual(b.host, "h2")
        XCTAssertEqual(b.scheme, .gluster)
        XCTAssertEqual(b.lock, "read")
        XCTAssertEqual(b.conflict, ["shared"])
        XCTAssertTrue(b.proven)
        XCTAssertEqual(b.remedy, "stop pid 77 on host h2, or wait for it; if its host is down or cut off from the servers, "
                       + "`locksmith clear-locks \(url)` on a server node drops the lock")
    }

    func testHeldWithoutAHostPointsAtForce() {
        let h = GlusterLockHolder(type: .write, range: .wholeFile, pid: 12, source: .getlk)
        let v = GlusterWhy.verdict(input(.held([h]), note: "host unknown: needs a server node"))
        XCTAssertNil(v.blockers[0].host)
        XCTAssertTrue(v.blockers[0].remedy.contains("`locksmith why \(url)` on a server node names the host"))
        XCTAssertEqual(v.facts.last?.statement, "holders' hosts not named: host unknown: needs a server node")
        XCTAssertFalse(v.proven)
    }

    func testFailuresAreReasons() {
        let missing = GlusterWhy.verdict(input(.failed(.imageMissing(path: url))))
        XCTAssertEqual(missing.outcome, .fails)
        XCTAssertEqual(missing.reasons.map(\.kind), [.imageMissing])
        let down = GlusterWhy.verdict(input(.failed(.glusterUnreachable(server: "gl1:24007", volume: "vmstore", errno: ENOTCONN))))
        XCTAssertEqual(down.outcome, .unknown)
        XCTAssertEqual(down.reasons.first?.blocks, false)
        let late = GlusterWhy.verdict(input(.failed(.glusterTimedOut(operation: "connect", server: "gl1:24007", seconds: 5))))
        XCTAssertEqual(late.outcome, .unknown)
    }

    func testImageNames() {
        for name in ["vm.qcow2", "/a/b.RAW", "x.img", "cd.iso", "d.vmdk", "e.vdi", "f.vhd", "g.vhdx", "h.qed"] {
            XCTAssertTrue(GlusterScan.isImageName(name), name)
        }
        for name in ["notes.txt", "qcow2", "/dir.qcow2/file", "vm.qcow2.bak"] {
            XCTAssertFalse(GlusterScan.isImageName(name), name)
        }
    }
}
