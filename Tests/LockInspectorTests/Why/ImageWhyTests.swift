import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// `why`'s orchestration in the library, on real holders (`LiveScenario`: qemu-nbd writing,
/// two qemu-io readers, a `locksmith hold`): the facts gathered, the focused scan and the
/// proofs lead to the verdict QEMU's own checks would give, with no binary in between.
final class ImageWhyTests: XCTestCase {
    func testRealHoldersBlockWhatQemuWouldRefuseAndForceProvesIt() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let dirs = [s.lockDir]

        let writable = ImageWhy.diagnose(s.writable, intent: .write, lockDirectories: dirs, force: false)
        XCTAssertEqual(writable.outcome, .fails)
        XCTAssertEqual(writable.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertEqual(writable.blockers.compactMap(\.pid), [s.writer.pid])
        XCTAssertFalse(writable.proven, "inferred from /proc/locks without --force")

        let forced = ImageWhy.diagnose(s.writable, intent: .write, lockDirectories: dirs, force: true)
        XCTAssertEqual(forced.outcome, .fails)
        XCTAssertTrue(forced.facts.contains { $0.proven }, "the test-acquire proves the refusal: \(forced.facts)")

        // Two readers of the base share it: a read-only look opens, a read-write open does not.
        XCTAssertEqual(ImageWhy.diagnose(s.base, intent: .readOnly, lockDirectories: dirs, force: false).outcome, .opens)
        let base = ImageWhy.diagnose(s.base, intent: .write, lockDirectories: dirs, force: false)
        XCTAssertEqual(Set(base.blockers.compactMap(\.pid)), Set(s.readers.map(\.pid)))

        // The lock file of `locksmith hold` (the lockfile scheme) blocks a read-write open.
        let held = ImageWhy.diagnose(s.held, intent: .write, lockDirectories: dirs, force: false)
        XCTAssertEqual(held.blockers.map(\.pid), [s.holder.pid])
        XCTAssertEqual(held.blockers.first?.scheme, .lockfile)

        // Every process's fds read ahead (as `locksmith why` starts it), and the kernel's
        // table handed in instead, give the same verdict, each naming its source.
        let early = ImageWhy.diagnose(s.held, intent: .write, lockDirectories: dirs, force: false,
                                      openFiles: Inspector.prefetchOpenFiles())
        XCTAssertEqual(early.blockers.map(\.pid), [s.holder.pid])
        XCTAssertTrue(early.facts.contains { $0.statement.hasSuffix("(from fdinfo)") }, "\(early.facts)")
        let table = ImageWhy.diagnose(s.held, intent: .write, lockDirectories: dirs, force: false,
                                      prefetched: Inspector.prefetchKernelTable())
        XCTAssertEqual(table.blockers.map(\.pid), [s.holder.pid])
        XCTAssertTrue(table.facts.contains { $0.statement.hasSuffix("(from /proc/locks)") }, "\(table.facts)")
    }
}
