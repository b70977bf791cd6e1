import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI

import XCTest

/// libvirt's disk targets in the TUI: the DISK column after VM, and the detail pane.
final class LibvirtRowsTests: XCTestCase {
    func testDiskColumnAndDetailWhenLibvirtNamesTheDisk() {
        var qemu = Holder(pid: 4242, command: "qemu-system-x86", vm: "web01", scheme: .qemu, qemu: .readWrite)
        let image = ImageLocks(id: "/img/web01.qcow2", path: "/img/web01.qcow2", schemes: [.qemu], holders: [qemu])
        XCTAssertFalse(Column.defaults(for: [LockRow(image: image, holder: qemu)]).contains(.disk),
                       "no libvirt disk: the usual columns")
        qemu.diskTarget = "vda"
        let row = LockRow(image: image, holder: qemu)
        let cols = Column.defaults(for: [row])
        XCTAssertEqual(cols.firstIndex(of: .disk), cols.firstIndex(of: .vm).map { $0 + 1 }, "\(cols)")
        XCTAssertEqual(Column.disk.cell(row), "vda")
        let line = DetailText.holderLines(qemu, selected: false, waiting: false, now: Date()).first ?? []
        XCTAssertTrue(line.map(\.text).joined().contains("VM web01 disk vda"), "\(line)")
    }
}
