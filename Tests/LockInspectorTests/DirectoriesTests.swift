@testable import LockInspector
import _TestSupport
import Foundation
import ImageLock
import XCTest

/// The lock dirs and image dirs, read without /proc (on their own threads in a scan).
final class DirectoriesTests: XCTestCase {
    func testLockDirsKeepOnlyLockFilesInPathOrder() throws {
        let dir = TempDir("lockdir")
        let (f, a, z) = (String(repeating: "f", count: 40), "0a" + String(repeating: "0", count: 38), String(repeating: "9", count: 40))
        // The scheme's names are lock files; other `.qemu-*.lock` names are counted under
        // unseen with the reason (uppercase, too short); the rest is not looked at.
        let names = [".qemu-\(f).lock", ".qemu-\(a).lock", ".qemu-Z.lock", ".qemu-\(f.uppercased()).lock", "other.lock",
                     ".qemu-x", ".qemu-.lock"]
        for n in names { XCTAssertTrue(FileManager.default.createFile(atPath: dir.file(n), contents: Data())) }
        try FileManager.default.createSymbolicLink(atPath: dir.file(".qemu-\(z).lock"), withDestinationPath: "/etc/passwd")
        let missing = dir.file("gone")
        let read = LockDirectories.read(lockDirectories: [dir.path + "/", missing], leaseDirectories: [])
        XCTAssertEqual(read.lockFiles.map(\.path), [".qemu-\(a).lock", ".qemu-\(z).lock", ".qemu-\(f).lock"].map(dir.file))
        XCTAssertEqual(read.lockFiles.map(\.kind), [.regular, .symlink, .regular])
        for e in read.lockFiles where e.kind == .regular {
            var st = stat()
            XCTAssertEqual(lstat(e.path, &st), 0)
            XCTAssertEqual(e.inode, UInt64(st.st_ino))
        }
        XCTAssertEqual(read.unseen.map(\.what),
                       [".qemu-\(f.uppercased()).lock", ".qemu-Z.lock"].map { "lock dir entry " + dir.file($0) } + ["lock dir \(missing)"])
        XCTAssertTrue(read.unseen.dropLast().allSatisfy { $0.why.hasPrefix("not a lock file") })
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
        XCTAssertEqual(c.imageFile(FileKey(device: DeviceID(dev: UInt64(st.st_dev)), inode: UInt64(st.st_ino))), dir.file("a-name.img"))
        // Every file by the SHA-1 of its realpath, the link as its target.
        for p in [a, dir.file("a-name.img"), deep] {
            XCTAssertEqual(c.bySHA1[Digest.sha1(p)]?.path, p)
            XCTAssertEqual(c.bySHA1[Digest.sha1(p)]?.source, "images dir")
        }
        XCTAssertNil(c.bySHA1[Digest.sha1(dir.file("link.img"))])
        XCTAssertEqual(c.namedAsImages, [a, dir.file("a-name.img"), deep])
        XCTAssertTrue(found.unseen.isEmpty)
    }

    func testOpenFilesComeFirstAndStayNamed() {
        var c = Scan.Candidates()
        c.add("/img/a", source: "images dir")
        c.add("/link/b", source: "libvirt", realPath: "/img/b")
        c.putFirst(openFiles: ["/img/a", "/img/open-only"])
        XCTAssertEqual(c.bySHA1[Digest.sha1("/img/a")]?.source, "open file")
        XCTAssertEqual(c.bySHA1[Digest.sha1("/img/b")]?.source, "libvirt")
        XCTAssertEqual(c.namedAsImages, ["/img/a", "/img/b"])
        // Lease files are named by the SHA-256 of the path as written, and of the realpath.
        let bySHA256 = c.bySHA256()
        XCTAssertEqual(bySHA256[Digest.sha256Hex("/link/b")]?.path, "/link/b")
        XCTAssertEqual(bySHA256[Digest.sha256Hex("/img/b")]?.path, "/img/b")
        XCTAssertEqual(bySHA256[Digest.sha256Hex("/img/open-only")]?.source, "open file")
    }
}
