import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// `ScanRequest`: the scan options as plain values, this host's `InspectorOptions` and the
/// arguments forwarded to another host's `list`.
final class ScanRequestTests: XCTestCase {
    func testDefaultsForwardNothingAndMeanTheDefaultLockDir() {
        let r = ScanRequest()
        XCTAssertEqual(r.forwarded, [])
        let o = r.inspectorOptions(statedumpByDefault: false)
        XCTAssertEqual(o.lockDirectories, InspectorOptions.defaultLockDirectories)
        XCTAssertEqual(o.procRoot, "/proc")
        XCTAssertFalse(o.fuseStatedump)
        XCTAssertTrue(r.inspectorOptions(statedumpByDefault: true).fuseStatedump, "list takes a statedump by default")
    }

    func testEveryOptionIsForwardedInOrder() {
        var r = ScanRequest(lockDirectories: ["/l1", "/l2"], imageDirectories: ["/i"], procRoot: "/p")
        r.glusterVolumes = ["srv:24007/vol"]
        r.glusterPath = "/d"
        r.allFiles = true
        r.timeout = 2.5
        r.force = true
        r.noStatedump = true
        XCTAssertEqual(r.forwarded, ["--lock-dir", "/l1", "--lock-dir", "/l2", "--images", "/i", "--proc", "/p",
                                     "--gluster", "srv:24007/vol", "--gluster-path", "/d", "--all-files", "--timeout", "2.5",
                                     "--force", "--no-statedump"])
        let o = r.inspectorOptions(statedumpByDefault: true)
        XCTAssertEqual(o.lockDirectories, ["/l1", "/l2"])
        XCTAssertFalse(o.fuseStatedump, "--no-statedump")
        XCTAssertEqual(o.glusterVolumes.count, 1)
        XCTAssertEqual(o.glusterVolumes.first?.statedump, true, "--force takes one all the same")
        XCTAssertEqual(o.glusterVolumes.first?.allFiles, true)
        XCTAssertEqual(o.glusterVolumes.first?.timeout, 2.5)
    }

    func testWhyOfAGlusterImageScansItsDirectoryOnItsVolume() {
        let local = ScanRequest.why(image: "/var/lib/a.qcow2", lockDirectories: ["/l"], timeout: 3)
        XCTAssertEqual(local.forwarded, ["--lock-dir", "/l", "--timeout", "3.0"])
        let remote = ScanRequest.why(image: "gluster://srv/vol/dir/sub/a.qcow2", lockDirectories: ["/l"],
                                     timeout: ScanRequest.defaultGlusterTimeout)
        XCTAssertEqual(remote.forwarded, ["--lock-dir", "/l", "--gluster", "srv/vol", "--gluster-path", "/dir/sub", "--all-files"])
    }
}
