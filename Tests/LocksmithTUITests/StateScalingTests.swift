import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI
import XCTest

/// Issue 15, item 4: the TUI handles a snapshot of 20k planted lock files, each flagged
/// (rows, sorting, filtering, one screen). That this stays linear in what others plant is
/// timed by `scripts/bench --states planted` (10k against 20k), not here: no timed tests.
final class StateScalingTests: XCTestCase {
    /// `n` unknown images of planted lock files, each flagged by a finding.
    func snapshot(_ n: Int) -> PolledSnapshot {
        var images: [ImageLocks] = [], findings: [Finding] = []
        for i in 0..<n {
            let path = "/var/tmp/" + ImageLocker.lockFileName(realPath: "/planted/\(i)")
            let holders = i % 10 == 0 ? [Holder(pid: Int32(1000 + i), command: "sleep", scheme: .lockfile, lockType: .write)] : []
            images.append(ImageLocks(id: path, path: nil, schemes: [.lockfile], lockFiles: [path], holders: holders))
            findings.append(Finding(rule: .unmappedLockFile, severity: .info, image: nil, files: [path], evidence: "e", remedy: "r"))
        }
        return .fresh(Snapshot(host: "h", generated: Fixtures.now, images: images, lockFiles: [], unseen: []), findings: findings)
    }

    func testSnapshotHandlingAndRenderingOfManyPlantedLockFiles() {
        let n = 20_000
        let snap = snapshot(n)
        var s = TUIState(width: 120, height: 40, now: Fixtures.now)
        s.handle(.snapshot(snap))
        s.type("/qemu-")  // a filter every row matches
        s.press(.enter, .char("s"), .end)  // sort by a column, select the last row
        _ = Renderer.render(s)
        s.handle(.snapshot(snap))
        _ = Renderer.render(s)
        XCTAssertEqual(s.rows.count, n)
        XCTAssertEqual(s.selected, n - 1)
        XCTAssertTrue(s.isFlagged(s.rows[0]))
    }
}
