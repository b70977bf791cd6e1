import _TestSupport
import Foundation
import ImageLock
import XCTest

/// The benchmark's kind of state (scripts/bench) at a small N, checked for exactness: every
/// held lock file attributed to exactly the process that holds it, through OFD and classic
/// POSIX locks, with bystanders that have the same files open without locking them.
final class ListExactnessTests: XCTestCase {
    /// Locks every file listed in argv[2] (one path a line): OFD write locks when argv[1] is
    /// "ofd" (and a dup of the first fd, which shares its open file description), else
    /// lockf; "none" only opens them. Then writes argv[3] and sleeps.
    static let holderScript = """
        import fcntl, os, struct, sys, time
        kind, listing, ready = sys.argv[1], sys.argv[2], sys.argv[3]
        fds = []
        for path in open(listing).read().split("\\n"):
            if not path:
                continue
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            if kind == "ofd":
                fcntl.fcntl(fd, 37, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, 0, 0, 0, 0))
            elif kind == "posix":
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fds.append(fd)
        if kind == "ofd" and fds:
            fds.append(os.dup(fds[0]))
        open(ready, "w").close()
        time.sleep(120)
        """

    func testEveryHeldLockFileIsAttributedToItsHolder() throws {
        let dir = TempDir("exact")
        let images = dir.file("images"), locks = dir.file("locks")
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        let n = 200, holders = 6
        var lockFiles: [String] = []
        var imageOf: [String: String] = [:]
        for i in 0..<n {
            let image = images + "/img-\(i).qcow2"
            _ = FileManager.default.createFile(atPath: image, contents: nil)
            let real = try XCTUnwrap(realpath(image, nil).map { p in defer { free(p) }; return String(cString: p) })
            let lf = locks + "/" + ImageLocker.lockFileName(realPath: real)
            _ = FileManager.default.createFile(atPath: lf, contents: Data((real + "\n").utf8))
            lockFiles.append(lf)
            imageOf[lf] = real
        }
        let held = Array(lockFiles.prefix(n / 2))
        let python = try Run.tool("python3")
        var processes: [Background] = []
        defer { for p in processes { p.stop() } }
        func start(_ kind: String, _ files: [String], _ label: String) throws -> Background {
            let listing = dir.file("\(label).list"), ready = dir.file("\(label).ready")
            try files.joined(separator: "\n").write(toFile: listing, atomically: true, encoding: .utf8)
            let p = try Background(python, ["-c", Self.holderScript, kind, listing, ready])
            processes.append(p)
            let deadline = Date().addingTimeInterval(20)
            while !FileManager.default.fileExists(atPath: ready) && Date() < deadline && p.process.isRunning {
                usleep(10_000)
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: ready), "holder \(label) did not get ready")
            return p
        }
        var expected: [String: Int32] = [:]
        for h in 0..<holders {
            let chunk = stride(from: h, to: held.count, by: holders).map { held[$0] }
            let p = try start(h % 2 == 0 ? "ofd" : "posix", chunk, "holder\(h)")
            for lf in chunk { expected[lf] = p.pid }
        }
        // A bystander with every lock file open (held or not) and no lock: never a holder.
        _ = try start("none", lockFiles, "bystander")

        let r = try Run.locksmith(["list", "--json", "--lock-dir", locks, "--images", images])
        XCTAssertEqual(r.status, 0, "\(r)")
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let listed = try XCTUnwrap(top["images"] as? [[String: Any]])
        var got: [String: Set<Int32>] = [:]
        var pathOf: [String: String] = [:]
        for img in listed {
            let pids = Set((img["holders"] as? [[String: Any]] ?? []).compactMap { ($0["pid"] as? NSNumber)?.int32Value })
            for lf in img["lock_files"] as? [String] ?? [] {
                got[lf, default: []].formUnion(pids)
                pathOf[lf] = img["path"] as? String
            }
        }
        for lf in lockFiles {
            XCTAssertEqual(pathOf[lf], imageOf[lf], "image of \(lf)")
            if let pid = expected[lf] {
                XCTAssertEqual(got[lf], [pid], "holder of \(lf)")
            } else {
                XCTAssertEqual(got[lf] ?? [], [], "\(lf) is not held")
            }
        }
        let entries = try XCTUnwrap(top["lock_files"] as? [[String: Any]])
        XCTAssertEqual(entries.count, n)
        for e in entries {
            let path = try XCTUnwrap(e["path"] as? String)
            XCTAssertEqual(e["held"] as? Bool, expected[path] != nil, path)
        }
        // The OFD holders' dup'd fd shares the first file's description: listed as a second fd.
        for h in stride(from: 0, to: holders, by: 2) {
            let first = held[h]
            let img = try XCTUnwrap(listed.first { ($0["lock_files"] as? [String])?.contains(first) ?? false })
            let fds = (img["holders"] as? [[String: Any]] ?? []).compactMap { ($0["fd"] as? NSNumber)?.int32Value }
            XCTAssertEqual(fds.count, 2, "\(first): the locking fd and its dup")
        }
    }
}
