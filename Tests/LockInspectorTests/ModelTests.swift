import ImageLock
import LockInspector
import XCTest

final class ModelTests: XCTestCase {
    func testModeSummary() {
        XCTAssertEqual(Holder(pid: 1, command: "q", scheme: .qemu, qemu: .readWrite).modeSummary, "rw")
        XCTAssertEqual(Holder(pid: 1, command: "q", scheme: .qemu, qemu: .readOnly).modeSummary, "ro")
        XCTAssertEqual(Holder(pid: 1, command: "h", scheme: .lockfile, lockType: .write).modeSummary, "write")
        XCTAssertEqual(Holder(pid: 1, command: "h", scheme: .lockfile, lockType: .read).modeSummary, "read")
    }
}
