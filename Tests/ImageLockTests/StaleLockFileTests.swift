import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `removeStaleLockFile`: removes a lock file nobody holds, and nothing else.
final class StaleLockFileTests: XCTestCase {
    func lockFile(_ dir: TempDir, for image: String) -> String {
        ImageLocker(lockDirectory: dir.path).lockFilePath(realPath: image)
    }

    /// A lock file made by taking and releasing a lock (as `hold -- true` leaves it).
    func staleLockFile(_ dir: TempDir, image: String) throws -> String {
        let locker = ImageLocker(lockDirectory: dir.path)
        guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: .exclusive) else {
            throw XCTSkip("could not create the lock file")
        }
        held.release()
        return try XCTUnwrap(held.lockFile)
    }

    func testRemovesAStaleLockFile() throws {
        let dir = TempDir("stale")
        let path = try staleLockFile(dir, image: dir.makeFile("disk.img"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try ImageLocker(lockDirectory: dir.path).removeStaleLockFile(path), .removed)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try ImageLocker(lockDirectory: dir.path + "/").removeStaleLockFile(path), .gone)
        XCTAssertTrue(ProcLocks.rows(for: dir.file("disk.img")).isEmpty)
    }

    func testNeverRemovesAHeldLockFile() throws {
        let dir = TempDir("stale-held")
        let locker = ImageLocker(lockDirectory: dir.path)
        // Held in this process through another open file (OFD locks conflict), shared or exclusive.
        for mode in [LockMode.exclusive, .shared] {
            let image = dir.makeFile("in-process-\(mode).img")
            guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: mode) else {
                return XCTFail("not acquired")
            }
            XCTAssertEqual(try locker.removeStaleLockFile(held.lockFile!), .held, "\(mode)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: held.lockFile!))
            held.release()
        }
        // Held by other processes: locksmith hold (OFD), python lockf (classic POSIX), python flock.
        let image = dir.makeFile("disk.img")
        let path = lockFile(dir, for: image)
        let hold = try Background(Run.locksmith, ["hold", "--shared", "--lock-dir", dir.path, image, "--", "sleep", "60"])
        defer { hold.stop() }
        hold.waitForLocks(on: path)
        XCTAssertEqual(try locker.removeStaleLockFile(path), .held)
        hold.stop()
        for call in ["fcntl.lockf(f, fcntl.LOCK_SH)", "fcntl.flock(f, fcntl.LOCK_SH)"] {
            let script = "import fcntl, sys, time\nf = open(sys.argv[1], 'r')\n\(call)\nprint('locked', flush=True)\ntime.sleep(60)\n"
            let py = try Background(try Run.tool("python3"), ["-c", script, path])
            defer { py.stop() }
            py.waitForLocks(on: path)
            XCTAssertEqual(try locker.removeStaleLockFile(path), .held, call)
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), call)
            py.stop()
        }
        XCTAssertEqual(try locker.removeStaleLockFile(path), .removed)
    }

    func testRefusesAnythingButARegularLockFileInItsLockDir() throws {
        let dir = TempDir("stale-refuse")
        let locker = ImageLocker(lockDirectory: dir.path)
        let target = dir.makeFile("precious")
        let link = lockFile(dir, for: "/link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        guard case .refused(let why) = try locker.removeStaleLockFile(link) else { return XCTFail("a symlink was not refused") }
        XCTAssertTrue(why.contains("symbolic link"), why)
        let fifo = lockFile(dir, for: "/fifo")
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        guard case .refused = try locker.removeStaleLockFile(fifo) else { return XCTFail("a FIFO was not refused") }
        let other = dir.makeFile("notes.txt")
        guard case .refused = try locker.removeStaleLockFile(other) else { return XCTFail("a non-lock file was not refused") }
        // A lock file of another dir is not this locker's to remove.
        let elsewhere = TempDir("stale-elsewhere")
        let foreign = try staleLockFile(elsewhere, image: elsewhere.makeFile("disk.img"))
        guard case .refused = try locker.removeStaleLockFile(foreign) else { return XCTFail("another dir's file was not refused") }
        for p in [link, fifo, other, foreign, target] {
            var st = stat()
            XCTAssertEqual(lstat(p, &st), 0, "\(p) must still exist")
        }
    }

    /// A holder taking and releasing the lock (through the core: lock, then check the path)
    /// against a remover running at the same time: the remover must never remove the file
    /// while it is held. The holder checks, while holding, that its lock file is still
    /// the one at the path.
    func testRaceWithAConcurrentHolderNeverRemovesAHeldFile() throws {
        let dir = TempDir("stale-race")
        let image = dir.makeFile("disk.img")
        let path = lockFile(dir, for: image)
        final class Tally: @unchecked Sendable {
            var acquired = 0, busy = 0, retried = 0, violations: [String] = []
            var removed = 0, held = 0, other = 0
        }
        let t = Tally()
        let stopAt = Date().addingTimeInterval(2)
        let group = DispatchGroup()
        group.enter()
        Thread {
            defer { group.leave() }
            let locker = ImageLocker(lockDirectory: dir.path)
            while Date() < stopAt {
                do {
                    guard case .acquired(let held) = try locker.acquire(image, scheme: .lockfile, mode: .exclusive) else {
                        t.busy += 1
                        continue
                    }
                    t.acquired += 1
                    let first = ProcLocks.inode(of: path)
                    usleep(UInt32.random(in: 0...300))
                    let second = ProcLocks.inode(of: path)
                    if (first == nil || first != second) && t.violations.count < 3 {
                        t.violations.append("held lock file changed under its holder: \(String(describing: first)) -> \(String(describing: second))")
                    }
                    held.release()
                } catch {
                    t.retried += 1  // "the lock file keeps being replaced": a loss of the race, not a violation
                }
            }
        }.start()
        group.enter()
        Thread {
            defer { group.leave() }
            let locker = ImageLocker(lockDirectory: dir.path)
            while Date() < stopAt {
                switch try? locker.removeStaleLockFile(path) {
                case .removed?: t.removed += 1
                case .held?: t.held += 1
                default: t.other += 1
                }
            }
        }.start()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(t.violations, [])
        XCTAssertGreaterThan(t.acquired, 10, "the holder never got going")
        XCTAssertGreaterThan(t.removed, 10, "the remover never removed anything: the race was not run")
        XCTAssertGreaterThan(t.held, 0, "the remover never met a held file: the race was not run")
    }
}
