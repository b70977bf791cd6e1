import _TestSupport
import Foundation
import ImageLock
import XCTest

/// Issue 15, items 4 and 8: what another user plants in a world-writable lock dir.
final class PlantedLockFileTests: XCTestCase {
    /// `nobody` plants `count` lock files named as the scheme names them (each of a
    /// different, nonexistent image) in `dir`.
    func plant(_ count: Int, in dir: String) throws {
        try Hostile.asNobody("""
            import hashlib, os, sys
            d, n = sys.argv[1], int(sys.argv[2])
            for i in range(n):
                p = "/nonexistent/planted-%d.raw" % i
                with open(os.path.join(d, ".qemu-%s.lock" % hashlib.sha1(p.encode()).hexdigest()), "w") as f:
                    f.write(p + "\\n")
            """, [dir, String(count)])
    }

    /// Only `.qemu-` + 40 lowercase hex + `.lock` is a lock file: `list` leaves the other
    /// `.qemu-*.lock` names out and counts each under unseen with the reason.
    func testListTakesOnlyTheSchemesNames() throws {
        let dir = TempDir("planted")
        chmod(dir.path, 0o1777)
        let hex = String(repeating: "0123456789", count: 4)
        let good = ".qemu-\(hex).lock"
        let bad = [
            ".qemu-\(hex.uppercased().replacingOccurrences(of: "0", with: "A")).lock",  // uppercase
            ".qemu-\(hex.dropLast())g.lock",  // not hex
            ".qemu-\(hex.dropLast()).lock",  // 39 digits
            ".qemu-\(hex)0.lock",  // 41 digits
            ".qemu-\(hex.dropLast(2))\u{1b}[.lock",  // ESC
            ".qemu-\(hex.dropLast())\n.lock",  // newline
            ".qemu-x.lock",
        ]
        try Hostile.asNobody("import os, sys\nfor n in sys.argv[2:]: open(os.path.join(sys.argv[1], n), 'w').close()",
                             [dir.path, good] + bad)
        let r = try Run.locksmithRaw(["list", "--json", "--lock-dir", dir.path])
        XCTAssertEqual(r.status, 0, "\(r)")
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any])
        let mine = (top["lock_files"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
            .filter { $0.hasPrefix(dir.path + "/") }
        XCTAssertEqual(mine, [dir.file(good)])
        let unseen = (top["unseen"] as? [[String: String]] ?? []).filter { $0["what"]?.contains(dir.path) ?? false }
        XCTAssertEqual(Set(unseen.compactMap { $0["what"] }), Set(bad.map { "lock dir entry " + dir.file($0) }))
        for u in unseen { XCTAssertTrue(u["why"]?.contains("not a lock file") ?? false, "\(u)") }
        let text = try Run.locksmithRaw(["list", "--lock-dir", dir.path])
        Hostile.assertTerminalSafe(text.stdout, "list")
        XCTAssertTrue(text.out.contains(dir.file(good)), "\(text)")
        for b in bad { XCTAssertFalse(text.out.contains(TerminalText.escaped(dir.file(b))), "\(b.debugDescription) listed: \(text)") }
        // audit judges none of them, and --fix leaves them all where they are.
        let audit = try Run.locksmithRaw(["audit", "--fix", "--lock-dir", dir.path])
        for b in bad {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file(b)), "\(b.debugDescription) removed")
            XCTAssertFalse(audit.out.contains(TerminalText.escaped(dir.file(b))), "\(audit)")
        }
    }

    /// 20k unmapped lock files planted by nobody: `audit` names each one, once. That its
    /// time stays linear in them (the 20k/10k ratio was ~4 when each lock file rescanned
    /// every image) is timed by `scripts/bench --states planted`: no timed tests.
    func testAuditNamesEveryPlantedLockFile() throws {
        let dir = TempDir("planted-20k")
        chmod(dir.path, 0o1777)
        try plant(20_000, in: dir.path)
        let r = try Run.locksmithRaw(["audit", "--lock-dir", dir.path], timeout: 600)
        XCTAssertNotEqual(r.status, 2, "status \(r.status): \(r.err)")
        let unmapped = r.out.split(separator: "\n").filter { $0.hasPrefix("INFO     unmapped-lock-file  \(dir.path)/") }
        XCTAssertEqual(unmapped.count, 20_000)
        XCTAssertEqual(Set(unmapped).count, 20_000)
    }
}
