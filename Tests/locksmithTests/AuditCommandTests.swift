import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `locksmith audit`: every rule proven on a real hazard, and quiet on the normal case.
/// The host may hold other processes' locks and hazards (other test runs): each test
/// looks only at findings about its own temp dir.
final class AuditCommandTests: XCTestCase {
    typealias JSON = [String: Any]

    struct Audit {
        var result: RunResult
        var top: JSON
        var all: [JSON]

        /// Findings about files under `prefix`.
        func under(_ prefix: String) -> [JSON] {
            all.filter { f in
                ((f["image"] as? String) ?? "").hasPrefix(prefix) || ((f["files"] as? [String]) ?? []).contains { $0.hasPrefix(prefix) }
            }
        }

        func rules(under prefix: String) -> [String] { under(prefix).compactMap { $0["rule"] as? String } }

        func finding(_ rule: String, under prefix: String, file: StaticString = #filePath, line: UInt = #line) throws -> JSON {
            try XCTUnwrap(under(prefix).first { $0["rule"] as? String == rule },
                          "no \(rule) finding under \(prefix): \(under(prefix))", file: file, line: line)
        }

        /// What the exit status must be for the whole host's findings.
        func expectedStatus(failOn: String = "critical") -> Int32 {
            let order = ["info", "warning", "critical"]
            let min = order.firstIndex(of: failOn)!
            return all.contains { order.firstIndex(of: $0["severity"] as? String ?? "") ?? -1 >= min } ? 1 : 0
        }
    }

    func audit(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Audit {
        let r = try Run.locksmith(["audit", "--json"] + args)
        XCTAssertTrue(r.status == 0 || r.status == 1, "\(r)", file: file, line: line)
        XCTAssertTrue(r.stdout.hasPrefix("{\"schema\":1,\"host\":"), r.stdout, file: file, line: line)
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? JSON, file: file, line: line)
        let all = try XCTUnwrap(top["findings"] as? [JSON], file: file, line: line)
        return Audit(result: r, top: top, all: all)
    }

    func pids(_ f: JSON, role: String? = nil) -> Set<Int32> {
        Set(((f["holders"] as? [JSON]) ?? []).filter { role == nil || $0["role"] as? String == role }
            .compactMap { ($0["pid"] as? NSNumber)?.int32Value })
    }

    func lockDir(_ dir: TempDir) throws -> String {
        let p = dir.file("locks")
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: false)
        return p
    }

    // MARK: writers

    func testUnlockedWriterIsCriticalAndALockedOneIsNot() throws {
        let dir = TempDir("audit-writer")
        let locks = try lockDir(dir)
        let image = try Qemu.createImage(dir.file("vm.qcow2"))
        let w = try Qemu.unlockedWriter(image)
        defer { w.stop() }
        // Normal writers beside it: qemu-nbd (its own locks), and qemu-io without locking run
        // under `locksmith hold` (its parent holds the lock-file lock).
        let locked = try Qemu.createImage(dir.file("locked.qcow2"))
        let nbd = try Background(try Run.tool("qemu-nbd"), ["--persistent", "-k", dir.file("nbd.sock"), "-f", "qcow2", locked])
        defer { nbd.stop() }
        nbd.waitForLocks(on: locked, count: 4)
        let wrapped = try Qemu.createImage(dir.file("wrapped.qcow2"))
        let hold = try Background(Run.locksmith, ["hold", "--lock-dir", locks, wrapped, "--", try Run.tool("qemu-io"), "-c",
                                                  "sleep 60000", "--image-opts",
                                                  "driver=qcow2,file.driver=file,file.filename=\(wrapped),file.locking=off"])
        defer { hold.stop() }
        hold.waitForLocks(on: ImageLocker(lockDirectory: locks).lockFilePath(realPath: wrapped))
        waitForChildOpening(wrapped, parent: hold.pid)

        let a = try audit(["--lock-dir", locks])
        XCTAssertEqual(a.result.status, 1, "a critical finding: \(a.result)")
        let f = try a.finding("unlocked-writer", under: dir.path)
        XCTAssertEqual(f["severity"] as? String, "critical")
        XCTAssertEqual(f["image"] as? String, image)
        XCTAssertEqual(pids(f, role: "writer"), [w.pid])
        let h = try XCTUnwrap((f["holders"] as? [JSON])?.first)
        XCTAssertEqual(h["open_mode"] as? String, "read-write")
        XCTAssertEqual(h["command"] as? String, "qemu-io")
        XCTAssertNotNil(h["fd"] as? NSNumber)
        XCTAssertFalse((f["remedy"] as? String ?? "").isEmpty)
        XCTAssertFalse((f["evidence"] as? String ?? "").isEmpty)
        XCTAssertEqual(a.rules(under: dir.path).filter { $0 == "unlocked-writer" }.count, 1,
                       "qemu-nbd and the held qemu-io are not unlocked writers: \(a.under(dir.path))")
        XCTAssertFalse(a.rules(under: dir.path).contains("concurrent-writers"))

        // The text report says the same.
        let text = try Run.locksmith(["audit", "--lock-dir", locks])
        XCTAssertEqual(text.status, 1)
        XCTAssertTrue(text.stdout.contains("CRITICAL unlocked-writer  \(image)"), text.stdout)
        XCTAssertTrue(text.stdout.contains("pid \(w.pid) (qemu-io, user root) has it open read-write"), text.stdout)
    }

    /// `hold` spawns its command: wait until that child has the image open.
    func waitForChildOpening(_ path: String, parent: Int32, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            for p in ProcFS.pids(procRoot: "/proc") {
                guard let stat = ProcFS.read("/proc/\(p)/stat"), let close = stat.lastIndex(of: ")") else { continue }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                guard fields.count > 1, Int32(fields[1]) == parent else { continue }
                for fd in ProcFS.list("/proc/\(p)/fd") ?? [] where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/fd/\(fd)")) == path {
                    return
                }
            }
            usleep(20_000)
        }
        XCTFail("no child of \(parent) opened \(path)", file: file, line: line)
    }

    func testConcurrentWritersNamesBoth() throws {
        let dir = TempDir("audit-2w")
        let locks = try lockDir(dir)
        let image = try Qemu.createImage(dir.file("vm.qcow2"))
        let w1 = try Qemu.unlockedWriter(image)
        defer { w1.stop() }
        let w2 = try Qemu.unlockedWriter(image)
        defer { w2.stop() }
        // Readers beside a writer are not concurrent writers.
        let base = try Qemu.createImage(dir.file("base.qcow2"))
        let readers = try (0..<2).map { _ in
            try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 60000", base])
        }
        defer { readers.forEach { $0.stop() } }
        readers[0].waitForLocks(on: base, count: 6)

        let a = try audit(["--lock-dir", locks])
        XCTAssertEqual(a.result.status, 1)
        let f = try a.finding("concurrent-writers", under: dir.path)
        XCTAssertEqual(f["severity"] as? String, "critical")
        XCTAssertEqual(f["image"] as? String, image)
        XCTAssertEqual(pids(f), [w1.pid, w2.pid])
        XCTAssertEqual(pids(try a.finding("unlocked-writer", under: dir.path), role: "writer"), [w1.pid, w2.pid])
        XCTAssertTrue(a.under(dir.path).allSatisfy { $0["image"] as? String == image }, "nothing about the readers: \(a.under(dir.path))")
    }

    // MARK: lock files

    func testUnsafeLockFilesAndLockDir() throws {
        let dir = TempDir("audit-unsafe")
        let locks = try lockDir(dir)
        let locker = ImageLocker(lockDirectory: locks)
        let victim = dir.makeFile("victim")
        let planted = locker.lockFilePath(realPath: dir.makeFile("planted.img"))
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim)
        let fifo = locker.lockFilePath(realPath: dir.makeFile("fifo.img"))
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let ww = dir.makeFile("ww.img")
        XCTAssertEqual(try Run.locksmith(["hold", "--lock-dir", locks, ww, "--", "true"]).status, 0)
        chmod(locker.lockFilePath(realPath: ww), 0o666)
        let fine = dir.makeFile("fine.img")
        XCTAssertEqual(try Run.locksmith(["hold", "--lock-dir", locks, fine, "--", "true"]).status, 0)
        chmod(locks, 0o777)

        let a = try audit(["--lock-dir", locks, "--images", dir.path])
        XCTAssertEqual(a.result.status, 1)
        let unsafe = a.under(dir.path).filter { $0["rule"] as? String == "unsafe-lock-file" }
        func one(_ file: String) throws -> JSON {
            try XCTUnwrap(unsafe.first { ($0["files"] as? [String]) == [file] }, "nothing about \(file): \(unsafe)")
        }
        let s = try one(planted)
        XCTAssertEqual(s["severity"] as? String, "critical")
        XCTAssertTrue((s["evidence"] as? String ?? "").contains("symbolic link to \(victim)"))
        XCTAssertEqual(s["image"] as? String, dir.file("planted.img"))
        XCTAssertEqual(try one(fifo)["severity"] as? String, "critical")
        XCTAssertTrue((try one(fifo)["evidence"] as? String ?? "").contains("FIFO"))
        let w = try one(locker.lockFilePath(realPath: ww))
        XCTAssertEqual(w["severity"] as? String, "warning")
        XCTAssertTrue((w["evidence"] as? String ?? "").contains("world-writable (mode 0666)"))
        let d = try one(locks)
        XCTAssertEqual(d["severity"] as? String, "critical")
        XCTAssertTrue(d["image"] is NSNull)
        XCTAssertEqual(unsafe.count, 4, "nothing about fine.img's lock file: \(unsafe)")
        // The victim is untouched: a symlink is never followed.
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8).count, 1 << 20)

        // Sticky, 0755 and a 0644 file: no unsafe finding left but the planted ones.
        chmod(locks, 0o1777)
        chmod(locker.lockFilePath(realPath: ww), 0o644)
        let b = try audit(["--lock-dir", locks, "--images", dir.path])
        let left = b.under(dir.path).filter { $0["rule"] as? String == "unsafe-lock-file" }.compactMap { ($0["files"] as? [String])?.first }
        XCTAssertEqual(Set(left), [planted, fifo])
    }

    func testForeignHolderAndUnwritableLockFile() throws {
        let dir = TempDir("audit-foreign")
        chmod(dir.path, 0o755)
        let locks = try lockDir(dir)
        chmod(locks, 0o755)
        let image = dir.makeFile("secret.img")
        chmod(image, 0o600)  // root's; nobody cannot read it
        XCTAssertEqual(try Run.locksmith(["hold", "--lock-dir", locks, image, "--", "true"]).status, 0)  // 0644 lock file
        let nobody = try Background(try Run.tool("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", Run.locksmith,
                                                              "hold", "--shared", "--lock-dir", locks, image, "--", "sleep", "60"])
        defer { nobody.stop() }
        let lockFile = ImageLocker(lockDirectory: locks).lockFilePath(realPath: image)
        nobody.waitForLocks(on: lockFile)
        // An image owned by nobody whose lock file root created: nobody cannot lock it exclusively.
        let owned = dir.makeFile("nobodys.img")
        chown(owned, 65534, 65534)
        XCTAssertEqual(try Run.locksmith(["hold", "--lock-dir", locks, owned, "--", "true"]).status, 0)

        let a = try audit(["--lock-dir", locks, "--images", dir.path])
        let f = try a.finding("foreign-holder", under: dir.path)
        XCTAssertEqual(f["severity"] as? String, "warning")
        XCTAssertEqual(f["image"] as? String, image)
        let holders = try XCTUnwrap(f["holders"] as? [JSON])
        XCTAssertEqual(holders.count, 1, "\(holders)")
        XCTAssertEqual(holders.first?["user"] as? String, "nobody")
        XCTAssertEqual(holders.first?["mode"] as? String, "read")
        XCTAssertEqual(f["files"] as? [String], [lockFile])
        let u = try a.finding("unwritable-lock-file", under: dir.path)
        XCTAssertEqual(u["image"] as? String, owned)
        XCTAssertEqual(u["severity"] as? String, "warning")
        XCTAssertEqual(a.rules(under: dir.path).filter { $0 == "unwritable-lock-file" }.count, 1, "root's image is fine")

        // Readable by others, lock file given to its owner: both quiet.
        chmod(image, 0o644)
        chown(ImageLocker(lockDirectory: locks).lockFilePath(realPath: owned), 65534, 65534)
        let b = try audit(["--lock-dir", locks, "--images", dir.path])
        XCTAssertFalse(b.rules(under: dir.path).contains("foreign-holder"), "\(b.under(dir.path))")
        XCTAssertFalse(b.rules(under: dir.path).contains("unwritable-lock-file"), "\(b.under(dir.path))")
    }

    func testStaleAndUnmappedLockFilesAndFixRemovesOnlyStaleOnes() throws {
        let dir = TempDir("audit-stale")
        let locks = try lockDir(dir)
        let locker = ImageLocker(lockDirectory: locks)
        let stale = dir.makeFile("stale.img")
        XCTAssertEqual(try Run.locksmith(["hold", "--lock-dir", locks, stale, "--", "true"]).status, 0)
        let held = dir.makeFile("held.img")
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", locks, held, "--", "sleep", "60"])
        defer { holder.stop() }
        holder.waitForLocks(on: locker.lockFilePath(realPath: held))
        let orphan = locks + "/.qemu-" + String(repeating: "0", count: 40) + ".lock"
        _ = FileManager.default.createFile(atPath: orphan, contents: Data())
        let planted = locker.lockFilePath(realPath: dir.makeFile("planted.img"))
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: dir.makeFile("victim"))

        let a = try audit(["--lock-dir", locks])
        let staleFiles = a.under(dir.path).filter { $0["rule"] as? String == "stale-lock-file" }.compactMap { ($0["files"] as? [String])?.first }
        XCTAssertEqual(Set(staleFiles), [locker.lockFilePath(realPath: stale), orphan])
        XCTAssertTrue(a.under(dir.path).filter { $0["rule"] as? String == "stale-lock-file" }.allSatisfy { $0["severity"] as? String == "info" })
        let unmapped = try a.finding("unmapped-lock-file", under: dir.path)
        XCTAssertEqual(unmapped["files"] as? [String], [orphan])
        XCTAssertEqual(unmapped["severity"] as? String, "info")
        XCTAssertTrue(a.top["fixes"] is NSNull)
        XCTAssertEqual(a.result.status, a.expectedStatus())
        let strict = try Run.locksmith(["audit", "--fail-on", "info", "--lock-dir", locks])
        XCTAssertEqual(strict.status, 1, "info findings fail --fail-on info: \(strict)")

        let fixed = try audit(["--fix", "--lock-dir", locks])
        let fixes = try XCTUnwrap(fixed.top["fixes"] as? [JSON])
        let mine = fixes.filter { ($0["path"] as? String ?? "").hasPrefix(dir.path) }
        XCTAssertEqual(Set(mine.filter { $0["removed"] as? Bool == true }.compactMap { $0["path"] as? String }),
                       [locker.lockFilePath(realPath: stale), orphan])
        XCTAssertFalse(FileManager.default.fileExists(atPath: locker.lockFilePath(realPath: stale)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: orphan))
        XCTAssertTrue(FileManager.default.fileExists(atPath: locker.lockFilePath(realPath: held)), "a held lock file is kept")
        var st = stat()
        XCTAssertEqual(lstat(planted, &st), 0, "an unsafe entry is never touched by --fix")
        XCTAssertEqual(ProcLocks.rows(for: locker.lockFilePath(realPath: held)).filter { !$0.isWaiter }.count, 1)

        let text = try Run.locksmith(["audit", "--fix", "--lock-dir", locks])
        XCTAssertFalse(text.stdout.contains("stale-lock-file  \(stale)"), text.stdout)
    }

    /// `audit --fix` run again and again while a process takes and releases the lock
    /// (locking first, then checking that the path still names its file, as the core
    /// does) and checks, while it holds the lock, that its file is still at the path.
    func testFixRacingAConcurrentHolderNeverRemovesAHeldFile() throws {
        let dir = TempDir("audit-race")
        let locks = try lockDir(dir)
        let image = dir.makeFile("disk.img")
        let path = ImageLocker(lockDirectory: locks).lockFilePath(realPath: image)
        let stop = dir.file("stop")
        let script = """
            import fcntl, os, sys, time
            path, stop = sys.argv[1], sys.argv[2]
            held = violations = 0
            while not os.path.exists(stop):
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd); continue
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino:
                        os.close(fd); continue   # removed before we locked it: start over
                except FileNotFoundError:
                    os.close(fd); continue
                held += 1
                time.sleep(0.002)
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino: violations += 1
                except FileNotFoundError:
                    violations += 1
                os.close(fd)
                time.sleep(0.005)
            print(held, violations)
            """
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: try Run.tool("python3"))
        holder.arguments = ["-c", script, path, stop]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        // Until --fix has removed the file a few times and met it held at least once (a
        // scan of a busy host takes seconds: bounded by attempts, not by time).
        var removed = 0
        var kept = 0
        var attempts = 0
        // At least 30 rounds, however fast a scan is: the race must run long enough to matter.
        while (removed < 3 || kept < 1 || attempts < 30) && attempts < 200 && holder.isRunning {
            attempts += 1
            let r = try Run.locksmith(["audit", "--json", "--fix", "--lock-dir", locks])
            let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? JSON)
            for f in (top["fixes"] as? [JSON]) ?? [] where f["path"] as? String == path {
                if f["removed"] as? Bool == true { removed += 1 } else { kept += 1 }
            }
            // A scan that found the file held makes no stale finding: that counts as kept too.
            if !((top["fixes"] as? [JSON]) ?? []).contains(where: { $0["path"] as? String == path }) { kept += 1 }
        }
        _ = FileManager.default.createFile(atPath: stop, contents: Data())
        holder.waitUntilExit()
        let result = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(result.count, 2, "holder output")
        XCTAssertGreaterThan(result.first ?? 0, 20, "the holder never got going")
        XCTAssertEqual(result.last, 0, "a held lock file was removed under its holder")
        XCTAssertGreaterThanOrEqual(removed, 3, "--fix never removed the file between holds: the race was not run")
    }

    // MARK: shared storage, waiters

    func testLocalLockForAnImageOnAGlusterFuseMount() throws {
        let mount = try GlusterMount()
        defer { mount.unmount() }
        let dir = TempDir("audit-shared")
        let locks = try lockDir(dir)
        let sub = mount.path + "/audit-\(getpid())-\(Int(Date().timeIntervalSince1970))"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: sub) }
        let image = sub + "/vm.img"
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 16)))
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "sleep", "60"])
        defer { holder.stop() }
        holder.waitForLocks(on: ImageLocker(lockDirectory: locks).lockFilePath(realPath: image))
        let local = dir.makeFile("local.img")
        let localHolder = try Background(Run.locksmith, ["hold", "--lock-dir", locks, local, "--", "sleep", "60"])
        defer { localHolder.stop() }
        localHolder.waitForLocks(on: ImageLocker(lockDirectory: locks).lockFilePath(realPath: local))

        let a = try audit(["--lock-dir", locks])
        let f = try a.finding("local-lock-on-shared-storage", under: sub)
        XCTAssertEqual(f["severity"] as? String, "warning")
        XCTAssertEqual(f["image"] as? String, image)
        XCTAssertTrue((f["evidence"] as? String ?? "").contains("(fuse)"), "\(f)")
        XCTAssertEqual(pids(f), [holder.pid])
        XCTAssertEqual(a.all.filter { $0["rule"] as? String == "local-lock-on-shared-storage" && $0["image"] as? String == local }.count, 0)
    }

    func testBlockedWaiterPastTheThreshold() throws {
        let dir = TempDir("audit-wait")
        let locks = try lockDir(dir)
        let image = dir.makeFile("disk.img")
        let lockFile = ImageLocker(lockDirectory: locks).lockFilePath(realPath: image)
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "sleep", "60"])
        defer { holder.stop() }
        holder.waitForLocks(on: lockFile)
        // A real kernel waiter: a blocking F_SETLKW (`hold --wait` polls instead).
        let waiter = try Background(try Run.tool("python3"), ["-c", "import fcntl, sys\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX)\n", lockFile])
        defer { waiter.stop() }
        let deadline = Date().addingTimeInterval(15)
        while !ProcLocks.rows(for: lockFile).contains(where: \.isWaiter) && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(ProcLocks.rows(for: lockFile).contains(where: \.isWaiter), "no waiter appeared")

        let early = try audit(["--lock-dir", locks, "--wait-threshold", "30"])
        XCTAssertFalse(early.rules(under: dir.path).contains("blocked-waiter"), "\(early.under(dir.path))")
        sleep(3)
        let a = try audit(["--lock-dir", locks, "--wait-threshold", "2"])
        let f = try a.finding("blocked-waiter", under: dir.path)
        XCTAssertEqual(f["severity"] as? String, "warning")
        XCTAssertEqual(f["image"] as? String, image)
        XCTAssertEqual(pids(f, role: "waiter"), [waiter.pid])
        XCTAssertEqual(pids(f, role: "holder"), [holder.pid])
        let w = try XCTUnwrap((f["holders"] as? [JSON])?.first { $0["role"] as? String == "waiter" })
        let waited = try XCTUnwrap((w["waited_seconds"] as? NSNumber)?.doubleValue)
        XCTAssertGreaterThanOrEqual(waited, 2.5)
        XCTAssertLessThan(waited, 30)
        let fail = try Run.locksmith(["audit", "--fail-on", "warning", "--wait-threshold", "2", "--lock-dir", locks])
        XCTAssertEqual(fail.status, 1, "\(fail)")
    }

    // MARK: no false alarms

    func testCleanHostWithNormalHoldersRaisesNoWarningOrCritical() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let a = try audit(["--lock-dir", s.lockDir, "--images", s.dir.path])
        let serious = a.under(s.dir.path).filter { $0["severity"] as? String != "info" }
        XCTAssertEqual(serious.count, 0, "\(serious)")
        XCTAssertEqual(a.result.status, a.expectedStatus())
        XCTAssertNotNil(a.top["counts"] as? [String: Int])
        XCTAssertEqual(a.top["fail_on"] as? String, "critical")
    }

    func testUnreadableProcExits2AndBadSeverityIsAUsageError() throws {
        let r = try Run.locksmith(["audit", "--proc", "/nonexistent"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.hasPrefix("locksmith: cannot read /nonexistent"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(try Run.locksmith(["audit", "--fail-on", "bad"]).status, 64)
    }
}
