import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI
import XCTest

/// Issue 15, item 4: the TUI's work per snapshot (flagged rows, rows, sorting, filtering,
/// one screen) stays linear in planted lock files: 10k vs 20k, time ratio at most 2.5.
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

    func testSnapshotHandlingAndRenderingAreLinear() {
        var times: [Double] = []
        for n in [10_000, 20_000] {
            let snap = snapshot(n)
            var best = Double.infinity
            for _ in 0..<5 {
                var s = TUIState(width: 120, height: 40, now: Fixtures.now)
                let t0 = Date()
                s.handle(.snapshot(snap))
                s.type("/qemu-")  // a filter every row matches
                s.press(.enter, .char("s"), .end)  // sort by a column, select the last row
                _ = Renderer.render(s)
                s.handle(.snapshot(snap))
                _ = Renderer.render(s)
                best = min(best, Date().timeIntervalSince(t0))
                XCTAssertEqual(s.rows.count, n)
                XCTAssertEqual(s.selected, n - 1)
                XCTAssertTrue(s.isFlagged(s.rows[0]))
            }
            times.append(best)
        }
        print("TUI: 10k \(times[0]) s, 20k \(times[1]) s, ratio \(times[1] / times[0])")
        XCTAssertLessThanOrEqual(times[1] / times[0], 2.5, "10k \(times[0]) s, 20k \(times[1]) s")
    }
}
