import Foundation
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

    /// A finding's process made from a holder or a writer carries its whole identity (pid,
    /// command, arguments, user, uid, start time), whatever fields the identity gains.
    func testProcessesMadeFromAHolderOrAWriterKeepTheirWholeIdentity() {
        let who = ProcessIdentity(pid: 42, command: "qemu-io", args: ["qemu-io", "-c", "sleep 1"], uid: 107,
                                  started: Date(timeIntervalSince1970: 1_700_000_000))
        var h = Holder(pid: 1, command: "x", scheme: .qemu, qemu: .readWrite)
        h.process = who
        XCTAssertEqual(InvolvedProcess(holder: h).process, who)
        XCTAssertEqual(h.pid, 42)
        XCTAssertEqual(who.userText, "107", "no user name: the uid")
        var w = ImageWriter(path: "/i/vm", pid: 1, fd: 3, command: "dd")
        w.user = "backup"
        XCTAssertEqual(w.process.user, "backup", "fields write through to the identity")
        XCTAssertEqual(InvolvedProcess(writer: w).process, w.process)
    }
}
