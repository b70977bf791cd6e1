import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `OpenedDirectory`: the walk that `audit --fix` opens lock dirs with follows a symbolic
/// link only where no user but root could have put or swapped it.
final class OpenedDirectoryTests: XCTestCase {
    func testFollowsOnlyLinksThatRootOwnsInADirOnlyRootMayWrite() throws {
        let tmp = TempDir("opened-dir")
        XCTAssertEqual(chmod(tmp.path, 0o755), 0)
        let target = tmp.file("target")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        XCTAssertTrue(FileManager.default.createFile(atPath: target + "/entry", contents: Data()))

        // root's link in root's 0755 dir (as /var/lock -> /run/lock): followed, relative or absolute.
        XCTAssertEqual(symlink("target", tmp.file("relative")), 0)
        XCTAssertEqual(symlink(target, tmp.file("absolute")), 0)
        for link in ["relative", "absolute"] {
            let d = try OpenedDirectory.open(tmp.file(link) + "/").get()
            XCTAssertEqual(d.status.inode, ProcLocks.inode(of: target))
            XCTAssertEqual(try d.entryStatus("entry").get().kind, .regular)
        }

        // nobody's link: refused.
        XCTAssertEqual(symlink(target, tmp.file("nobodys")), 0)
        XCTAssertEqual(lchown(tmp.file("nobodys"), 65534, 65534), 0)
        XCTAssertThrowsError(try OpenedDirectory.open(tmp.file("nobodys")).get()) { XCTAssertEqual(($0 as? Errno)?.code, ELOOP) }

        // root's link in a dir others may write (they could have swapped it in): refused.
        let open = tmp.file("open")
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
        XCTAssertEqual(chmod(open, 0o1777), 0)
        XCTAssertEqual(symlink(target, open + "/link"), 0)
        XCTAssertThrowsError(try OpenedDirectory.open(open + "/link/").get()) { XCTAssertEqual(($0 as? Errno)?.code, ELOOP) }

        // A file on the path: ENOTDIR.
        XCTAssertThrowsError(try OpenedDirectory.open(target + "/entry").get()) { XCTAssertEqual(($0 as? Errno)?.code, ENOTDIR) }
    }
}
