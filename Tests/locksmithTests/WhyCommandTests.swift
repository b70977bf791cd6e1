import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `locksmith why` against real QEMU processes holding real locks: the verdict must be
/// QEMU's (`qemu-io -c 'read 0 512'` for --write, `qemu-img info` for --read-only).
final class WhyCommandTests: XCTestCase {
    // MARK: - Helpers

    struct Why {
        var result: RunResult
        var json: [String: Any]
        var blockers: [[String: Any]] { json["blockers"] as? [[String: Any]] ?? [] }
        var blockerPids: [Int32] { blockers.compactMap { ($0["pid"] as? NSNumber)?.int32Value } }
        var qemuMessage: String? { json["qemu_message"] as? String }
        var reasonKinds: [String] { (json["reasons"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String } }
    }

    func why(_ args: [String], asNobody: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> Why {
        let r: RunResult
        if asNobody {
            r = try Run.capture(try Run.tool("setpriv"),
                                ["--reuid=65534", "--regid=65534", "--clear-groups", Run.locksmith, "why", "--json"] + args,
                                timeout: 20)
        } else {
            r = try Run.locksmith(["why", "--json"] + args, timeout: 20)
        }
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
        XCTAssertNotNil(obj, "why printed no JSON: \(r)", file: file, line: line)
        return Why(result: r, json: obj ?? [:])
    }

    func qemu(_ intent: String, _ image: String) throws -> RunResult {
        intent == "--write"
            ? try Run.capture(try Run.tool("qemu-io"), ["-c", "read 0 512", image], timeout: 20)
            : try Run.capture(try Run.tool("qemu-img"), ["info", image], timeout: 20)
    }

    /// The ground truth: for both intents, why's exit status is 0 exactly when QEMU's open
    /// succeeds, and when it fails, QEMU printed why's qemu_message (with its hint line).
    func assertSameAsQemu(_ image: String, lockDir: String, _ state: String,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        for intent in ["--write", "--read-only"] {
            let q = try qemu(intent, image)
            let w = try why([intent, "--lock-dir", lockDir, image])
            XCTAssertEqual(w.result.status, q.status == 0 ? 0 : 1, "\(state) \(intent): why \(w.result)\nQEMU \(q)",
                           file: file, line: line)
            if q.status == 0 {
                XCTAssertNil(w.qemuMessage, "\(state) \(intent)", file: file, line: line)
            } else {
                let m = try XCTUnwrap(w.qemuMessage, "\(state) \(intent): no qemu_message; QEMU said \(q.stderr)", file: file, line: line)
                XCTAssertTrue(q.stderr.contains(": " + m + "\n"), "\(state) \(intent): why says «\(m)», QEMU said «\(q.stderr)»",
                              file: file, line: line)
                XCTAssertTrue(m.contains("Failed to"), file: file, line: line)
            }
        }
    }

    func nbd(_ image: String, dir: TempDir, readOnly: Bool = false) throws -> Background {
        let p = try Background(try Run.tool("qemu-nbd"),
                               ["--persistent", "-k", dir.file("nbd-\(UUID().uuidString.prefix(6)).sock"), "-f", "qcow2"]
                               + (readOnly ? ["--read-only"] : []) + [image])
        p.waitForLocks(on: image, count: readOnly ? 3 : 4)
        return p
    }

    func reader(_ image: String) throws -> Background {
        let p = try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 30000", image])
        p.waitForLocks(on: image, count: 3)
        return p
    }

    /// OFD locks taken by this test process itself on `image` (a stand-in for a QEMU whose
    /// permissions qemu-utils cannot produce, such as a share-rw writer).
    final class OwnLocks {
        let fd: Int32
        init(_ path: String, bytes: [Int64] = [], wholeFileWrite: Bool = false) {
            fd = open(path, O_RDWR | O_CLOEXEC)
            precondition(fd >= 0)
            let ranges: [(Int64, Int64, Int16)] = wholeFileWrite ? [(0, 0, Int16(F_WRLCK))] : bytes.map { ($0, 1, Int16(F_RDLCK)) }
            for (start, len, type) in ranges {
                var fl = flock()
                fl.l_type = type
                fl.l_whence = Int16(SEEK_SET)
                fl.l_start = off_t(start)
                fl.l_len = off_t(len)
                let F_OFD_SETLK: Int32 = 37  // <fcntl.h> with _GNU_SOURCE; not visible from Glibc
                precondition(fcntl(fd, F_OFD_SETLK, &fl) == 0, "OFD lock failed")
            }
        }
        deinit { close(fd) }
    }

    func makeChain(_ dir: TempDir) throws -> (base: String, overlay: String) {
        let base = try Qemu.createImage(dir.file("base.qcow2"))
        let overlay = try Qemu.createImage(dir.file("vm.qcow2"), backing: "base.qcow2")
        return (base, overlay)
    }

    // MARK: - Ground truth

    func testVerdictsMatchQemuForWriterReaderAndFreeImage() throws {
        let dir = TempDir("why-gt")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        try assertSameAsQemu(image, lockDir: dir.path, "free")
        do {
            let w = try nbd(image, dir: dir)
            defer { w.stop() }
            try assertSameAsQemu(image, lockDir: dir.path, "qemu-nbd writer")
        }
        do {
            let r = try reader(image)
            defer { r.stop() }
            try assertSameAsQemu(image, lockDir: dir.path, "qemu-io -r reader")
        }
        do {
            let r = try nbd(image, dir: dir, readOnly: true)
            defer { r.stop() }
            try assertSameAsQemu(image, lockDir: dir.path, "qemu-nbd --read-only")
        }
        do {
            // A writer that shares write (share-rw=on): holds 100-101, 103; unshares resize only.
            let own = OwnLocks(image, bytes: [100, 101, 103, 203])
            defer { _ = own }
            try assertSameAsQemu(image, lockDir: dir.path, "share-rw writer")
            let w = try why(["--write", "--lock-dir", dir.path, image])
            XCTAssertEqual(w.qemuMessage, "Failed to get \"resize\" lock\nIs another process using the image [\(image)]?")
            XCTAssertEqual(w.blockerPids, [getpid()])
        }
        do {
            // A whole-file write lock: QEMU fails while setting its first byte lock.
            let own = OwnLocks(image, wholeFileWrite: true)
            defer { _ = own }
            try assertSameAsQemu(image, lockDir: dir.path, "whole-file write lock")
        }
        do {
            // flock(2) never conflicts with fcntl locks: QEMU opens, and why must agree.
            let fd = open(image, O_RDONLY | O_CLOEXEC)
            XCTAssertEqual(flock(fd, LOCK_EX), 0)
            defer { close(fd) }
            try assertSameAsQemu(image, lockDir: dir.path, "flock holder")
            XCTAssertEqual(try why(["--write", "--lock-dir", dir.path, image]).result.status, 0)
        }
        try assertSameAsQemu(image, lockDir: dir.path, "free again")
    }

    func testBackingChainVerdictsMatchQemu() throws {
        let dir = TempDir("why-chain")
        let (base, overlay) = try makeChain(dir)
        do {
            // A writer on the base: the overlay's read-write open fails on its backing file.
            let w = try nbd(base, dir: dir)
            defer { w.stop() }
            try assertSameAsQemu(overlay, lockDir: dir.path, "writer on base, asking about overlay")
            let v = try why(["--write", "--lock-dir", dir.path, overlay])
            XCTAssertEqual(v.qemuMessage, "Could not open backing file: Failed to get shared \"write\" lock\nIs another process using the image [\(base)]?")
            XCTAssertEqual(v.blockerPids, [w.pid])
        }
        do {
            // A reader of the base: writing the base fails, writing the overlay does not.
            let r = try reader(base)
            defer { r.stop() }
            try assertSameAsQemu(base, lockDir: dir.path, "reader on base")
            try assertSameAsQemu(overlay, lockDir: dir.path, "reader on base, asking about overlay")
            let v = try why(["--write", "--lock-dir", dir.path, base])
            XCTAssertEqual(v.qemuMessage, "Failed to get \"write\" lock\nIs another process using the image [\(base)]?")
            XCTAssertEqual(v.blockerPids, [r.pid])
        }
    }

    func testBaseOpenedThroughOverlayNamesHolderAndOverlay() throws {
        let dir = TempDir("why-via")
        let (base, overlay) = try makeChain(dir)
        let w = try nbd(overlay, dir: dir)
        defer { w.stop() }
        w.waitForLocks(on: base, count: 3)
        try assertSameAsQemu(base, lockDir: dir.path, "overlay served, asking about base")
        let v = try why(["--write", "--lock-dir", dir.path, base])
        XCTAssertEqual(v.result.status, 1)
        XCTAssertEqual(v.blockerPids, [w.pid])
        XCTAssertEqual(v.blockers.first?["via"] as? String, overlay)
        XCTAssertEqual(v.blockers.first?["command"] as? String, "qemu-nbd")
        XCTAssertEqual(v.blockers.first?["conflict"] as? [String], ["write", "resize"])
        // Asked about the overlay: the chain shows the base held by the same process via it.
        let o = try why(["--write", "--lock-dir", dir.path, overlay])
        let chain = try XCTUnwrap(o.json["chain"] as? [[String: Any]])
        XCTAssertEqual(chain.map { $0["path"] as? String }, [overlay, base])
        let baseHolders = try XCTUnwrap(chain[1]["holders"] as? [[String: Any]])
        XCTAssertEqual(baseHolders.first?["via"] as? String, overlay)
        XCTAssertEqual((baseHolders.first?["pid"] as? NSNumber)?.int32Value, w.pid)
        // Human output names the holder, the overlay and QEMU's words.
        let h = try Run.locksmith(["why", "--lock-dir", dir.path, base])
        XCTAssertEqual(h.status, 1)
        XCTAssertTrue(h.stdout.hasPrefix("\(base): won't open read-write"), h.stdout)
        XCTAssertTrue(h.stdout.contains("pid \(w.pid) qemu-nbd"), h.stdout)
        XCTAssertTrue(h.stdout.contains("via overlay \(overlay)"), h.stdout)
        XCTAssertTrue(h.stdout.contains("QEMU says: Failed to get \"write\" lock"), h.stdout)
        XCTAssertTrue(h.stdout.contains("remedy: "), h.stdout)
        XCTAssertTrue(h.stdout.contains("inferred: "), h.stdout)
    }

    // MARK: - Holders

    func testSeveralHoldersAreAllNamed() throws {
        let dir = TempDir("why-many")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        let r1 = try reader(image)
        defer { r1.stop() }
        let r2 = try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 30000", image])
        defer { r2.stop() }
        r2.waitForLocks(on: image, count: 6)
        let v = try why(["--write", "--lock-dir", dir.path, image])
        XCTAssertEqual(v.result.status, 1)
        XCTAssertEqual(Set(v.blockerPids), [r1.pid, r2.pid])
        XCTAssertEqual(v.blockers.compactMap { $0["command"] as? String }, ["qemu-io", "qemu-io"])
        XCTAssertEqual(v.blockers.compactMap { $0["open_mode"] as? String }, ["read-only", "read-only"])
        let h = try Run.locksmith(["why", "--lock-dir", dir.path, image])
        XCTAssertTrue(h.stdout.contains("blocked by 2 holders"), h.stdout)
        XCTAssertTrue(h.stdout.contains("pid \(r1.pid) qemu-io") && h.stdout.contains("pid \(r2.pid) qemu-io"), h.stdout)
        // Both only read: a read-only look opens.
        XCTAssertEqual(try why(["--read-only", "--lock-dir", dir.path, image]).result.status, 0)
    }

    func testLockFileHolderAndVMNameAndWaiter() throws {
        let dir = TempDir("why-lockfile")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        // `hold` keeps its own argv: a `-name guest=NAME` there is read as QEMU's VM name.
        let holder = try Background(Run.locksmith, ["hold", "--lock-dir", dir.path, image, "--",
                                                    "/bin/sh", "-c", "exec sleep 30", "-name", "guest=web1"])
        defer { holder.stop() }
        let lockFile = ImageLocker(lockDirectory: dir.path).lockFilePath(realPath: image)
        holder.waitForLocks(on: lockFile)
        // A process queued on the lock file (classic POSIX F_SETLKW).
        let waiter = try Background(try Run.tool("python3"), ["-c", "import fcntl; f=open('\(lockFile)','r+'); fcntl.lockf(f, fcntl.LOCK_EX)"])
        defer { waiter.stop() }
        let deadline = Date().addingTimeInterval(10)
        while !ProcLocks.rows(for: lockFile).contains(where: \.isWaiter) && Date() < deadline { usleep(10_000) }

        let v = try why(["--read-only", "--lock-dir", dir.path, image])
        XCTAssertEqual(v.result.status, 1, "\(v.result)")
        XCTAssertNil(v.qemuMessage, "QEMU does not use lock files")
        XCTAssertEqual(v.blockerPids, [holder.pid])
        XCTAssertEqual(v.blockers.first?["scheme"] as? String, "lockfile")
        XCTAssertEqual(v.blockers.first?["vm"] as? String, "web1")
        XCTAssertEqual(v.blockers.first?["conflict"] as? [String], ["exclusive"])
        let waiters = try XCTUnwrap(v.json["waiters"] as? [[String: Any]])
        XCTAssertEqual(waiters.compactMap { ($0["pid"] as? NSNumber)?.int32Value }, [waiter.pid])
        XCTAssertEqual(waiters.first?["waits_on"] as? String, lockFile)
        XCTAssertNotNil(waiters.first?["started"] as? String)
        let h = try Run.locksmith(["why", "--force", "--lock-dir", dir.path, image])
        XCTAssertTrue(h.stdout.contains("VM web1 (pid \(holder.pid))"), h.stdout)
        XCTAssertTrue(h.stdout.contains("waiting: pid \(waiter.pid) (python3)"), h.stdout)
        XCTAssertTrue(h.stdout.contains("proven: "), h.stdout)
    }

    // MARK: - --force

    func testForceProvesAndLeavesLocksAndLockDirAsBefore() throws {
        let dir = TempDir("why-force")
        let lockDir2 = TempDir("why-force-2")
        let (base, overlay) = try makeChain(dir)
        let w = try nbd(overlay, dir: dir)
        defer { w.stop() }
        w.waitForLocks(on: base, count: 3)
        let holder = try Background(Run.locksmith, ["hold", "--shared", "--lock-dir", dir.path, base, "--", "sleep", "30"])
        defer { holder.stop() }
        holder.waitForLocks(on: ImageLocker(lockDirectory: dir.path).lockFilePath(realPath: base))
        func listing(_ d: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).sorted().map { name in
                let a = try? FileManager.default.attributesOfItem(atPath: d + "/" + name)
                return "\(name) \(a?[.size] ?? "") \(a?[.modificationDate] ?? "")"
            }
        }
        // The kernel's rows on every file of both dirs (other worktrees' tests lock other
        // files concurrently, so the whole table is not stable), without their IDs.
        func table() -> [String] {
            ([dir.path, lockDir2.path].flatMap { d in
                ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).flatMap { ProcLocks.rows(for: d + "/" + $0) }
            }).map { "\($0.kind) \($0.type) \($0.pid ?? -1) \($0.inode ?? 0) \($0.start) \($0.end ?? -1) \($0.isWaiter)" }.sorted()
        }
        let before = (table(), listing(dir.path), listing(lockDir2.path))
        XCTAssertEqual(before.0.count, 8, "nbd: 4 rows on the overlay (100-101 merged), 3 on the base; hold: 1 on the lock file")
        for args in [["--write", base], ["--read-only", base], ["--write", overlay], ["--read-only", overlay]] {
            let v = try why(["--force", "--lock-dir", dir.path, "--lock-dir", lockDir2.path] + args)
            XCTAssertEqual(v.json["proven"] as? Bool, true, "\(args): \(v.result)")
            XCTAssertEqual(table(), before.0, "\(args) changed the kernel's locks")
            XCTAssertEqual(listing(dir.path), before.1, "\(args) changed the lock dir")
            XCTAssertEqual(listing(lockDir2.path), before.2, "\(args) changed the second lock dir")
        }
        let v = try why(["--force", "--write", "--lock-dir", dir.path, "--lock-dir", lockDir2.path, base])
        XCTAssertEqual(v.result.status, 1)
        XCTAssertEqual(Set(v.blockerPids), [w.pid, holder.pid])
        XCTAssertEqual(v.blockers.compactMap { $0["proven"] as? Bool }, [true, true])
        // A read-only look at the base: the shared lock file lock and the reader coexist.
        XCTAssertEqual(try why(["--force", "--read-only", "--lock-dir", dir.path, base]).result.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: ImageLocker(lockDirectory: lockDir2.path).lockFilePath(realPath: base)),
                       "--force never creates a lock file")
    }

    // MARK: - Where the locks are read

    /// Root reads the holders' fdinfo; a user who cannot list root's fds cannot, and the
    /// kernel's table answers: the same refusal, each fact naming its source.
    func testAUserWhoCannotSeeTheHoldersFilesGetsTheTablesAnswer() throws {
        let dir = TempDir("why-source")
        XCTAssertEqual(chmod(dir.path, 0o755), 0)
        let image = try Qemu.createImage(dir.file("vm.qcow2"))
        XCTAssertEqual(chmod(image, 0o644), 0)
        let locks = TempDir("why-source-locks")
        XCTAssertEqual(chmod(locks.path, 0o1777), 0)
        let writer = try nbd(image, dir: dir)
        defer { writer.stop() }
        func facts(_ v: Why) -> [String] { (v.json["facts"] as? [[String: Any]] ?? []).compactMap { $0["statement"] as? String } }
        let root = try why(["--read-only", "--lock-dir", locks.path, image])
        let nobody = try why(["--read-only", "--lock-dir", locks.path, image], asNobody: true)
        for (v, source) in [(root, "(from fdinfo)"), (nobody, "(from /proc/locks)")] {
            XCTAssertEqual(v.result.status, 1, "\(v.result)")
            XCTAssertEqual(v.qemuMessage, root.qemuMessage)
            XCTAssertTrue(facts(v).contains { $0.hasPrefix("QEMU's lock checks on the image fail") && $0.hasSuffix(source) }, "\(facts(v))")
        }
        XCTAssertEqual(root.blockerPids, [writer.pid])
    }

    // MARK: - Reasons that are not locks

    func testReasonsThatAreNotLocks() throws {
        let dir = TempDir("why-reasons")
        let image = try Qemu.createImage(dir.file("disk.qcow2"))
        func expect(_ args: [String], status: Int32, kind: String?, nobody: Bool = false,
                    file: StaticString = #filePath, line: UInt = #line) throws {
            let start = Date()
            let v = try why(args, asNobody: nobody, file: file, line: line)
            XCTAssertLessThan(Date().timeIntervalSince(start), 10, "\(args) took too long", file: file, line: line)
            XCTAssertEqual(v.result.status, status, "\(args): \(v.result)", file: file, line: line)
            if let kind { XCTAssertEqual(v.reasonKinds, [kind], "\(args)", file: file, line: line) }
        }
        try expect(["--lock-dir", dir.path, dir.file("missing.qcow2")], status: 1, kind: "image-missing")
        try FileManager.default.createDirectory(atPath: dir.file("d"), withIntermediateDirectories: false)
        try expect(["--lock-dir", dir.path, dir.file("d")], status: 1, kind: "not-a-disk")
        XCTAssertEqual(mkfifo(dir.file("fifo"), 0o644), 0)
        try expect(["--read-only", "--lock-dir", dir.path, dir.file("fifo")], status: 1, kind: "not-a-disk")
        try expect(["--lock-dir", dir.path, "/dev/null"], status: 1, kind: "not-a-disk")
        try expect(["--lock-dir", dir.file("nolockdir"), image], status: 1, kind: "lock-dir-missing")

        // Lock files that cannot be used: a symlink, a FIFO (must not hang).
        let lfDir = TempDir("why-lf")
        let lockFile = ImageLocker(lockDirectory: lfDir.path).lockFilePath(realPath: image)
        try FileManager.default.createSymbolicLink(atPath: lockFile, withDestinationPath: "/etc/passwd")
        try expect(["--lock-dir", lfDir.path, image], status: 1, kind: "lock-file-symlink")
        try FileManager.default.removeItem(atPath: lockFile)
        XCTAssertEqual(mkfifo(lockFile, 0o644), 0)
        try expect(["--read-only", "--lock-dir", lfDir.path, image], status: 1, kind: "lock-file-not-regular")
        try FileManager.default.removeItem(atPath: lockFile)

        // As user nobody: permissions.
        let err = try Run.capture(try Run.tool("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                           Run.locksmith, "why", "--lock-dir", "/tmp", image])
        XCTAssertEqual(err.status, 2, "the temp dir is 0700: nobody cannot reach the image: \(err)")
        XCTAssertEqual(err.stderr.split(separator: "\n").count, 1, err.stderr)
        XCTAssertTrue(err.stderr.hasPrefix("locksmith: "), err.stderr)

        XCTAssertEqual(chmod(dir.path, 0o755), 0)
        let open = TempDir("why-open")
        XCTAssertEqual(chmod(open.path, 0o1777), 0)
        try expect(["--write", "--lock-dir", open.path, image], status: 1, kind: "not-writable", nobody: true)
        try expect(["--read-only", "--lock-dir", open.path, image], status: 0, kind: nil, nobody: true)
        try expect(["--read-only", "--lock-dir", dir.path, image], status: 1, kind: "lock-dir-not-writable", nobody: true)
        // A lock file owned by root, mode 0644: fine for a shared lock, not for an exclusive one.
        let lf = ImageLocker(lockDirectory: open.path).lockFilePath(realPath: image)
        XCTAssertTrue(FileManager.default.createFile(atPath: lf, contents: Data((image + "\n").utf8),
                                                     attributes: [.posixPermissions: 0o644]))
        let copy = dir.file("copy.qcow2")
        try FileManager.default.copyItem(atPath: image, toPath: copy)
        XCTAssertEqual(chmod(copy, 0o666), 0)
        try expect(["--write", "--lock-dir", open.path, copy], status: 0, kind: nil, nobody: true)
        try FileManager.default.removeItem(atPath: lf)
        XCTAssertTrue(FileManager.default.createFile(atPath: ImageLocker(lockDirectory: open.path).lockFilePath(realPath: copy),
                                                     contents: nil, attributes: [.posixPermissions: 0o644]))
        try expect(["--write", "--lock-dir", open.path, copy], status: 1, kind: "lock-file-not-writable", nobody: true)
        try expect(["--read-only", "--lock-dir", open.path, copy], status: 0, kind: nil, nobody: true)
        XCTAssertEqual(chmod(image, 0o600), 0)
        try expect(["--read-only", "--lock-dir", open.path, image], status: 1, kind: "not-readable", nobody: true)
    }

    func testBackingChainProblems() throws {
        let dir = TempDir("why-chainprob")
        let (base, overlay) = try makeChain(dir)
        // A missing backing file stops a read-write open, not qemu-img info.
        try FileManager.default.removeItem(atPath: base)
        let w = try why(["--write", "--lock-dir", dir.path, overlay])
        XCTAssertEqual(w.result.status, 1)
        XCTAssertEqual(w.reasonKinds, ["backing-missing"])
        XCTAssertNotEqual(try qemu("--write", overlay).status, 0)
        XCTAssertEqual(try why(["--read-only", "--lock-dir", dir.path, overlay]).result.status, 0)
        XCTAssertEqual(try qemu("--read-only", overlay).status, 0)
        // A loop (made with qemu-img rebase -u) is reported, and never followed forever.
        try Qemu.createImage(base)
        let r = try Run.capture(try Run.tool("qemu-img"), ["rebase", "-u", "-f", "qcow2", "-b", "vm.qcow2", "-F", "qcow2", base])
        XCTAssertEqual(r.status, 0, "\(r)")
        let l = try why(["--write", "--lock-dir", dir.path, overlay])
        let chain = try XCTUnwrap(l.json["chain"] as? [[String: Any]])
        XCTAssertEqual(chain.count, 3)
        XCTAssertTrue((chain[2]["problem"] as? String)?.contains("loop") ?? false, "\(chain)")
    }
}
