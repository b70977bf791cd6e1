import _TestSupport
import Foundation
import ImageLock
import XCTest

/// Issue 15, item 3: names chosen by another user (files, process names, lock-file
/// contents) never reach root's terminal raw, and one record stays one line.
final class HostileOutputTests: XCTestCase {
    /// An image name that clears the screen, retitles the window and hides a line.
    static let imageName = "vm\u{1b}]0;OWNED\u{07}\u{1b}[2J\u{1b}[2K\rCRITICAL\nFAKE LINE\u{9b}31m\u{202e}.raw"
    /// A process name (15 bytes at most) with ESC, CR, 8-bit CSI (not UTF-8), DEL and a newline.
    static let processName: [UInt8] = [0x65, 0x76, 0x1B, 0x5B, 0x32, 0x4A, 0x0D, 0x9B, 0x01, 0x7F, 0x0A, 0x78]
    /// A path written inside a planted lock file (named by its SHA-1, so it is trusted).
    static let contentPath = "/gone/\u{1b}]2;pwn\u{07}\u{1b}[2K\rCRITICAL.raw"

    struct Scene {
        let dir: TempDir
        let image: String
        let lockFile: String
        let holder: RawBackground
        func stop() { holder.stop() }
    }

    /// A hostile image held through its lock file by a process with a hostile name, and a
    /// lock file planted by nobody whose content is a hostile path.
    func scene() throws -> Scene {
        let dir = TempDir("hostile")
        chmod(dir.path, 0o1777)
        let image = dir.file(Self.imageName)
        XCTAssertTrue(Hostile.makeFile(image))
        let lockFile = ImageLocker(lockDirectory: dir.path).lockFilePath(realPath: image)
        let holder = try Hostile.namedHolder(name: Self.processName, lockFile: lockFile, content: Array((image + "\n").utf8),
                                             extraArgs: ["arg\u{1b}[2J\n", PathBytes.string([0xFF])])
        holder.waitForLock(on: lockFile)
        let planted = dir.path + "/" + ImageLocker.lockFileName(realPath: Self.contentPath)
        try Hostile.asNobody("import sys, os\nopen(os.fsencode(sys.argv[1]), 'wb').write(os.fsencode(sys.argv[2]))",
                             [planted, Self.contentPath + "\n"])
        return Scene(dir: dir, image: image, lockFile: lockFile, holder: holder)
    }

    /// Every text command that names the image, its holder or the planted path.
    func testNoRawControlByteReachesTheTextOutputOfAnyCommand() throws {
        let s = try scene()
        defer { s.stop() }
        let d = s.dir.path
        let escapedImage = TerminalText.escaped(s.image)
        let escapedName = "ev\\x1b[2J\\r\\x9b\\x01\\x7f\\nx"  // comm, as try/hold read it
        let runs: [(String, [String], [String])] = [
            ("list", ["list", "--lock-dir", d, "--images", d], [escapedImage, TerminalText.escaped(Self.contentPath)]),
            ("list -o", ["list", "-o", "image,pid,command,lockfile", "--lock-dir", d, "--images", d], [escapedImage]),
            ("why", ["why", "--lock-dir", d, s.image], [escapedImage]),
            ("try", ["try", "--lock-dir", d, s.image], [escapedImage, escapedName]),
            ("hold", ["hold", "--lock-dir", d, s.image, "--", "true"], [escapedImage, escapedName]),
            ("audit", ["audit", "--lock-dir", d, "--images", d], [TerminalText.escaped(Self.contentPath)]),
            ("path", ["path", "--lock-dir", d, s.image + "\u{1b}[2Jmissing"], ["\\x1b[2Jmissing"]),
        ]
        for (what, args, expected) in runs {
            let r = try Run.locksmithRaw(args)
            Hostile.assertTerminalSafe(r.stdout, "\(what) stdout")
            Hostile.assertTerminalSafe(r.stderr, "\(what) stderr")
            let all = r.out + r.err
            for e in expected { XCTAssertTrue(all.contains(e), "\(what) does not show \(e.debugDescription): \(r)") }
            if what.hasPrefix("list") {
                // The image's record is one line, its holder's pid on it.
                let row = r.out.split(separator: "\n").filter { $0.contains(escapedImage) }
                XCTAssertEqual(row.count, 1, "\(r)")
                XCTAssertTrue(row.first?.contains(String(s.holder.pid)) ?? false, "\(r)")
            }
        }
        // The table's columns line up on the escaped text: every row's PID column starts at
        // the header's.
        let r = try Run.locksmithRaw(["list", "-o", "image,pid", "--lock-dir", d, "--images", d])
        let lines = r.out.split(separator: "\n")
        XCTAssertTrue(lines.contains { $0.contains(escapedImage) }, "\(r)")
        for l in lines { XCTAssertEqual(l.count, lines[0].count, "a row not as wide as its header: \(l.debugDescription)") }
    }

    /// JSON keeps every name exactly (its own escaping covers control characters).
    func testJSONKeepsTheNamesExactly() throws {
        let s = try scene()
        defer { s.stop() }
        let r = try Run.locksmithRaw(["list", "--json", "--lock-dir", s.dir.path, "--images", s.dir.path])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertFalse(r.stdout.contains(0x1B), "a raw ESC in JSON")
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any])
        let images = try XCTUnwrap(top["images"] as? [[String: Any]])
        let mine = try XCTUnwrap(images.first { $0["path"] as? String == s.image }, "\(r)")
        XCTAssertNil(mine["path_bytes"], "a UTF-8 name gets no path_bytes")
        let holder = try XCTUnwrap((mine["holders"] as? [[String: Any]])?.first)
        XCTAssertEqual((holder["pid"] as? NSNumber)?.int32Value, s.holder.pid)
        XCTAssertTrue((holder["args"] as? [String])?.contains("arg\u{1b}[2J\n") ?? false, "\(holder)")
        XCTAssertTrue(images.contains { $0["path"] as? String == Self.contentPath }, "\(images.map { $0["path"] })")
        let why = try Run.locksmithRaw(["why", "--json", "--lock-dir", s.dir.path, s.image])
        let verdict = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(why.stdout)) as? [String: Any], "\(why)")
        XCTAssertEqual(verdict["image"] as? String, s.image)
    }

    /// `watch` writes exactly one line per event, whatever the names in it hold: every line
    /// it writes starts with a time and an event kind (other locks on the host may come and
    /// go meanwhile; a forged line would not), and the hostile image's event is one line.
    func testWatchWritesOneLinePerEvent() throws {
        let dir = TempDir("hostile-watch")
        let image = dir.file(Self.imageName)
        XCTAssertTrue(Hostile.makeFile(image))
        let lockFile = ImageLocker(lockDirectory: dir.path).lockFilePath(realPath: image)
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: Run.locksmith)
        watch.arguments = ["watch", "--interval", "0.2", "--findings", "none", "--lock-dir", dir.path, "--images", dir.path]
        let out = Pipe(), err = Pipe()
        watch.standardOutput = out
        watch.standardError = err
        try watch.run()
        defer { if watch.isRunning { kill(watch.processIdentifier, SIGKILL) } }
        // The first snapshot is taken when it says it is watching; then the lock appears.
        var said = Data()
        while !said.contains(UInt8(ascii: "\n")) {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            said += chunk
        }
        XCTAssertTrue(String(decoding: said, as: UTF8.self).contains("watching"), String(decoding: said, as: UTF8.self))
        let holder = try Hostile.namedHolder(name: Self.processName, lockFile: lockFile, content: Array((image + "\n").utf8))
        defer { holder.stop() }
        holder.waitForLock(on: lockFile)
        let ours = " lock-acquired \(TerminalText.escaped(image)) pid \(holder.pid) ("
        let text = Collected()
        let reader = Thread {
            while true {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { return }
                text.append(chunk)
            }
        }
        reader.start()
        func seen() -> Bool {
            String(decoding: text.data, as: UTF8.self).split(separator: "\n").contains { $0.contains(ours) }
        }
        let deadline = Date().addingTimeInterval(30)
        while !seen() && Date() < deadline { usleep(20_000) }
        kill(watch.processIdentifier, SIGTERM)
        watch.waitUntilExit()
        while !reader.isFinished { usleep(5_000) }
        let bytes = Array(text.data)
        Hostile.assertTerminalSafe(bytes, "watch")
        let all = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(all.hasSuffix("\n"), all.debugDescription)
        let kinds = "(" + WatchKinds.all.joined(separator: "|") + ")"
        let record = try NSRegularExpression(pattern: "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d+\\S* \(kinds) ")
        let lines = all.split(separator: "\n").map(String.init)
        for l in lines {
            XCTAssertNotNil(record.firstMatch(in: l, range: NSRange(l.startIndex..., in: l)), "not a record: \(l.debugDescription)")
        }
        XCTAssertEqual(lines.filter { $0.contains(ours) }.count, 1, all.debugDescription)
    }
}

/// `watch`'s event kinds (WatchEvent.Kind), as the text lines name them.
enum WatchKinds {
    static let all = ["lock-released", "waiter-unblocked", "lock-acquired", "holder-changed", "waiter-blocked",
                      "finding-cleared", "finding-raised"]
}

/// Output collected by a reader thread.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes = Data()
    func append(_ d: Data) { lock.lock(); bytes += d; lock.unlock() }
    var data: Data { lock.lock(); defer { lock.unlock() }; return bytes }
}
