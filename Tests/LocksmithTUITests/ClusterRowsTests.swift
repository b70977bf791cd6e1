import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI

import XCTest

/// A cluster view in the TUI: HOST on every row, holders per host and hosts not seen in
/// the header, / matching a host, K refusing a holder on another host unless the view can
/// signal there (`terminateRemote`), then asking first and handing it to that host.
final class ClusterRowsTests: XCTestCase {
    func state() -> TUIState {
        let a = Holder(pid: 10, command: "qemu-io", scheme: .qemu, lockType: .read, qemu: .readOnly, host: "h1")
        let b = Holder(pid: 10, command: "qemu-nbd", scheme: .qemu, lockType: .read, qemu: .readOnly, host: "h2")
        var img = ImageLocks(id: "/shared/a.qcow2", path: "/shared/a.qcow2", schemes: [.qemu], holders: [a, b])
        img.storage = "gluster:clvol/a.qcow2"
        var snap = Fixtures.snapshot([img])
        snap.host = "h1"
        snap.unseen.append(Unseen(what: "host h3", why: "ssh failed: No route to host"))
        var s = TUIState(width: 120, height: 24, now: Fixtures.now, whyAvailable: true)
        s.handle(.snapshot(.fresh(snap)))
        return s
    }

    func testHeaderCountsHoldersPerHostAndHostsDown() {
        let s = state()
        let b = Renderer.render(s)
        XCTAssertTrue(b.line(0).contains("h1:1 h2:1  1 host down"), b.line(0))
        XCTAssertTrue(b.line(1).contains(" HOST "), b.line(1))
        XCTAssertEqual(Renderer.hostCounts(Fixtures.snapshot([])), "", "one host: nothing to count")
    }

    func testFilterMatchesAHostAndKRefusesAnotherHostsHolder() {
        var s = state()
        s.press(.char("/"))
        for c in "h2" { s.press(.char(c)) }
        s.press(.enter)
        XCTAssertEqual(s.rows.map { $0.holder?.command }, ["qemu-nbd"])
        s.press(.char("K"))
        XCTAssertNil(s.prompt)
        XCTAssertEqual(s.message, "pid 10 runs on h2, not here: cannot signal it.")
    }

    func testKOnAnotherHostsHolderAsksThenGoesToThatHost() {
        var s = state()
        s.remoteSignalAvailable = true
        s.press(.char("/"))
        for c in "h2" { s.press(.char(c)) }
        s.press(.enter)
        s.press(.char("K"))
        guard case .kill(let h, let id)? = s.prompt else { return XCTFail("K asks first: \(String(describing: s.prompt))") }
        XCTAssertEqual(h.host, "h2")
        XCTAssertEqual(id, "/shared/a.qcow2")
        XCTAssertTrue(Renderer.promptText(s.prompt!).contains("pid 10 (qemu-nbd, VM none) on h2? y sends it"))
        XCTAssertEqual(s.handle(.key(.char("n"))).requests, [], "n sends nothing")
        s.press(.char("K"))
        XCTAssertEqual(s.handle(.key(.char("y"))).requests, [.terminateRemote(h, imageID: "/shared/a.qcow2")])
        // This host's holder stays a local K.
        s.press(.char("/"))
        for _ in 0..<2 { s.press(.backspace) }
        for c in "qemu-io" { s.press(.char(c)) }
        s.press(.enter)
        s.press(.char("K"))
        XCTAssertEqual(s.handle(.key(.char("y"))).requests.map { if case .terminate = $0 { return true } else { return false } }, [true])
    }
}
