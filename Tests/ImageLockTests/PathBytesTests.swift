@testable import ImageLock
import _TestSupport
import Foundation
import XCTest

/// Paths as bytes: the carrier strings round-trip every byte string, and the lock file's
/// name is the SHA-1 of the raw bytes.
final class PathBytesTests: XCTestCase {
    /// Byte strings that are not UTF-8, or are UTF-8 holding the carrier characters
    /// themselves, or are plain: each comes back exactly.
    func testCarrierRoundTripsEveryKindOfName() {
        let cases: [[UInt8]] = [
            Array("plain/ascii.qcow2".utf8),
            Array("/images/vm\u{e9}\u{301}-\u{4e2d}.raw".utf8),
            [0x2F, 0x61, 0xFF, 0x62],  // a lone 0xff
            [0x2F, 0xC3],  // a cut-short sequence at the end
            [0xE0, 0x80, 0x80],  // overlong
            [0xED, 0xA0, 0x80],  // a UTF-16 surrogate in UTF-8
            [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
            Array("x\u{10FE80}y\u{10FEFF}".utf8),  // valid UTF-8 of carrier characters
            [0xF4, 0x8F, 0xBA],  // a carrier character cut short
            [0x9B, 0x32, 0x4A, 0x1B, 0x5B],  // 8-bit CSI, then ESC [
        ]
        var seen = Set<String>()
        for bytes in cases {
            let s = PathBytes.string(bytes)
            XCTAssertEqual(PathBytes.bytes(s), bytes, "\(bytes)")
            XCTAssertEqual(PathBytes(s).bytes, bytes)
            XCTAssertEqual(PathBytes.isValidUTF8(bytes), String(validating: bytes, as: UTF8.self) != nil, "\(bytes)")
            XCTAssertEqual(PathBytes.hexIfNotUTF8(s) != nil, !PathBytes.isValidUTF8(bytes), "\(bytes)")
            XCTAssertTrue(seen.insert(s).inserted, "two byte strings, one carrier: \(bytes)")
            PathBytes.withCString(s) { p in XCTAssertEqual(Array(UnsafeRawBufferPointer(start: p, count: strlen(p))), bytes) }
        }
        // Names that differ only in their invalid bytes stay apart (the lossy text collides).
        let a = PathBytes.string([0x61, 0xFE]), b = PathBytes.string([0x61, 0xFF])
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(PathBytes.lossy(a), PathBytes.lossy(b))
        XCTAssertEqual(PathBytes.hexIfNotUTF8(a), "61fe")
        XCTAssertEqual(PathBytes.hexIfNotUTF8(b), "61ff")
    }

    /// The lock file is named by the SHA-1 of the realpath's bytes, as `sha1sum` computes it.
    func testLockFileNameHashesTheRawBytes() throws {
        let bytes: [UInt8] = Array("/tmp/img".utf8) + [0xFF, 0xFE] + Array(".raw".utf8)
        let name = ImageLocker.lockFileName(realPath: PathBytes.string(bytes))
        let hex = bytes.map { String(format: "\\%03o", $0) }.joined()
        let r = try Run.capture("/bin/sh", ["-c", "printf '\(hex)' | sha1sum"])
        XCTAssertEqual(name, ".qemu-\(r.stdout.prefix(40)).lock")
    }

    /// The core finds an image named by bytes that are not UTF-8, and locks its lock file
    /// under the raw bytes' SHA-1, with those bytes written inside.
    func testLockerTakesTheLockOfANonUTF8Name() throws {
        let dir = TempDir("bytes")
        let name = PathBytes.string(Array((dir.path + "/vm").utf8) + [0xFF] + Array(".raw".utf8))
        let fd = PathBytes.withCString(name) { open($0, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let held) = try locker.acquire(name, scheme: .lockfile, mode: .exclusive) else {
            return XCTFail("not acquired")
        }
        defer { held.release() }
        XCTAssertEqual(held.image, name)
        let lockFile = try XCTUnwrap(held.lockFile)
        XCTAssertEqual(lockFile, dir.path + "/" + ImageLocker.lockFileName(realPath: name))
        let content = try Data(contentsOf: URL(fileURLWithPath: lockFile))
        XCTAssertEqual(Array(content), PathBytes.bytes(name) + [10])
    }

    /// NFC and NFD twins are equal strings to Swift, and two keys by their bytes.
    func testPathKeyComparesBytes() {
        let nfc = "/img/vm-\u{E9}.raw", nfd = "/img/vm-e\u{301}.raw"
        XCTAssertEqual(nfc, nfd, "Swift's == is canonical equivalence")
        XCTAssertNotEqual(PathKey(nfc), PathKey(nfd))
        XCTAssertEqual(Set([PathKey(nfc), PathKey(nfd), PathKey(nfc)]).count, 2)
        XCTAssertEqual(PathKey(nfc), PathKey(String(decoding: Array(nfc.utf8), as: UTF8.self)), "the same bytes, another string")
        // Canonically equal, as many bytes, other bytes: combining marks in either order.
        let ab = "x\u{301}\u{323}", ba = "x\u{323}\u{301}"
        XCTAssertEqual(ab, ba)
        XCTAssertEqual(ab.utf8.count, ba.utf8.count)
        XCTAssertFalse(PathBytes.sameBytes(ab, ba))
        XCTAssertNotEqual(PathKey(ab), PathKey(ba))
        var d: [PathKey: Int] = [:]
        d[PathKey(nfc)] = 1
        d[PathKey(nfd)] = 2
        XCTAssertEqual(d[PathKey(nfc)], 1)
        XCTAssertEqual(d[PathKey(nfd)], 2)
    }
}
