import ImageLock
import XCTest

final class KernelLockParsingTests: XCTestCase {
    func testParsesOFDLine() throws {
        let l = try XCTUnwrap(KernelLock(line: "4: OFDLCK ADVISORY  READ -1 fe:00:16220323 100 101"))
        XCTAssertEqual(l.id, 4)
        XCTAssertEqual(l.kind, .ofd)
        XCTAssertEqual(l.mode, "ADVISORY")
        XCTAssertEqual(l.type, "READ")
        XCTAssertNil(l.pid)
        XCTAssertEqual(l.device, DeviceID(major: 0xfe, minor: 0))
        XCTAssertEqual(l.inode, 16220323)
        XCTAssertEqual(l.start, 100)
        XCTAssertEqual(l.end, 101)
        XCTAssertTrue(l.isOFD)
        XCTAssertFalse(l.isWaiter)
    }

    func testParsesPosixToEOFAndWaiter() throws {
        let held = try XCTUnwrap(KernelLock(line: "2: POSIX  ADVISORY  WRITE 3808 08:1a:16220480 0 EOF"))
        XCTAssertEqual(held.pid, 3808)
        XCTAssertNil(held.end)
        XCTAssertEqual(held.device?.description, "08:1a")
        let waiter = try XCTUnwrap(KernelLock(line: "2: -> POSIX  ADVISORY  WRITE 3900 08:1a:16220480 0 EOF"))
        XCTAssertEqual(waiter.blockedBy, 2)
        XCTAssertTrue(waiter.isWaiter)
        XCTAssertEqual(waiter.pid, 3900)
    }

    func testParsesFlockLeaseAndNoInode() throws {
        let f = try XCTUnwrap(KernelLock(line: "7: FLOCK  ADVISORY  WRITE 812 00:1b:1234 0 EOF"))
        XCTAssertEqual(f.kind, .flock)
        let lease = try XCTUnwrap(KernelLock(line: "9: LEASE  BREAKING  READ  1201 fd:01:99 0 EOF"))
        XCTAssertEqual(lease.mode, "BREAKING")
        let none = try XCTUnwrap(KernelLock(line: "3: POSIX  ADVISORY  READ 55 <none>:0 0 EOF"))
        XCTAssertNil(none.inode)
        XCTAssertNil(none.device)
    }

    func testRejectsMalformedLines() {
        for bad in ["", "garbage", "1: POSIX", "x: POSIX ADVISORY READ 1 fe:00:1 0 EOF",
                    "1: POSIX ADVISORY READ 1 fe:00:1 zero EOF", "1: POSIX ADVISORY READ 1 fe00:1 0 EOF",
                    "1: POSIX ADVISORY READ abc fe:00:1 0 EOF"] {
            XCTAssertNil(KernelLock(line: Substring(bad)), bad)
        }
    }

    func testParsesFDInfo() throws {
        let text = """
            pos:\t0
            flags:\t02100002
            mnt_id:\t29
            ino:\t16220323
            lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:16220323 100 100
            lock:\t2: OFDLCK ADVISORY  READ -1 fe:00:16220323 201 201

            """
        let info = try XCTUnwrap(FDInfo(text: Substring(text)))
        XCTAssertEqual(info.openMode, .readWrite)
        XCTAssertEqual(info.inode, 16220323)
        XCTAssertEqual(info.mountID, 29)
        XCTAssertEqual(info.locks.map(\.start), [100, 201])
        XCTAssertEqual(OpenMode(flags: 0o100000), .readOnly)
        XCTAssertEqual(OpenMode(flags: 0o1), .writeOnly)
    }

    func testQemuPermissionDecoding() {
        // What qemu-nbd (read-write) holds, with the kernel's merge of 100 and 101.
        let rw = QemuPermissions(lockedRanges: [(100, 101), (103, 103), (201, 201), (203, 203)])
        XCTAssertEqual(rw, .readWrite)
        let ro = QemuPermissions(lockedRanges: [(100, 100), (201, 201), (203, 203)])
        XCTAssertEqual(ro, .readOnly)
        XCTAssertEqual(QemuPermissions.readWrite.bytes, [100, 101, 103, 201, 203])
        XCTAssertEqual(QemuPermissions.readOnly.bytes, [100, 201, 203])
        func lock(_ type: String, _ start: Int64, _ end: Int64?) -> KernelLock {
            KernelLock(id: 1, kind: .ofd, mode: "ADVISORY", type: type, pid: nil, device: nil, inode: 1, start: start, end: end)
        }
        XCTAssertTrue(lock("READ", 100, 100).isQemuByteLock)
        XCTAssertTrue(lock("READ", 204, 204).isQemuByteLock)
        XCTAssertTrue(lock("READ", 200, 204).isQemuByteLock)
        XCTAssertFalse(lock("READ", 0, nil).isQemuByteLock, "a whole-file lock is not QEMU's")
        XCTAssertFalse(lock("READ", 0, 0).isQemuByteLock)
        XCTAssertFalse(lock("READ", 99, 100).isQemuByteLock)
        XCTAssertFalse(lock("WRITE", 100, 100).isQemuByteLock, "QEMU's byte locks are shared")
    }

    func testQemuCheckOrderAndMessages() {
        let checks = QemuConflict.checks(for: .readWrite)
        XCTAssertEqual(checks.map(\.byte), [200, 201, 203, 101, 103])
        XCTAssertEqual(checks[1].message, "Failed to get \"write\" lock")
        XCTAssertEqual(checks[3].message, "Failed to get shared \"write\" lock")
    }

    func testDigests() {
        XCTAssertEqual(Digest.sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(Digest.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // FIPS 180 vectors across block boundaries (the digests run SHA*_Init/Update/Final).
        XCTAssertEqual(Digest.sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(Digest.sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        XCTAssertEqual(Digest.sha1Hex(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        XCTAssertEqual(Digest.sha256Hex(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(Digest.sha1Hex(million), "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        XCTAssertEqual(Digest.sha256Hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        XCTAssertEqual(Digest.sha1(two), SHA1Digest(hex: "84983e441c3bd26ebaae4aa1f95129e5e54670f1"))
    }

    /// `position` (what the TUI's change check reads at every tick) agrees with `parse` on
    /// the inode and range of every line, and refuses what `parse` refuses.
    func testPositionAgreesWithParse() {
        let lines = [
            "1: OFDLCK ADVISORY  READ -1 fe:00:5000 100 101",
            "2: POSIX  ADVISORY  WRITE 300 fd:01:42 0 EOF",
            "2: -> POSIX  ADVISORY  WRITE 500 fd:01:42 0 EOF",
            "3: FLOCK  ADVISORY  WRITE 600 <none>:0 0 EOF",
            "4: LEASE  ACTIVE    READ 601 00:05:1234 0 EOF",
            "5: POSIX  ADVISORY  WRITE 300 fd:01:42 0 notanumber",
            "this is not a lock",
        ]
        for line in lines {
            var text = line
            let (parsed, position) = text.withUTF8 { (KernelLock.parse($0), KernelLock.position($0)) }
            XCTAssertEqual(position?.inode, parsed?.inode, line)
            XCTAssertEqual(position?.start, parsed?.start, line)
            XCTAssertEqual(position?.end, parsed?.end, line)
            XCTAssertEqual(position == nil, parsed == nil, line)
        }
    }
}
