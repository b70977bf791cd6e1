@testable import LockInspector
import _TestSupport
import Foundation
import ImageLock
import XCTest

/// The lock dirs and image dirs, read without /proc (on their own threads in a scan).
final class DirectoriesTests: XCTestCase {
    func testLockDirsKeepOnlyLockFilesInPathOrder() throws {
        let dir = TempDir("lockdir")
        let names = [".qemu-ffff.lock", ".qemu-0a.lock", ".qemu-Z.lock", "other.lock", ".qemu-x", ".qemu-.lock"]
        for n in names { XCTAssertTrue(FileManager.default.createFile(atPath: dir.file(n), contents: Data())) }
        try FileManager.default.createSymbolicLink(atPath: dir.file(".qemu-link.lock"), withDestinationPath: "/etc/passwd")
        let missing = dir.file("gone")
        let read = LockDirectories.read(lockDirectories: [dir.path + "/", missing], leaseDirectories: [])
        XCTAssertEqual(read.lockFiles.map(\.path),
                       [".qemu-0a.lock", ".qemu-Z.lock", ".qemu-ffff.lock", ".qemu-link.lock"].map(dir.file))
        XCTAssertEqual(read.lockFiles.map(\.kind), [.regular, .regular, .regular, .symlink])
        for e in read.lockFiles where e.kind == .regular {
            var st = stat()
            XCTAssertEqual(lstat(e.path, &st), 0)
            XCTAssertEqual(e.inode, UInt64(st.st_ino))
        }
        XCTAssertEqual(read.unseen.map(\.what), ["lock dir \(missing)"])
    }

    func testImageDirsNameEachFileOnceWhateverTheListingOrder() throws {
        let dir = TempDir("imagedir")
        let a = dir.makeFile("b-name.img", size: 0)
        try FileManager.default.linkItem(atPath: a, toPath: dir.file("a-name.img"))
        try FileManager.default.createDirectory(atPath: dir.file("sub"), withIntermediateDirectories: false)
        let deep = dir.makeFile("sub/deep.qcow2", size: 0)
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.img"), withDestinationPath: deep)
        let found = ImageDirectories.read(imageDirectories: [dir.path], libvirtDirectories: [])
        let c = found.candidates
        // The hard link's two names: the first in byte order names the file.
        var st = stat()
        XCTAssertEqual(lstat(a, &st), 0)
        XCTAssertEqual(c.imageFile(FileKey(device: SystemReads.deviceID(UInt64(st.st_dev)), inode: UInt64(st.st_ino))), dir.file("a-name.img"))
        // Every file by the SHA-1 of its realpath, the link as its target.
        for p in [a, dir.file("a-name.img"), deep] {
            XCTAssertEqual(c.bySHA1[Digest.sha1(p)]?.path, p)
            XCTAssertEqual(c.bySHA1[Digest.sha1(p)]?.source, "images dir")
        }
        XCTAssertNil(c.bySHA1[Digest.sha1(dir.file("link.img"))])
        XCTAssertEqual(c.named, [a, dir.file("a-name.img"), deep])
        XCTAssertTrue(found.unseen.isEmpty)
    }

    func testOpenFilesComeFirstAndStayNamed() {
        var c = Scan.Candidates()
        c.add("/img/a", source: "images dir")
        c.add("/link/b", source: "libvirt", realPath: "/img/b")
        c.putFirst(openFiles: ["/img/a", "/img/open-only"])
        XCTAssertEqual(c.bySHA1[Digest.sha1("/img/a")]?.source, "open file")
        XCTAssertEqual(c.bySHA1[Digest.sha1("/img/b")]?.source, "libvirt")
        XCTAssertEqual(c.named, ["/img/a", "/img/b"])
        // Lease files are named by the SHA-256 of the path as written, and of the realpath.
        let bySHA256 = c.bySHA256()
        XCTAssertEqual(bySHA256[Digest.sha256Hex("/link/b")]?.path, "/link/b")
        XCTAssertEqual(bySHA256[Digest.sha256Hex("/img/b")]?.path, "/img/b")
        XCTAssertEqual(bySHA256[Digest.sha256Hex("/img/open-only")]?.source, "open file")
    }
}
