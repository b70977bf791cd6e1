import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// `Snapshot.writers`: write-mode opens of candidate images, from the one /proc pass.
final class InspectorWritersTests: XCTestCase {
    func testWritersAreWriteOpensOfCandidateImagesOnly() throws {
        let dir = TempDir("writers")
        let images = dir.file("images")
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: false)
        let qcow = try Qemu.createImage(dir.file("vm.qcow2"))
        let writer = try Qemu.unlockedWriter(qcow)
        defer { writer.stop() }
        let base = try Qemu.createImage(dir.file("base.qcow2"))
        let reader = try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 60000", base])
        defer { reader.stop() }
        reader.waitForLocks(on: base, count: 3)
        // No image suffix, but under --images; and a log file beside it that is no image.
        let plain = images + "/disk"
        let log = dir.file("notes.log")
        let script = "import sys, time\na = open(sys.argv[1], 'wb')\nb = open(sys.argv[2], 'ab')\ntime.sleep(60)\n"
        let py = try Background(try Run.tool("python3"), ["-c", script, plain, log])
        defer { py.stop() }
        py.waitForOpen(log)

        var options = InspectorOptions(lockDirectories: [dir.path], imageDirectories: [images],
                                       libvirtDirectories: [], leaseDirectories: [])
        options.findWriters = true
        let snap = try Inspector(options).snapshot()
        let mine = snap.writers.filter { $0.path.hasPrefix(dir.path) }
        XCTAssertEqual(mine.map(\.path), [plain, qcow], "\(mine)")
        let w = try XCTUnwrap(mine.first { $0.path == qcow })
        XCTAssertEqual(w.pid, writer.pid)
        XCTAssertEqual(w.openMode, .readWrite)
        XCTAssertEqual(w.command, "qemu-io")
        XCTAssertEqual(w.inode, ProcLocks.inode(of: qcow))
        XCTAssertEqual(mine.first { $0.path == plain }?.openMode, .writeOnly)
        XCTAssertEqual(mine.first { $0.path == plain }?.pid, py.pid)
    }
}
