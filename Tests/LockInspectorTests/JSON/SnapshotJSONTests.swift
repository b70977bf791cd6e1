import Foundation
import ImageLock
import LockInspector
import XCTest

/// `list --json`'s writer: the streamed pieces are the whole document, byte for byte, also
/// across the chunks rendered on separate cores.
final class SnapshotJSONTests: XCTestCase {
    func snapshot(images n: Int) -> Snapshot {
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        var images: [ImageLocks] = []
        var lockFiles: [LockFileEntry] = []
        for i in 0..<n {
            let path = "/vm/disk \"\(i)\"\\\t.qcow2"
            let lock = "/var/tmp/.qemu-\(i).lock"
            var image = ImageLocks(id: path, path: path, schemes: [.lockfile], lockFiles: [lock])
            if i % 3 == 0 {
                image.holders = [Holder(pid: Int32(100 + i), command: "qemu-io", args: ["qemu-io", "-r", path], user: "root",
                                        uid: 0, started: t0, fd: 4, openMode: .readOnly, scheme: .lockfile, lockType: .read)]
                image.locks = [KernelLock(id: i, kind: .ofd, mode: "ADVISORY", type: "READ", pid: nil,
                                          device: DeviceID(major: 254, minor: 1), inode: UInt64(i), start: 0, end: nil)]
            }
            images.append(image)
            lockFiles.append(LockFileEntry(path: lock, kind: .regular, device: DeviceID(major: 254, minor: 1),
                                           inode: UInt64(i), held: i % 3 == 0))
        }
        return Snapshot(host: "h\u{1}", generated: t0, images: images, lockFiles: lockFiles,
                        unseen: [Unseen(what: "open files of pid 7", why: "Permission denied")])
    }

    func testStreamedPiecesAreTheWholeDocument() throws {
        for n in [0, 1, 4096, 9000] {
            let s = snapshot(images: n)
            let whole = SnapshotJSON.render(s)
            var pieces: [[UInt8]] = []
            SnapshotJSON.render(s, sink: { pieces.append(Array($0)) })
            XCTAssertEqual(Array(pieces.joined()), whole, "n = \(n)")
            XCTAssertFalse(pieces.contains { $0.isEmpty })
            let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(whole)) as? [String: Any])
            let images = try XCTUnwrap(doc["images"] as? [[String: Any]])
            XCTAssertEqual(images.count, n)
            XCTAssertEqual((doc["lock_files"] as? [Any])?.count, n)
            XCTAssertEqual(doc["host"] as? String, "h\u{1}")
            if n > 4096 {
                // Past the first chunk: the element and its neighbours are intact.
                XCTAssertEqual(images[4096]["path"] as? String, "/vm/disk \"4096\"\\\t.qcow2")
                XCTAssertEqual((images[4096]["holders"] as? [Any])?.count, 0)
                XCTAssertEqual((images[4095 + 3]["holders"] as? [[String: Any]])?.first?["pid"] as? Int, 100 + 4098)
            }
        }
    }

    /// The writer grows its buffer as it goes and nests to the depth it was given.
    /// The dates' text is FormatStyle's `.iso8601`, written without it: the same bytes for
    /// whole and fractional seconds (cut, not rounded), leap days and the present.
    func testDatesAreWrittenAsISO8601FormatStyleWritesThem() {
        for t: TimeInterval in [0, 1, 59.999, 951_782_400, 951_868_799.9, 1_764_581_427, 1_764_581_427.5,
                                1_764_581_427.999_999, 4_102_444_799, Date().timeIntervalSince1970] {
            let d = Date(timeIntervalSince1970: t)
            XCTAssertEqual(SnapshotJSON.iso8601(d), d.formatted(.iso8601), "\(t)")
        }
    }

    func testWriterGrowsAndNests() throws {
        var w = JSONWriter(capacity: 1)
        w.beginArray()
        for i in 0..<2000 {
            w.beginObject()
            w.key("i")
            w.int(i)
            w.key("deep")
            w.beginArray()
            w.beginArray()
            w.null()
            w.bool(i % 2 == 0)
            w.endArray()
            w.string(String(repeating: "é\"", count: i % 7))
            w.endArray()
            w.endObject()
        }
        w.endArray()
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(w.bytes)) as? [[String: Any]])
        XCTAssertEqual(doc.count, 2000)
        XCTAssertEqual(doc[1999]["i"] as? Int, 1999)
        let deep = try XCTUnwrap(doc[6]["deep"] as? [Any])
        XCTAssertEqual((deep[0] as? [Any])?.count, 2)
        XCTAssertEqual(deep[1] as? String, String(repeating: "é\"", count: 6))
    }

    /// Strings escaped eight bytes at a time write what JSONEncoder writes, whatever falls
    /// on which side of an eight-byte boundary.
    func testStringsAreWrittenAsJSONEncoderWritesThem() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let pieces = ["a", "/", "\"", "\\", "\n", "\t", "\u{1}", "\u{1f}", " ", "~", "\u{7f}", "é", "€", "𝄞", "0123456"]
        var rng = SystemRandomNumberGenerator()
        for n in 0..<400 {
            let text = (0..<(n % 40)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            var w = JSONWriter(capacity: 16)
            w.string(text)
            XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), String(decoding: try encoder.encode(text), as: UTF8.self),
                           "\(Array(text.utf8))")
        }
    }

    /// Numbers as JSONEncoder writes them (a whole number without `.0`), so a field written
    /// by hand in one report reads the same as it did through the encoder.
    func testDoublesAreWrittenAsJSONEncoderWritesThem() throws {
        for d in [0, 30, 12.5, 0.1, 1234.5, -3, 1e20, 2.5e-7, 86400.1] as [Double] {
            var w = JSONWriter(capacity: 16)
            w.double(d)
            XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), String(decoding: try JSONEncoder().encode(d), as: UTF8.self), "\(d)")
        }
    }

    func testEscapesAreJSONEncodersOwn() throws {
        let s = snapshot(images: 1)
        let text = String(decoding: SnapshotJSON.render(s), as: UTF8.self)
        XCTAssertTrue(text.contains(#""host":"h\u0001""#), text)
        XCTAssertTrue(text.contains(#""path":"/vm/disk \"0\"\\\t.qcow2""#), text)
    }
}
