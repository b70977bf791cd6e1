import Foundation
import ImageLock
import LockInspector
import XCTest

/// `ClearLocksText`: clear-locks' and processes' lines from values built here.
final class ClearLocksTextTests: XCTestCase {
    let url = try! GlusterURL(parsing: "gluster://gl1/clvol/vm.qcow2")

    func record(_ host: String, _ pid: Int32, client: Int32, start: Int64) -> GlusterLockRecord {
        GlusterLockRecord(volume: "clvol", path: "/vm.qcow2", state: .active, type: .write, range: ByteRange(start: start, length: 1),
                          pid: pid, owner: nil, connectionID: nil, clientHost: host, clientPID: client, clientName: nil,
                          since: "2027-01-15 08:00:00 +0000")
    }

    func testTheReviewNamesEachHolderWithItsVerdictAndRecords() {
        let qemu = HostProcess(details: ProcessDetails(pid: 93, command: "qemu\u{1b}[2J", user: "root", vm: "web01"),
                               state: "S", volumesOpen: ["clvol"], volumesNamed: [])
        let tables = ClearLocksReview.tables([
            ClusterScan.ProcessAnswer(destination: "h1", table: HostProcessTable(host: "h1", reached: true, processes: [93: qemu])),
            ClusterScan.ProcessAnswer(destination: "h2", table: HostProcessTable(host: "h2", reached: true)),
        ])
        let granted = [record("h2", 81, client: 65, start: 100), record("h1", 93, client: 93, start: 201)]
        let review = ClearLocksReview.review(granted: granted, volume: "clvol", tables: tables)
        let lines = ClearLocksText.review(url, granted: 2, review: review)
        XCTAssertEqual(lines.first, "gluster://gl1/clvol/vm.qcow2: 2 granted locks of 2 holders:")
        XCTAssertTrue(lines.contains { $0.hasPrefix("  proven stale: pid 81 on host h2: ") }, "\(lines)")
        XCTAssertTrue(lines.contains("  live: pid 93 on host h1 (qemu\u{1b}[2J, VM web01, user root)"), "\(lines)")
        XCTAssertTrue(lines.contains("    WRITE lock on bytes 100-100: pid 81 on host h2 (client pid 65, granted 2027-01-15 08:00:00 +0000)"),
                      "\(lines)")
        XCTAssertEqual(ClearLocksText.refusal(standing: 1),
                       "Nothing cleared: 1 holder is not proven stale; a live holder would go on as if it still held its lock. Stop it, or pass --force-live.")
        XCTAssertEqual(ClearLocksText.beforeClearing(waiting: 0, forced: false), ["Every holder is proven stale: clearing drops only dead locks."])
        XCTAssertEqual(ClearLocksText.beforeClearing(waiting: 2, forced: true).first,
                       "  (2 waiting lock requests will then be granted in turn)")
        XCTAssertEqual(ClearLocksText.nothingGranted(url, bricksNotHere: ["gl2:/b"]),
                       "gluster://gl1/clvol/vm.qcow2: no granted locks on this node's bricks; nothing to clear (bricks on other nodes not checked: gl2:/b)")
        XCTAssertEqual(ClearLocksText.line(qemu), "93 S qemu\u{1b}[2J user root VM web01 gluster clvol")
    }
}
