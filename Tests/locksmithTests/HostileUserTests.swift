import _TestSupport
import Foundation
import ImageLock
import XCTest

/// Issue 15, "hostile local users": root runs locksmith, another user plants files, renames
/// directories and starts processes. Each case is played with real processes (the hostile
/// ones running as `nobody` through util-linux's setpriv), real planted files and real
/// races, bounded by rounds; each asserts the safe outcome.
final class HostileUserTests: XCTestCase {
    typealias JSON = [String: Any]

    /// argv running `args` as nobody:nogroup with no supplementary groups.
    func asNobody(_ args: [String]) throws -> (String, [String]) {
        (try Run.tool("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", "--"] + args)
    }

    /// The system's python3 (one in root's home would not run as nobody).
    var systemPython: String { "/usr/bin/python3" }

    /// argv running `exe args` with `dir` as its working directory.
    func inDirectory(_ dir: String, _ exe: String, _ args: [String]) -> (String, [String]) {
        ("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", dir, exe] + args)
    }

    /// Waits until some process has `path` open (a child of a holder, say).
    func waitUntilOpen(_ path: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(pid) != nil {
                let fdDir = "/proc/\(pid)/fd"
                for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
                where (try? FileManager.default.destinationOfSymbolicLink(atPath: fdDir + "/" + fd)) == path {
                    return
                }
            }
            usleep(20_000)
        }
        XCTFail("nobody opened \(path) within \(timeout) s", file: file, line: line)
    }

    func json(_ r: RunResult, file: StaticString = #filePath, line: UInt = #line) throws -> JSON {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? JSON, "\(r)", file: file, line: line)
    }

    // MARK: 5. A relative --lock-dir

    /// `list` and `audit` with `--lock-dir locks` (relative to the working directory) while
    /// `locksmith hold` holds the image's lock file there and its child writes the image:
    /// the holder is named, and its child's write is covered (no unlocked-writer).
    func testARelativeLockDirKeepsItsHolders() throws {
        let dir = TempDir("rel-lockdir")
        try FileManager.default.createDirectory(atPath: dir.file("locks"), withIntermediateDirectories: false)
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        let lockFile = ImageLocker(lockDirectory: dir.file("locks")).lockFilePath(realPath: image)
        let (exe, args) = inDirectory(dir.path, Run.locksmith, [
            "hold", "--lock-dir", "locks", "disk.qcow2", "--", try Run.tool("qemu-io"), "-c", "sleep 60000",
            "--image-opts", "driver=qcow2,file.driver=file,file.filename=\(image),file.locking=off",
        ])
        let holder = try Background(exe, args)
        defer { holder.stop() }
        holder.waitForLocks(on: lockFile)
        waitUntilOpen(image)

        let (lexe, largs) = inDirectory(dir.path, Run.locksmith, ["list", "--json", "--lock-dir", "locks"])
        let list = try json(try Run.capture(lexe, largs))
        let row = try XCTUnwrap((list["images"] as? [JSON])?.first { $0["path"] as? String == image }, "\(list)")
        let pids = ((row["holders"] as? [JSON]) ?? []).compactMap { ($0["pid"] as? NSNumber)?.int32Value }
        XCTAssertEqual(pids, [holder.pid], "list names the holder: \(row)")
        XCTAssertEqual(row["lock_files"] as? [String], [lockFile])

        let (aexe, aargs) = inDirectory(dir.path, Run.locksmith, ["audit", "--json", "--lock-dir", "locks"])
        let audit = try json(try Run.capture(aexe, aargs))
        let mine = ((audit["findings"] as? [JSON]) ?? []).filter { ($0["image"] as? String) == image }
        XCTAssertFalse(mine.contains { $0["rule"] as? String == "unlocked-writer" }, "\(mine)")
        XCTAssertFalse(mine.contains { $0["rule"] as? String == "stale-lock-file" }, "\(mine)")
    }
}

extension HostileUserTests {
    /// A directory owned by nobody inside a fresh temp dir that nobody can reach.
    func nobodysDirectory(_ parent: TempDir, _ name: String = "home") throws -> String {
        XCTAssertEqual(chmod(parent.path, 0o755), 0)
        let p = parent.file(name)
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: false)
        XCTAssertEqual(chown(p, 65534, 65534), 0)
        return p
    }

    /// Runs `exe args` as nobody in `dir`; fails the test when it does not exit 0.
    @discardableResult
    func runAsNobody(in dir: String, _ exe: String, _ args: [String], expect status: Int32? = 0,
                     file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let (sexe, sargs) = try asNobody([exe] + args)
        let (e, a) = inDirectory(dir, sexe, sargs)
        let r = try Run.capture(e, a)
        if let s = status { XCTAssertEqual(r.status, s, "\(exe) \(args): \(r)", file: file, line: line) }
        return r
    }

    // MARK: 10. A qcow2 backing loop

    /// A user makes a.qcow2 backed by b.qcow2 backed by a.qcow2. QEMU refuses it (real
    /// qemu-io fails to open it read-write; qemu-img info --backing-chain names the loop):
    /// `why` says "won't open" (exit 1), with qemu-img's words and the loop's members.
    func testABackingLoopWontOpenAndIsNamed() throws {
        let tmp = TempDir("loop")
        let home = try nobodysDirectory(tmp)
        let qemuImg = try Run.tool("qemu-img")
        try runAsNobody(in: home, qemuImg, ["create", "-q", "-f", "qcow2", "b.qcow2", "1M"])
        try runAsNobody(in: home, qemuImg, ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "b.qcow2", "a.qcow2"])
        try runAsNobody(in: home, qemuImg, ["rebase", "-u", "-F", "qcow2", "-b", "a.qcow2", "b.qcow2"])

        let (qe, qa) = inDirectory(home, try Run.tool("qemu-io"), ["-c", "read 0 512", "a.qcow2"])
        let qemuIO = try Run.capture(qe, qa, timeout: 30)
        XCTAssertNotEqual(qemuIO.status, 0, "QEMU opened the loop: \(qemuIO)")
        let (ie, ia) = inDirectory(home, qemuImg, ["info", "--backing-chain", "a.qcow2"])
        let info = try Run.capture(ie, ia, timeout: 30)
        XCTAssertNotEqual(info.status, 0, "\(info)")
        // qemu-img's own sentence, as it printed it.
        let said = try XCTUnwrap(info.stderr.split(separator: "\n").first { $0.contains("infinite loop") }, "\(info)")
        let sentence = String(said.drop(while: { $0 != "B" }).prefix(while: { $0 != "." }))
        XCTAssertTrue(sentence.hasPrefix("Backing file '"), "\(said)")

        let (we, wa) = inDirectory(home, Run.locksmith, ["why", "--lock-dir", home, "a.qcow2"])
        let why = try Run.capture(we, wa, timeout: 30)
        XCTAssertEqual(why.status, 1, "\(why)")
        XCTAssertTrue(why.stdout.hasPrefix("\(home)/a.qcow2: won't open read-write\n"), why.stdout)
        XCTAssertTrue(why.stdout.contains(sentence), "qemu-img says \(sentence): \(why.stdout)")
        XCTAssertTrue(why.stdout.contains("a.qcow2 -> b.qcow2 -> a.qcow2"), why.stdout)

        let (je, ja) = inDirectory(home, Run.locksmith, ["why", "--json", "--lock-dir", home, "a.qcow2"])
        let verdict = try json(try Run.capture(je, ja, timeout: 30))
        XCTAssertEqual(verdict["outcome"] as? String, "fails", "\(verdict)")
        let kinds = ((verdict["reasons"] as? [JSON]) ?? []).compactMap { $0["kind"] as? String }
        XCTAssertEqual(kinds, ["backing-loop"], "\(verdict)")
    }
}

extension HostileUserTests {
    // MARK: 9. A world-writable lock dir without the sticky bit

    /// In a real 0777 lock dir, `hold` and `try` warn in one line and go on; `--strict`
    /// refuses (exit 2, the command is not run, no lock file is made). The warning is true:
    /// while root's `hold` holds the lock, nobody deletes the lock file, and a second
    /// exclusive `hold` then runs at the same time. With the sticky bit: no warning, and
    /// nobody's delete fails.
    func testAWorldWritableLockDirWithoutStickyBitIsWarnedAndRefusedWithStrict() throws {
        let tmp = TempDir("open-lockdir")
        XCTAssertEqual(chmod(tmp.path, 0o755), 0)
        let locks = tmp.file("locks")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        XCTAssertEqual(chmod(locks, 0o777), 0)
        let image = tmp.makeFile("disk.img")
        let lockFile = ImageLocker(lockDirectory: locks).lockFilePath(realPath: image)
        let marker = tmp.file("ran")

        let strictHold = try Run.locksmith(["hold", "--strict", "--lock-dir", locks, image, "--", "/usr/bin/touch", marker])
        XCTAssertEqual(strictHold.status, 2, "\(strictHold)")
        XCTAssertEqual(strictHold.stderr.split(separator: "\n").count, 1, strictHold.stderr)
        XCTAssertTrue(strictHold.stderr.contains("refusing to lock (--strict): lock dir \(locks) is world-writable without the sticky bit (mode 0777)"),
                      strictHold.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "--strict ran the command")
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockFile), "--strict made a lock file")
        let strictTry = try Run.locksmith(["try", "--strict", "--lock-dir", locks, image])
        XCTAssertEqual(strictTry.status, 2, "\(strictTry)")
        XCTAssertEqual(strictTry.stdout, "")

        let tried = try Run.locksmith(["try", "--lock-dir", locks, image])
        XCTAssertEqual(tried.status, 0, "\(tried)")
        XCTAssertEqual(tried.stderr.split(separator: "\n").count, 1, tried.stderr)
        XCTAssertTrue(tried.stderr.hasPrefix("locksmith: warning: lock dir \(locks) is world-writable without the sticky bit"), tried.stderr)
        let ran = try Run.locksmith(["hold", "--lock-dir", locks, image, "--", "/bin/sh", "-c", "exit 7"])
        XCTAssertEqual(ran.status, 7, "the command's status passes through: \(ran)")
        XCTAssertTrue(ran.stderr.hasPrefix("locksmith: warning: "), ran.stderr)

        // Why: root holds the lock, nobody deletes the held file, a second holder gets in.
        let first = try Background(Run.locksmith, ["hold", "--lock-dir", locks, image, "--", "/bin/sleep", "60"])
        defer { first.stop() }
        first.waitForLocks(on: lockFile)
        try runAsNobody(in: tmp.path, "/bin/rm", ["-f", lockFile])
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockFile), "nobody could not delete the held lock file")
        let second = try Run.locksmith(["hold", "--lock-dir", locks, image, "--", "/bin/true"])
        XCTAssertEqual(second.status, 0, "a second exclusive holder ran beside the first: \(second)")

        // With the sticky bit: quiet, and the held file stays.
        first.stop()
        XCTAssertEqual(chmod(locks, 0o1777), 0)
        let safe = try Background(Run.locksmith, ["hold", "--strict", "--lock-dir", locks, image, "--", "/bin/sleep", "60"])
        defer { safe.stop() }
        safe.waitForLocks(on: lockFile)
        let rm = try runAsNobody(in: tmp.path, "/bin/rm", ["-f", lockFile], expect: nil)
        XCTAssertNotEqual(rm.status, 0, "\(rm)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: lockFile))
        let quiet = try Run.locksmith(["try", "--strict", "--lock-dir", locks, image])
        XCTAssertEqual(quiet.status, 1, "\(quiet)")
        XCTAssertEqual(quiet.stderr, "")
    }
}

/// Counts the opens of a FIFO for reading: a thread waits in a blocking open for writing,
/// which returns once any reader has opened it, however briefly (fifo_open waits for the
/// reader count to change).
final class FIFOReaderWatch: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var opens = 0
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    init(_ path: String) {
        self.path = path
        Thread { [self] in
            while true {
                let fd = open(path, O_WRONLY | O_CLOEXEC)
                lock.lock()
                let stop = stopping
                if !stop && fd >= 0 { opens += 1 }
                lock.unlock()
                if fd >= 0 { close(fd) }
                if stop || fd < 0 { break }
            }
            finished.signal()
        }.start()
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return opens
    }

    /// Waits (up to `timeout` seconds) until `count` reaches `n`.
    func wait(for n: Int, timeout: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while count < n && Date() < deadline { usleep(1_000) }
        return count >= n
    }

    /// Ends the watching thread (by opening the FIFO for reading itself, not counted).
    func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        _ = finished.wait(timeout: .now() + 5)
        if fd >= 0 { close(fd) }
    }
}

extension HostileUserTests {
    /// A python loop, run as nobody in `dir`, that swaps `name` with each of `others` in
    /// turn by renameat2(RENAME_EXCHANGE) until a file `stop` appears; it then writes how
    /// many swaps it made to `swaps`.
    func exchangeLoop(in dir: String, _ name: String, with others: [String]) throws -> Background {
        let script = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            name = sys.argv[1].encode(); others = [o.encode() for o in sys.argv[2:]]
            n = 0
            while not os.path.exists("stop"):
                for o in others:
                    if libc.renameat2(-100, name, -100, o, 2) == 0: n += 1
            open("swaps", "w").write(str(n))
            """
        let (exe, args) = try asNobody([systemPython, "-c", script, name] + others)
        let (e, a) = inDirectory(dir, exe, args)
        return try Background(e, a)
    }

    /// Ends an `exchangeLoop` and returns how many swaps it made.
    func stopExchangeLoop(_ loop: Background, in dir: String) -> Int {
        FileManager.default.createFile(atPath: dir + "/stop", contents: Data())
        loop.process.waitUntilExit()
        return Int((try? String(contentsOfFile: dir + "/swaps", encoding: .utf8)) ?? "") ?? 0
    }

    // MARK: 6. why raced into opening a FIFO

    /// nobody's overlay names base.img as its backing file, and nobody keeps swapping
    /// base.img with a FIFO and with a symlink to that FIFO. Root runs `why` (and `why
    /// --force`, which test-acquires the chain's locks) round after round: no run ever opens
    /// the FIFO (a thread blocked opening it for writing would return), and no run hangs.
    func testWhyNeverOpensAFIFOSwappedInForABackingFile() throws {
        let tmp = TempDir("fifo-race")
        let home = try nobodysDirectory(tmp)
        let qemuImg = try Run.tool("qemu-img")
        try runAsNobody(in: home, qemuImg, ["create", "-q", "-f", "raw", "base.img", "1M"])
        try runAsNobody(in: home, qemuImg, ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.img", "overlay.qcow2"])
        try runAsNobody(in: home, "/usr/bin/mkfifo", ["fifo"])
        try runAsNobody(in: home, "/bin/ln", ["fifo", "fifo.pin"])
        try runAsNobody(in: home, "/bin/ln", ["-s", "fifo.pin", "link"])

        let watch = FIFOReaderWatch(home + "/fifo.pin")
        defer { watch.stop() }
        // The detector detects: a reader's open (as the old `why` made) is counted.
        let probe = open(home + "/fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(probe, 0)
        XCTAssertTrue(watch.wait(for: 1), "the watch missed a reader")
        close(probe)
        usleep(200_000)  // the watch counts opens while the probe's reader is still open
        let before = watch.count

        let loop = try exchangeLoop(in: home, "base.img", with: ["fifo", "link"])
        var outcomes: [Int32: Int] = [:]
        var sawFIFO = 0, sawRegular = 0
        for round in 0..<120 {
            let args = ["why"] + (round % 2 == 1 ? ["--force"] : []) + ["--lock-dir", home, home + "/overlay.qcow2"]
            let r = try Run.locksmith(args, timeout: 20)
            outcomes[r.status, default: 0] += 1
            XCTAssertTrue([0, 1, 2].contains(r.status), "round \(round): \(r)")
            if r.stdout.contains("FIFO") || r.stdout.contains("symbolic link") { sawFIFO += 1 }
            if r.stdout.contains("base.img (raw)") { sawRegular += 1 }
        }
        let swaps = stopExchangeLoop(loop, in: home)
        XCTAssertEqual(watch.count - before, 0, "a why run opened the FIFO; outcomes \(outcomes)")
        XCTAssertGreaterThan(swaps, 1000, "the swapper hardly ran")
        XCTAssertGreaterThan(sawFIFO, 0, "no run met the FIFO: the race was not run (outcomes \(outcomes))")
        XCTAssertGreaterThan(sawRegular, 0, "no run met the regular file (outcomes \(outcomes))")
    }
}

extension HostileUserTests {
    // MARK: 1. hold: signals through a pidfd, status kept with SIGCHLD ignored

    /// Started with SIGCHLD ignored (inherited across exec), `hold` still passes the
    /// command's status through (it exited 127: the kernel reaped the child itself).
    func testHoldKeepsTheCommandsStatusWhenStartedWithSIGCHLDIgnored() throws {
        let dir = TempDir("hold-sigchld")
        let image = dir.makeFile("disk.img")
        let ignoring = "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
        for status in [0, 5] {
            let r = try Run.capture(systemPython, ["-c", ignoring, Run.locksmith, "hold", "--lock-dir", dir.path, image,
                                                   "--", "/bin/sh", "-c", "exit \(status)"])
            XCTAssertEqual(r.status, Int32(status), "\(r)")
            XCTAssertEqual(r.stderr, "")
        }
    }

    /// `hold` keeps a pidfd of its command from the spawn on (its fdinfo names the child's
    /// pid) and passes SIGTERM on through it: the command ends by it, hold exits 128+15.
    func testHoldForwardsSignalsThroughAPidfdOfItsCommand() throws {
        let dir = TempDir("hold-pidfd")
        let image = dir.makeFile("disk.img")
        let hold = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--", "/bin/sleep", "600"])
        defer { hold.stop() }
        let lockFile = ImageLocker(lockDirectory: dir.path).lockFilePath(realPath: image)
        hold.waitForLocks(on: lockFile)
        var child: Int32?
        let deadline = Date().addingTimeInterval(10)
        while child == nil && Date() < deadline {
            let kids = (try? String(contentsOfFile: "/proc/\(hold.pid)/task/\(hold.pid)/children", encoding: .utf8)) ?? ""
            child = kids.split(separator: " ").first.flatMap { Int32($0) }
            if child == nil { usleep(10_000) }
        }
        let pid = try XCTUnwrap(child, "hold started no command")
        let fdinfo = "/proc/\(hold.pid)/fdinfo"
        let pidfds = try FileManager.default.contentsOfDirectory(atPath: fdinfo).filter { fd in
            let text = (try? String(contentsOfFile: "\(fdinfo)/\(fd)", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").contains("Pid:\t\(pid)")
        }
        XCTAssertEqual(pidfds.count, 1, "hold holds no pidfd of its command \(pid)")
        kill(hold.pid, SIGTERM)
        hold.process.waitUntilExit()
        XCTAssertEqual(hold.process.terminationStatus, 128 + SIGTERM)
        XCTAssertNotEqual(kill(pid, 0), 0, "the command outlived hold")
    }
}

extension HostileUserTests {
    // MARK: 2. audit --fix through a swapped directory

    /// The lock dir is u/locks, and nobody owns u: nobody keeps swapping u/locks with u/alt,
    /// a symlink to another lock dir whose files (named as u/locks' stale ones) are held by
    /// a real process. Round after round root plants the stale files again and runs
    /// `audit --fix`: stale files are removed, and no held file ever is.
    func testAuditFixNeverRemovesAHeldFileThroughASwappedDirectory() throws {
        let tmp = TempDir("fix-race")
        let home = try nobodysDirectory(tmp, "u")
        let real = home + "/locks"
        let other = tmp.file("other")
        try FileManager.default.createDirectory(atPath: real, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        try runAsNobody(in: home, "/bin/ln", ["-s", other, "alt"])
        let names = (0..<300).map { ImageLocker.lockFileName(realPath: "/images/vm\($0).qcow2") }
        for n in names { XCTAssertTrue(FileManager.default.createFile(atPath: other + "/" + n, contents: Data())) }
        let script = """
            import fcntl, os, sys, time
            fds = [open(os.path.join(sys.argv[1], n), "r+") for n in sys.argv[2:]]
            for f in fds: fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            while True: time.sleep(60)
            """
        let holder = try Background(systemPython, ["-c", script, other] + names)
        defer { holder.stop() }
        holder.waitForLocks(on: other + "/" + names.last!)
        let held = Dictionary(uniqueKeysWithValues: names.map { ($0, ProcLocks.inode(of: other + "/" + $0)) })

        let realFD = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(realFD, 0)
        defer { close(realFD) }
        let loop = try exchangeLoop(in: home, "locks", with: ["alt"])
        var removed = 0, kept = 0
        var outcomes: [String: Int] = [:]
        var violations: [String] = []
        for round in 0..<20 {
            for n in names {  // the stale files, planted again in the real dir wherever it is now
                let fd = openat(realFD, n, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                if fd >= 0 { close(fd) }
            }
            let r = try Run.locksmith(["audit", "--json", "--fix", "--lock-dir", real], timeout: 120)
            XCTAssertTrue(r.status == 0 || r.status == 1, "round \(round): \(r)")
            let fixes = ((try? json(r))?["fixes"] as? [JSON]) ?? []
            removed += fixes.filter { $0["removed"] as? Bool == true }.count
            kept += fixes.filter { $0["removed"] as? Bool == false }.count
            for f in fixes { outcomes[f["outcome"] as? String ?? "?", default: 0] += 1 }
            for n in names where ProcLocks.inode(of: other + "/" + n) != held[n]! && !violations.contains(where: { $0.hasSuffix(n) }) {
                violations.append("round \(round): held \(n)")
            }
            XCTAssertEqual(ProcLocks.rows(for: other + "/" + names[0]).count, 1, "the holder let go")
        }
        let swaps = stopExchangeLoop(loop, in: home)
        XCTAssertEqual(violations.count, 0, "held files removed: \(violations.prefix(5)) (removed \(removed), kept \(kept), swaps \(swaps))")
        XCTAssertGreaterThan(removed, 0, "no stale file was ever removed: the fix did not run (kept \(kept))")
        XCTAssertGreaterThan(swaps, 1000, "the swapper hardly ran")
        print("audit --fix race: removed \(removed) stale, kept \(kept), \(swaps) swaps, \(violations.count) held removed; \(outcomes)")
    }
}
