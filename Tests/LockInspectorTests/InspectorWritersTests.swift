import _TestSupport
import Foundation
import ImageLock
@testable import LockInspector
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

    /// A lock or lease file is no image, also where it lies under --images (so its path alone
    /// would make it a candidate): a write open of one is no writer; a disk beside it is.
    /// And the image-like names are told in any case, as a lowercased copy would tell them.
    func testLeaseAndLockFilesUnderImagesAreNoWriters() throws {
        let dir = TempDir("writers-lease")
        let images = dir.file("images"), leases = dir.file("images/leases")
        try FileManager.default.createDirectory(atPath: leases, withIntermediateDirectories: true)
        let lease = leases + "/" + String(repeating: "ab", count: 32)
        let disk = images + "/disk"
        XCTAssertTrue(FileManager.default.createFile(atPath: lease, contents: Data()))
        let script = "import sys, time\na = open(sys.argv[1], 'r+b')\nb = open(sys.argv[2], 'wb')\ntime.sleep(60)\n"
        let py = try Background(try Run.tool("python3"), ["-c", script, lease, disk])
        defer { py.stop() }
        py.waitForOpen(disk)
        var options = InspectorOptions(lockDirectories: [dir.path], imageDirectories: [images],
                                       libvirtDirectories: [], leaseDirectories: [leases])
        options.findWriters = true
        let snap = try Inspector(options).snapshot()
        XCTAssertEqual(snap.lockFiles.map(\.path), [lease])
        XCTAssertEqual(snap.writers.filter { $0.path.hasPrefix(dir.path) }.map(\.path), [disk])

        for name in ["a.QCOW2", "b.Img", "c.vmdk", "d.vmd\u{212A}", "e\u{600}.img", "f.img\u{301}", "g.qcow2.bak", "qcow2",
                     ".raw", "h.ISO", "i.cloop", "j.bochs", "k.Luks", "l.vhdx", "m.vhd", "n.txt", "", "o.qed"] {
            XCTAssertEqual(ImageNames.looksLikeImage("/x/" + name), ImageNames.suffixes.contains { ("/x/" + name).lowercased().hasSuffix($0) }, name)
        }
    }

    /// A write open of a file neither named nor placed like an image is a writer when the
    /// snapshot lists the file (by path or by inode) or --images names it, whether few such
    /// files are open (looked up through the images) or many (through tables of them).
    func testOpensOfListedFilesAreWritersAmongFewOrManyOtherOpens() throws {
        let dir = TempDir("writers-many")
        let listedPath = dir.file("disk-a"), byInode = dir.file("disk-b")
        let logs = (0..<12).map { dir.file("log-\($0)") }
        var fds: [String: Int32] = [:]
        for p in [listedPath, byInode] + logs {
            let fd = Glibc.open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
            XCTAssertGreaterThanOrEqual(fd, 0)
            fds[p] = fd
        }
        defer { fds.values.forEach { close($0) } }
        func writeOpen(_ p: String) -> WriteOpen {
            WriteOpen(pid: getpid(), fd: fds[p]!, link: p, flags: UInt32(O_WRONLY), inode: ProcLocks.inode(of: p))
        }
        // One image listed by its path, one by its inode only (the kernel named another path).
        let images = [ImageLocks(id: listedPath, path: listedPath, schemes: [.qemu]),
                      ImageLocks(id: "other", path: "/elsewhere/other", inode: ProcLocks.inode(of: byInode), schemes: [.qemu])]
        var o = InspectorOptions(lockDirectories: [dir.path], libvirtDirectories: [], leaseDirectories: [])
        o.findWriters = true
        for others in [[], logs] {
            var scan = Scan(options: o)
            let found = scan.imageWriters(others.map(writeOpen) + [writeOpen(listedPath), writeOpen(byInode)], images: images, lockFiles: [],
                                          candidates: nil, directories: nil)
            XCTAssertEqual(found.map(\.path), [listedPath, byInode], "\(others.count) other files open")
        }
    }
}

