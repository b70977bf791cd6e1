import _TestSupport
import Foundation
import ImageLock
import XCTest

/// Issue 15, item 7: paths are bytes. Names with bytes that are not UTF-8 (0xff) are
/// found, hashed, locked, diagnosed and written to JSON exactly.
final class NonUTF8PathTests: XCTestCase {
    /// `dir/<prefix>\xff<suffix>` as a carrier string (`PathBytes`).
    func name(_ dir: TempDir, _ prefix: String, _ bytes: [UInt8] = [0xFF], _ suffix: String = ".raw") -> String {
        PathBytes.string(Array((dir.path + "/" + prefix).utf8) + bytes + Array(suffix.utf8))
    }

    func sha1sum(_ bytes: [UInt8]) throws -> String {
        let octal = bytes.map { String(format: "\\%03o", $0) }.joined()
        let r = try Run.capture("/bin/sh", ["-c", "printf '\(octal)' | sha1sum"])
        return String(r.stdout.prefix(40))
    }

    func testPathHashesTheRawBytes() throws {
        let dir = TempDir("bytes")
        let image = name(dir, "img")
        XCTAssertTrue(Hostile.makeFile(image))
        let r = try Run.locksmithRaw(["path", "--lock-dir", dir.path, image])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.out, "\(dir.path)/.qemu-\(try sha1sum(PathBytes.bytes(image))).lock\n")
    }

    /// `hold` takes the lock of the 0xff name; `list --json` names the image with
    /// `path_bytes` that decode to its exact bytes; a second name that differs only in its
    /// invalid byte is another image, not a collision.
    func testHoldAndListJSONKeepTheBytes() throws {
        let dir = TempDir("bytes")
        let a = name(dir, "vm", [0xFF]), b = name(dir, "vm", [0xFE])
        XCTAssertTrue(Hostile.makeFile(a))
        XCTAssertTrue(Hostile.makeFile(b))
        let locker = ImageLocker(lockDirectory: dir.path)
        let holders = try [a, b].map { try RawBackground(Run.locksmith, ["hold", "--lock-dir", dir.path, $0, "--", "sleep", "60"]) }
        defer { holders.forEach { $0.stop() } }
        for (h, img) in zip(holders, [a, b]) { h.waitForLock(on: locker.lockFilePath(realPath: img)) }

        let r = try Run.locksmithRaw(["list", "--json", "--lock-dir", dir.path])
        XCTAssertEqual(r.status, 0, "\(r)")
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any])
        let images = try XCTUnwrap(top["images"] as? [[String: Any]])
        func hexBytes(_ hex: String) -> [UInt8] {
            var out: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex {
                let j = hex.index(i, offsetBy: 2)
                out.append(UInt8(hex[i..<j], radix: 16)!)
                i = j
            }
            return out
        }
        for (h, img) in zip(holders, [a, b]) {
            let mine = images.filter { ($0["path_bytes"] as? String).map(hexBytes) == PathBytes.bytes(img) }
            XCTAssertEqual(mine.count, 1, "\(PathBytes(img).hex) not listed once: \(images.map { ($0["path"], $0["path_bytes"]) })")
            XCTAssertEqual(mine.first?["path"] as? String, PathBytes.lossy(img))
            let pids = (mine.first?["holders"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
            XCTAssertEqual(pids, [h.pid])
            let lockFile = locker.lockFilePath(realPath: img)
            XCTAssertEqual(mine.first?["lock_files"] as? [String], [lockFile])
        }
        let files = try XCTUnwrap(top["lock_files"] as? [[String: Any]])
        for img in [a, b] {
            let f = files.first { $0["path"] as? String == locker.lockFilePath(realPath: img) }
            XCTAssertEqual((f?["image_bytes"] as? String).map(hexBytes), PathBytes.bytes(img), "\(String(describing: f))")
            XCTAssertEqual(f?["mapped_by"] as? String, "content")
        }
        // audit finds both images (a lossy path would make them "no longer exist").
        let audit = try Run.locksmithRaw(["audit", "--lock-dir", dir.path])
        XCTAssertNotEqual(audit.status, 2, "\(audit)")
        XCTAssertFalse(audit.out.contains("no longer exists"), "\(audit)")
        // And a held one is busy for `try`, under the same lock file.
        let t = try Run.locksmithRaw(["try", "--json", "--lock-dir", dir.path, a])
        XCTAssertEqual(t.status, 1, "\(t)")
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(t.stdout)) as? [String: Any])
        XCTAssertEqual((report["image_bytes"] as? String).map(hexBytes), PathBytes.bytes(a))
        XCTAssertEqual(report["lock_file"] as? String, locker.lockFilePath(realPath: a))
    }

    /// Two names that Unicode calls equal but whose bytes differ (é as one code point, NFC,
    /// and as e and a combining accent, NFD) are two files: two images, each with its own lock
    /// file and holder, in `list`; `why` of one names only its own holder. (Swift compares
    /// strings by canonical equivalence: paths are compared by their bytes.)
    func testNFCAndNFDTwinsAreTwoImages() throws {
        let dir = TempDir("twins")
        let a = dir.path + "/vm-\u{E9}.raw", b = dir.path + "/vm-e\u{301}.raw"
        XCTAssertNotEqual(Array(a.utf8), Array(b.utf8))
        XCTAssertTrue(Hostile.makeFile(a))
        XCTAssertTrue(Hostile.makeFile(b))
        let locker = ImageLocker(lockDirectory: dir.path)
        XCTAssertNotEqual(locker.lockFilePath(realPath: a), locker.lockFilePath(realPath: b))
        let holders = try [a, b].map { try RawBackground(Run.locksmith, ["hold", "--lock-dir", dir.path, $0, "--", "sleep", "60"]) }
        defer { holders.forEach { $0.stop() } }
        for (h, img) in zip(holders, [a, b]) { h.waitForLock(on: locker.lockFilePath(realPath: img)) }

        let r = try Run.locksmithRaw(["list", "--json", "--lock-dir", dir.path, "--images", dir.path])
        XCTAssertEqual(r.status, 0, "\(r)")
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any])
        let images = try XCTUnwrap(top["images"] as? [[String: Any]])
        XCTAssertEqual(images.count, 2, "\(images)")
        for (h, img) in zip(holders, [a, b]) {
            let mine = images.filter { ($0["path"] as? String).map { Array($0.utf8) } == Array(img.utf8) }
            XCTAssertEqual(mine.count, 1, "\(img.utf8.map { $0 }) not listed once: \(images)")
            let pids = (mine.first?["holders"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
            XCTAssertEqual(pids, [h.pid], "\(images)")
            XCTAssertEqual(mine.first?["lock_files"] as? [String], [locker.lockFilePath(realPath: img)])

            let w = try Run.locksmithRaw(["why", "--json", "--lock-dir", dir.path, img])
            XCTAssertEqual(w.status, 1, "\(w)")
            let v = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(w.stdout)) as? [String: Any], "\(w)")
            let blockers = (v["blockers"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
            XCTAssertEqual(blockers, [h.pid], "\(v)")
        }
        // Nor does the audit take the two for one image written by two processes.
        let audit = try Run.locksmithRaw(["audit", "--json", "--lock-dir", dir.path, "--images", dir.path])
        XCTAssertNotEqual(audit.status, 2, "\(audit)")
        let findings = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(audit.stdout)) as? [String: Any])["findings"] as? [[String: Any]]
        XCTAssertEqual(findings?.compactMap { $0["rule"] as? String }.filter { $0 != "stale-lock-file" && $0 != "unsafe-lock-file" } ?? [], [],
                       "\(String(describing: findings))")
    }

    /// The audit stats each twin: a lock file naming the NFD twin, which is gone, is the one
    /// that names a missing image, not the lock file of the NFC twin, which is there and held.
    func testAuditTellsTwinsApart() throws {
        let dir = TempDir("twins")
        let a = dir.path + "/vm-\u{E9}.raw", b = dir.path + "/vm-e\u{301}.raw"
        XCTAssertTrue(Hostile.makeFile(a))
        XCTAssertTrue(Hostile.makeFile(b))
        let locker = ImageLocker(lockDirectory: dir.path)
        // b's lock file is made (with b's path inside) and left; then b goes.
        let once = try Run.locksmithRaw(["hold", "--lock-dir", dir.path, b, "--", "true"])
        XCTAssertEqual(once.status, 0, "\(once)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: locker.lockFilePath(realPath: b)))
        XCTAssertEqual(unlink(b), 0)
        let holder = try RawBackground(Run.locksmith, ["hold", "--lock-dir", dir.path, a, "--", "sleep", "60"])
        defer { holder.stop() }
        holder.waitForLock(on: locker.lockFilePath(realPath: a))

        let audit = try Run.locksmithRaw(["audit", "--json", "--lock-dir", dir.path])
        XCTAssertNotEqual(audit.status, 2, "\(audit)")
        let findings = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(audit.stdout)) as? [String: Any])["findings"] as? [[String: Any]]
        let gone = (findings ?? []).filter { $0["rule"] as? String == "unmapped-lock-file" }
        XCTAssertEqual(gone.count, 1, "\(String(describing: findings))")
        XCTAssertEqual(gone.first?["files"] as? [String], [locker.lockFilePath(realPath: b)], "\(gone)")
    }

    /// An overlay whose backing file is its name's NFD twin (another file) is a chain of
    /// two, not a loop: `why` agrees with qemu-io that it opens.
    func testABackingFileNamedAsItsOverlaysTwinIsNoLoop() throws {
        let qemuIO = try Run.tool("qemu-io")
        let qemuImg = try Run.tool("qemu-img")
        let dir = TempDir("twins")
        let base = dir.path + "/vm-e\u{301}.qcow2", overlay = dir.path + "/vm-\u{E9}.qcow2"
        XCTAssertEqual(try Run.raw(qemuImg, ["create", "-q", "-f", "qcow2", base, "16M"]).status, 0)
        let made = try Run.raw(qemuImg, ["create", "-q", "-f", "qcow2", "-b", "vm-e\u{301}.qcow2", "-F", "qcow2", overlay])
        XCTAssertEqual(made.status, 0, "\(made)")
        let q = try Run.raw(qemuIO, ["-c", "quit", overlay])
        XCTAssertEqual(q.status, 0, "qemu-io: \(q)")
        let w = try Run.locksmithRaw(["why", "--json", "--lock-dir", dir.path, overlay])
        XCTAssertEqual(w.status, 0, "\(w)")
        let v = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(w.stdout)) as? [String: Any], "\(w)")
        XCTAssertEqual(v["outcome"] as? String, "opens", "\(v)")
        let chain = try XCTUnwrap(v["chain"] as? [[String: Any]], "\(v)")
        XCTAssertEqual(chain.count, 2, "\(chain)")
        XCTAssertEqual(chain.last?["format"] as? String, "qcow2", "\(chain)")
    }

    /// `why` on a 0xff name, and on an overlay whose backing name holds 0xff, agrees with
    /// qemu-io: both open; both are refused while a qemu-io holds the base.
    func testWhyAgreesWithQemuOnNonUTF8Names() throws {
        let qemuIO = try Run.tool("qemu-io")
        let qemuImg = try Run.tool("qemu-img")
        let dir = TempDir("bytes")
        let base = name(dir, "base", [0xFF], ".qcow2")
        let overlay = dir.file("overlay.qcow2")
        XCTAssertEqual(try Run.raw(qemuImg, ["create", "-q", "-f", "qcow2", base, "16M"]).status, 0)
        // A relative backing name with the 0xff byte, as `qemu-img create -b` writes it.
        let backing = PathBytes.string(Array("base".utf8) + [0xFF] + Array(".qcow2".utf8))
        let made = try Run.raw(qemuImg, ["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", overlay])
        XCTAssertEqual(made.status, 0, "\(made)")

        for image in [base, overlay] {
            let q = try Run.raw(qemuIO, ["-c", "quit", image])
            let w = try Run.locksmithRaw(["why", "--lock-dir", dir.path, image])
            XCTAssertEqual(q.status, 0, "qemu-io: \(q)")
            XCTAssertEqual(w.status, 0, "why says it does not open: \(w)")
            XCTAssertTrue(w.out.contains(": opens read-write"), "\(w)")
            XCTAssertFalse(w.out.contains("missing"), "\(w)")
        }
        // A writer on the base: both refuse the overlay (its base is opened read-only, and
        // the writer does not share that).
        let writer = try RawBackground(qemuIO, ["-c", "sleep 60000", base])
        defer { writer.stop() }
        writer.waitForLock(on: base)
        for image in [base, overlay] {
            let q = try Run.raw(qemuIO, ["-c", "quit", image])
            let w = try Run.locksmithRaw(["why", "--json", "--lock-dir", dir.path, image])
            XCTAssertNotEqual(q.status, 0, "qemu-io opened \(PathBytes.lossy(image)) beside a writer")
            XCTAssertEqual(w.status, 1, "\(w)")
            let v = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(w.stdout)) as? [String: Any], "\(w)")
            XCTAssertEqual(v["outcome"] as? String, "fails")
            let pids = (v["blockers"] as? [[String: Any]])?.compactMap { ($0["pid"] as? NSNumber)?.int32Value }
            XCTAssertEqual(pids, [writer.pid], "\(v)")
        }
    }
}
