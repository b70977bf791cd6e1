import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `locksmith path / try / hold`, run as the real binary against real lock holders.
final class LockCommandsTests: XCTestCase {
    func testPathIsSHA1OfRealpath() throws {
        let dir = TempDir("cli-path")
        let image = dir.makeFile("vm disk.img")
        let sha = try Run.capture("/bin/sh", ["-c", "printf %s \"$(realpath \"$1\")\" | sha1sum | cut -c1-40", "sh", image])
        let r = try Run.locksmith(["path", "--lock-dir", dir.path, image])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stdout, "\(dir.path)/.qemu-\(sha.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).lock\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["vm disk.img"], "path creates nothing")
        let d = try Run.locksmith(["path", image])
        XCTAssertTrue(d.stdout.hasPrefix("/var/tmp/.qemu-"), "default lock dir is /var/tmp: \(d)")
    }

    func testHoldExclusiveBlocksTryThenFrees() throws {
        let dir = TempDir("cli-hold")
        let image = dir.makeFile("disk.img")
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "30"])
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        holder.waitForLocks(on: lockFile)

        let shared = try Run.locksmith(["try", "--shared", "--lock-dir", dir.path, image])
        XCTAssertEqual(shared.status, 1, "\(shared)")
        XCTAssertTrue(shared.stdout.contains("pid \(holder.pid) (locksmith)"), "\(shared)")

        let json = try Run.locksmith(["try", "--json", "--lock-dir", dir.path, image])
        XCTAssertEqual(json.status, 1)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(obj["schema"] as? Int, 1)
        XCTAssertEqual(obj["acquired"] as? Bool, false)
        XCTAssertEqual(obj["scheme"] as? String, "lockfile")
        XCTAssertEqual(obj["mode"] as? String, "exclusive")
        let holders = try XCTUnwrap(obj["holders"] as? [[String: Any]])
        XCTAssertEqual(holders.map { $0["pid"] as? Int }, [Int(holder.pid)])
        XCTAssertEqual(holders.first?["command"] as? String, "locksmith")
        XCTAssertTrue(json.stdout.hasPrefix("{\"schema\":1,\"host\":"), json.stdout)

        holder.stop()
        let after = try Run.locksmith(["try", "--lock-dir", dir.path, image])
        XCTAssertEqual(after.status, 0, "\(after)")
        XCTAssertTrue(ProcLocks.rows(for: lockFile).isEmpty, "try leaves no lock behind")
    }

    /// libgfapi (and its fifteen libraries) is loaded only by what uses Gluster.
    func testLibgfapiIsNotLoadedWithoutGluster() throws {
        let dir = TempDir("cli-nogfapi")
        let image = dir.makeFile("disk.img")
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "30"])
        defer { holder.stop() }
        holder.waitForLocks(on: dir.path + "/" + ImageLocker.lockFileName(realPath: image))
        let maps = String(decoding: try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(holder.pid)/maps"))
            .readToEnd() ?? Data(), as: UTF8.self)
        XCTAssertTrue(maps.contains("libcrypto"), "the maps are read")
        XCTAssertFalse(maps.contains("libgfapi"), maps)
        XCTAssertFalse(maps.contains("libglusterfs"), maps)
    }

    func testSharedHoldersCoexist() throws {
        let dir = TempDir("cli-shared")
        let image = dir.makeFile("disk.img")
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        let a = try Background(Run.locksmith, ["hold", "--shared", "--lock-dir", dir.path, image, "--", "sleep", "30"])
        a.waitForLocks(on: lockFile)
        let b = try Background(Run.locksmith, ["hold", "--shared", "--lock-dir", dir.path, image, "--", "sleep", "30"])
        b.waitForLocks(on: lockFile, count: 2)
        XCTAssertEqual(try Run.locksmith(["try", "--shared", "--lock-dir", dir.path, image]).status, 0)
        let ex = try Run.locksmith(["try", "--exclusive", "--lock-dir", dir.path, image])
        XCTAssertEqual(ex.status, 1)
        XCTAssertTrue(ex.stdout.contains("pid \(a.pid) ") && ex.stdout.contains("pid \(b.pid) "), "both shared holders named: \(ex)")
        a.stop()
        b.stop()
    }

    func testHoldPropagatesExitStatusAndDoesNotLeakTheLockFD() throws {
        let dir = TempDir("cli-status")
        let image = dir.makeFile("disk.img")
        let r = try Run.locksmith(["hold", "--lock-dir", dir.path, image, "--", "/bin/sh", "-c", "exit 7"])
        XCTAssertEqual(r.status, 7)
        let lockName = ImageLocker.lockFileName(realPath: image)
        let fds = try Run.locksmith(["hold", "--lock-dir", dir.path, image, "--", "/bin/sh", "-c", "ls -l /proc/$$/fd"])
        XCTAssertEqual(fds.status, 0, "\(fds)")
        XCTAssertFalse(fds.stdout.contains(lockName), "the lock fd leaked into the command: \(fds.stdout)")
        XCTAssertFalse(fds.stdout.contains(image), "the image fd leaked into the command: \(fds.stdout)")
        let missing = try Run.locksmith(["hold", "--lock-dir", dir.path, image, "--", "/nonexistent/cmd"])
        XCTAssertEqual(missing.status, 127, "\(missing)")
        XCTAssertTrue(missing.stderr.hasPrefix("locksmith: cannot run /nonexistent/cmd"), "\(missing)")
    }

    func testHoldForwardsSIGTERMAndReleases() throws {
        let dir = TempDir("cli-signal")
        let image = dir.makeFile("disk.img")
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "30"])
        holder.waitForLocks(on: lockFile)
        // The signal is forwarded once the command runs (a SIGTERM between the lock and the
        // command's start ends locksmith as its default does, before any command: status 143
        // to a shell either way, but not what this test is about).
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, (try? Run.capture("/usr/bin/pgrep", ["-P", String(holder.pid)]))?.stdout.isEmpty ?? true {
            usleep(5_000)
        }
        kill(holder.pid, SIGTERM)
        holder.process.waitUntilExit()
        XCTAssertEqual(holder.process.terminationStatus, 128 + SIGTERM, "exits as its command did")
        XCTAssertTrue(ProcLocks.rows(for: lockFile).isEmpty)
        let children = try Run.capture("/usr/bin/pgrep", ["-P", String(holder.pid)])
        XCTAssertEqual(children.stdout, "", "the command was ended too")
    }

    func testHoldBlockedNamesHolderAndWaitSucceedsLater() throws {
        let dir = TempDir("cli-wait")
        let image = dir.makeFile("disk.img")
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        // Held long enough to be named on a busy host (a /proc/locks of 50k rows is read in
        // a good part of a second there), short enough for --wait.
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "4"])
        holder.waitForLocks(on: lockFile)
        let blocked = try Run.locksmith(["hold", "--lock-dir", dir.path, image, "--", "true"])
        XCTAssertEqual(blocked.status, 1)
        XCTAssertTrue(blocked.stderr.contains("pid \(holder.pid) (locksmith)"), "\(blocked)")
        let waited = try Run.locksmith(["hold", "--wait", "20", "--lock-dir", dir.path, image, "--", "true"])
        XCTAssertEqual(waited.status, 0, "\(waited)")
    }

    func testPosixFallbackThroughTheCLI() throws {
        let dir = TempDir("cli-posix")
        let image = dir.makeFile("disk.img")
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        let env = ["LOCKSMITH_LOCK_FLAVOR": "posix"]
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "sleep", "30"], environment: env)
        holder.waitForLocks(on: lockFile)
        XCTAssertEqual(ProcLocks.rows(for: lockFile).map(\.kind), [.posix])
        // An OFD prober sees the POSIX holder, and a POSIX prober too.
        for e in [[:], env] {
            let r = try Run.locksmith(["try", "--json", "--lock-dir", dir.path, image], environment: e)
            XCTAssertEqual(r.status, 1, "\(r)")
            XCTAssertTrue(r.stdout.contains("\"pid\":\(holder.pid)"), "\(r)")
        }
        holder.stop()
    }

    // MARK: - Interop with real QEMU

    func testHoldQemuSchemeBlocksQemuImgInfo() throws {
        let dir = TempDir("cli-qemu")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        let holder = try Background(Run.locksmith, ["hold", "--scheme", "qemu", image, "--", "sleep", "30"])
        holder.waitForLocks(on: image, count: 3)
        let qemuImg = try Run.tool("qemu-img")
        let info = try Run.capture(qemuImg, ["info", image])
        XCTAssertNotEqual(info.status, 0)
        XCTAssertTrue(info.stderr.contains("Failed to get shared \"write\" lock"), "\(info)")
        let forced = try Run.capture(qemuImg, ["info", "-U", image])
        XCTAssertEqual(forced.status, 0, "\(forced)")
        holder.stop()
        XCTAssertEqual(try Run.capture(qemuImg, ["info", image]).status, 0)
    }

    func testQemuNbdWriterBlocksBothModes() throws {
        let dir = TempDir("cli-nbd")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        let nbd = try Background(try Run.tool("qemu-nbd"), ["--persistent", "-k", dir.file("s"), "-f", "qcow2", image])
        defer { nbd.stop() }
        nbd.waitForLocks(on: image, count: 4)
        for mode in ["--exclusive", "--shared"] {
            let r = try Run.locksmith(["try", "--scheme", "qemu", mode, image])
            XCTAssertEqual(r.status, 1, "\(mode): \(r)")
            XCTAssertTrue(r.stdout.contains("pid \(nbd.pid) (qemu-nbd)"), "\(mode): \(r)")
        }
        let ex = try Run.locksmith(["try", "--scheme", "qemu", image])
        XCTAssertTrue(ex.stdout.contains("QEMU would say: Failed to get \"write\" lock"), "\(ex)")
        let sh = try Run.locksmith(["try", "--scheme", "qemu", "--shared", "--json", image])
        XCTAssertTrue(sh.stdout.contains("\"qemu_message\":\"Failed to get shared \\\"write\\\" lock\""), "\(sh)")
    }

    func testQemuIoReaderLetsSharedThroughAndBlocksExclusive() throws {
        let dir = TempDir("cli-reader")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        let reader = try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 30000", image])
        defer { reader.stop() }
        reader.waitForLocks(on: image, count: 3)
        let before = ProcLocks.table(of: [image])
        XCTAssertEqual(try Run.locksmith(["try", "--scheme", "qemu", "--shared", image]).status, 0)
        let ex = try Run.locksmith(["try", "--scheme", "qemu", "--exclusive", image])
        XCTAssertEqual(ex.status, 1, "\(ex)")
        XCTAssertTrue(ex.stdout.contains("pid \(reader.pid) (qemu-io)"), "\(ex)")
        XCTAssertEqual(ProcLocks.table(of: [image]), before, "try leaves no lock behind")
    }

    // MARK: - Attacks and bad input: one line, exit 2, nothing changed

    private func assertOneLineError(_ r: RunResult, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 2, "\(r)", file: file, line: line)
        XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "one line: \(r)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("locksmith: "), "\(r)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains(text), "\(r)", file: file, line: line)
        XCTAssertEqual(r.stdout, "", file: file, line: line)
    }

    func testSymlinkPlantedAtLockPath() throws {
        let dir = TempDir("cli-symlink")
        let image = dir.makeFile("disk.img")
        let target = dir.makeFile("precious", size: 3)
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        try FileManager.default.createSymbolicLink(atPath: lockFile, withDestinationPath: target)
        for args in [["try"], ["try", "--shared"], ["hold"]] {
            let r = try Run.locksmith(args + ["--lock-dir", dir.path, image] + (args[0] == "hold" ? ["--", "true"] : []))
            assertOneLineError(r, contains: "is a symbolic link; refusing to follow it")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: target)), Data(count: 3), "target untouched")
        XCTAssertTrue(ProcLocks.rows(for: target).isEmpty)
    }

    func testFIFOAtLockPathDoesNotHang() throws {
        let dir = TempDir("cli-fifo")
        let image = dir.makeFile("disk.img")
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        XCTAssertEqual(mkfifo(lockFile, 0o644), 0)
        let r = try Run.locksmith(["try", "--lock-dir", dir.path, image], timeout: 10)
        assertOneLineError(r, contains: "is a FIFO, not a regular file")
        let h = try Run.locksmith(["hold", "--lock-dir", dir.path, image, "--", "true"], timeout: 10)
        assertOneLineError(h, contains: "is a FIFO")
    }

    func testLockFileNotWritableForExclusive() throws {
        let dir = TempDir("cli-perm")
        chmod(dir.path, 0o755)
        let image = dir.makeFile("disk.img")
        chmod(image, 0o666)
        let lockFile = dir.path + "/" + ImageLocker.lockFileName(realPath: image)
        _ = FileManager.default.createFile(atPath: lockFile, contents: Data())
        chmod(lockFile, 0o644)  // root's, not writable by nobody
        let setpriv = try Run.tool("setpriv")
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", Run.locksmith]
        let ex = try Run.capture(setpriv, asNobody + ["try", "--exclusive", "--lock-dir", dir.path, image])
        assertOneLineError(ex, contains: "cannot be opened for writing (an exclusive lock needs it): Permission denied")
        let sh = try Run.capture(setpriv, asNobody + ["try", "--shared", "--lock-dir", dir.path, image])
        XCTAssertEqual(sh.status, 0, "a shared lock needs only read access: \(sh)")
        let hold = try Run.capture(setpriv, asNobody + ["hold", "--shared", "--lock-dir", dir.path, image, "--", "true"])
        XCTAssertEqual(hold.status, 0, "a shared hold on root's lock file: \(hold)")
        let holdEx = try Run.capture(setpriv, asNobody + ["hold", "--lock-dir", dir.path, image, "--", "true"])
        assertOneLineError(holdEx, contains: "cannot be opened for writing")
    }

    func testMissingImageDirectoryAndMissingLockDir() throws {
        let dir = TempDir("cli-bad")
        assertOneLineError(try Run.locksmith(["try", "--lock-dir", dir.path, dir.file("nope.qcow2")]), contains: "no such image")
        assertOneLineError(try Run.locksmith(["path", dir.file("nope.qcow2")]), contains: "no such image")
        assertOneLineError(try Run.locksmith(["try", "--lock-dir", dir.path, dir.path]), contains: "is a directory, not a disk image")
        assertOneLineError(try Run.locksmith(["try", "--scheme", "qemu", dir.path]), contains: "is a directory")
        let image = dir.makeFile("disk.img")
        assertOneLineError(try Run.locksmith(["try", "--lock-dir", dir.file("gone"), image]), contains: "does not exist")
        assertOneLineError(try Run.locksmith(["hold", "--lock-dir", dir.file("gone"), image, "--", "true"]), contains: "does not exist")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["disk.img"])
    }

    func testUsageErrorsExit64() throws {
        XCTAssertEqual(try Run.locksmith(["hold", "/tmp"]).status, 64)
        XCTAssertEqual(try Run.locksmith(["try", "--scheme", "nfs", "/tmp/x"]).status, 64)
        XCTAssertEqual(try Run.locksmith(["try", "--exclusive", "--shared", "/tmp/x"]).status, 64)
        XCTAssertEqual(try Run.locksmith(["frobnicate"]).status, 64)
    }

    func testTryNeverCreatesTheLockFile() throws {
        let dir = TempDir("cli-nocreate")
        let image = dir.makeFile("disk.img")
        let r = try Run.locksmith(["try", "--json", "--lock-dir", dir.path, image])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("\"lock_file_exists\":false"), r.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["disk.img"])
        // Nothing of it is left locked (the whole table would also hold other tests' locks).
        XCTAssertEqual(ProcLocks.rows(for: image), [])
    }
}
