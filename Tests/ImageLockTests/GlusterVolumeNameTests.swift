import ImageLock
import XCTest

/// `--gluster HOST[:PORT]/VOLUME` as `GlusterURL(parsingVolume:)` reads it.
final class GlusterVolumeNameTests: XCTestCase {
    func testVolumeNames() throws {
        let plain = try GlusterURL(parsingVolume: "gl1/vmstore")
        XCTAssertEqual(plain, GlusterURL(host: "gl1", volume: "vmstore", path: "/"))
        XCTAssertEqual(plain.volumeName, "gl1/vmstore")
        XCTAssertEqual(try GlusterURL(parsingVolume: "gluster://gl1:24008/vmstore/").volumeName, "gl1:24008/vmstore")
        let v6 = try GlusterURL(parsingVolume: "[fd00::1]:24007/vmstore")
        XCTAssertEqual(v6.host, "fd00::1")
        XCTAssertEqual(v6.volumeName, "[fd00::1]/vmstore")
        XCTAssertEqual(plain.file("/a/b.qcow2").description, "gluster://gl1/vmstore/a/b.qcow2")
    }

    func testMalformedVolumeNames() {
        for bad in ["gl1", "gl1/", "/vmstore", "gl1:0/vmstore", "gl1/vmstore/dir", "gluster+rdma://gl1/vmstore"] {
            XCTAssertThrowsError(try GlusterURL(parsingVolume: bad), bad) { e in
                guard case ImageLockError.invalidGlusterURL = e else { return XCTFail("\(bad): \(e)") }
            }
        }
    }
}
