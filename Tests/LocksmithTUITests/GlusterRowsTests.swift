import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI

import XCTest

/// Gluster rows in the TUI: the HOST column, K refusing other hosts' pids, C behind a y.
final class GlusterRowsTests: XCTestCase {
    static let url = "gluster://gl1/vmstore/vm9.qcow2"
    static let remote = Holder(pid: 31337, command: "?", scheme: .gluster, lockType: .write, host: "h1")
    static let unknownHost = Holder(pid: 4242, command: "?", scheme: .gluster, lockType: .read)
    static let image = ImageLocks(id: url, path: url, schemes: [.gluster], holders: [remote])

    func state(width: Int = 100, holders: [Holder] = [remote], clear: Bool = true) -> TUIState {
        var img = GlusterRowsTests.image
        img.holders = holders
        var s = TUIState(width: width, height: 24, now: Fixtures.now, whyAvailable: true)
        s.clearLocksAvailable = clear
        s.handle(.snapshot(.fresh(Fixtures.snapshot([img] + [Fixtures.backupImage]))))
        return s
    }

    func testHostColumnJoinsOnlyWhenAHolderHasAHost() {
        XCTAssertEqual(Fixtures.state(width: 120).columns, Column.defaults)
        let s = state(width: 100)
        XCTAssertEqual(s.columns, [.image, .scheme, .mode, .pid, .host, .command, .vm, .user, .age])
        let b = Renderer.render(s)
        XCTAssertTrue(b.line(1).contains(" PID HOST "), b.line(1))
        XCTAssertTrue(b.line(2).contains("gluster   write   31337 h1 "), b.line(2))
        // Narrow: HOST outlives VM, USER and AGE (priority), never the PID.
        XCTAssertEqual(Layout.columns(s.columns, width: 80).map(\.column), [.image, .scheme, .mode, .pid, .host, .command])
        XCTAssertEqual(Layout.columns(s.columns, width: 40).map(\.column), [.image, .mode, .pid])
        XCTAssertTrue(b.text.contains("pid 31337 ? write  on h1  [gluster]"), b.text)
        XCTAssertTrue(b.text.contains("press C"), b.text)
    }

    func testKillRefusesGlusterHoldersOfOtherOrUnknownHosts() {
        var s = state()
        s.press(.char("K"))
        XCTAssertNil(s.prompt)
        XCTAssertEqual(s.message, "pid 31337 runs on h1, not here: cannot signal it.")
        var u = state(holders: [GlusterRowsTests.unknownHost])
        u.press(.char("K"))
        XCTAssertNil(u.prompt, "F_GETLK's pid is the holder's host's: never signal it here")
        XCTAssertEqual(u.message, "The host of this holder is not known (4242): not signalling anything here.")
    }

    func testClearLocksAsksAndOnlyYClears() {
        var s = state()
        s.press(.char("C"))
        XCTAssertEqual(s.prompt, .clearLocks(s.selectedRow!.image))
        XCTAssertEqual(Renderer.render(s).line(23).hasPrefix("Clear the granted locks on \(GlusterRowsTests.url) if every holder is proven stale?"), true)
        XCTAssertEqual(s.press(.char("n")), [Reaction(.redraw)])
        XCTAssertEqual(s.message, "Nothing cleared.")
        s.press(.char("C"))
        XCTAssertEqual(s.press(.char("y")), [Reaction(.redraw, [.clearLocks(s.selectedRow!.image)])])
        XCTAssertEqual(s.handle(.clearLocksResult("cleared 1 granted lock.")), Reaction([.redraw, .rescan]))
        XCTAssertEqual(s.message, "cleared 1 granted lock.")

        s.press(.down)
        XCTAssertEqual(s.selectedRow?.image.id, Fixtures.backupImage.id)
        s.press(.char("C"))
        XCTAssertNil(s.prompt)
        XCTAssertEqual(s.message, "C clears the locks of gluster images only.")

        var none = state(clear: false)
        none.press(.char("C"))
        XCTAssertNil(none.prompt)
        XCTAssertEqual(none.message, "clear-locks is not available here.")
    }
}
