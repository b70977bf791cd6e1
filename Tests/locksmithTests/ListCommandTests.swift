import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `locksmith list` run as a binary against real holders.
final class ListCommandTests: XCTestCase {
    func json(_ r: RunResult, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, "\(r)", file: file, line: line)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        return try XCTUnwrap(obj as? [String: Any], file: file, line: line)
    }

    func testJSONNamesEveryHolderAndAgreesWithProcLocks() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let r = try Run.locksmith(["list", "--json", "--lock-dir", s.lockDir])
        let top = try json(r)
        XCTAssertTrue(r.stdout.hasPrefix("{\"schema\":1,\"host\":"), r.stdout)
        XCTAssertNotNil(top["generated"] as? String)
        let images = try XCTUnwrap(top["images"] as? [[String: Any]])
        XCTAssertNotNil(top["unseen"] as? [Any])
        func image(_ path: String) throws -> [String: Any] {
            try XCTUnwrap(images.first { $0["path"] as? String == path }, "\(path) not listed")
        }
        func holders(_ img: [String: Any]) -> [[String: Any]] { img["holders"] as? [[String: Any]] ?? [] }
        func pids(_ img: [String: Any]) -> Set<Int32> { Set(holders(img).compactMap { ($0["pid"] as? NSNumber)?.int32Value }) }

        let w = try image(s.writable)
        XCTAssertEqual(w["schemes"] as? [String], ["qemu"])
        XCTAssertEqual(pids(w), [s.writer.pid])
        let wq = try XCTUnwrap(holders(w).first?["qemu"] as? [String: [String]])
        XCTAssertEqual(wq["held"], ["consistent read", "write", "resize"])
        XCTAssertEqual(wq["unshared"], ["write", "resize"])
        XCTAssertEqual(holders(w).first?["open_mode"] as? String, "read-write")

        let b = try image(s.base)
        XCTAssertEqual(pids(b), Set(s.readers.map(\.pid)))
        XCTAssertEqual(holders(b).count, 2)
        for h in holders(b) {
            let q = try XCTUnwrap(h["qemu"] as? [String: [String]])
            XCTAssertEqual(q["held"], ["consistent read"])
            XCTAssertTrue(q["unshared"]?.contains("write") ?? false)
            XCTAssertTrue(h["vm"] is NSNull, "vm must be present and null: \(h)")
            XCTAssertNotNil(h["fd"] as? NSNumber)
            XCTAssertEqual(h["args"] as? [String], ["\(try Run.tool("qemu-io"))", "-r", "-f", "qcow2", "-c", "sleep 60000", s.base])
        }

        let hd = try image(s.held)
        XCTAssertEqual(hd["schemes"] as? [String], ["lockfile"])
        XCTAssertEqual(hd["lock_files"] as? [String], [s.heldLockFile])
        XCTAssertEqual(pids(hd), [s.holder.pid])
        XCTAssertTrue(holders(hd).first?["qemu"] is NSNull)
        let py = try image(s.pyImage)
        XCTAssertEqual(pids(py), [s.python.pid])
        XCTAssertEqual(py["lock_files"] as? [String], [s.pyLockFile])

        // Agreement: every kernel row on the scenario's files is in the JSON, field for field.
        let files = [(s.writable, w), (s.base, b), (s.heldLockFile, hd), (s.pyLockFile, py)]
        for (path, img) in files {
            let listed = (img["locks"] as? [[String: Any]] ?? []).map { l in
                "\(l["type"]!) \(l["mode"]!) \(l["start"]!) \(l["end"].map { $0 is NSNull ? "EOF" : "\($0)" } ?? "?") \(l["inode"]!) \(l["dev"]!) \(l["pid"]!)"
            }.sorted()
            let kernel = ProcLocks.rows(for: path).filter { !$0.isWaiter }.map { l in
                "\(l.kind) \(l.type) \(l.start) \(l.end.map(String.init) ?? "EOF") \(l.inode!) \(l.device!) \(l.pid ?? -1)"
            }.sorted()
            XCTAssertFalse(kernel.isEmpty, path)
            XCTAssertEqual(listed, kernel, path)
        }
    }

    func testTableHasTheDefaultColumnsAndOneRowPerHolder() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let r = try Run.locksmith(["list", "--lock-dir", s.lockDir])
        XCTAssertEqual(r.status, 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first?.split(separator: " ").map(String.init),
                       ["IMAGE", "SCHEME", "MODE", "PID", "COMMAND", "VM", "USER", "AGE"])
        func row(_ pid: Int32) -> [String]? {
            lines.map { $0.split(separator: " ").map(String.init) }.first { $0.count > 3 && $0[3] == String(pid) }
        }
        XCTAssertEqual(row(s.writer.pid)?.prefix(5), [s.writable, "qemu", "rw", "\(s.writer.pid)", "qemu-nbd"])
        for reader in s.readers {
            XCTAssertEqual(row(reader.pid)?.prefix(5), [s.base, "qemu", "ro", "\(reader.pid)", "qemu-io"])
        }
        XCTAssertEqual(row(s.holder.pid)?.prefix(5), [s.held, "lockfile", "write", "\(s.holder.pid)", "locksmith"])
        XCTAssertEqual(row(s.python.pid)?.prefix(5), [s.pyImage, "lockfile", "write", "\(s.python.pid)", "python3"])

        let o = try Run.locksmith(["list", "--lock-dir", s.lockDir, "-o", "pid,fd,open,held,unshared,lockfile", "--no-headings"])
        let mine = o.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            .first { $0.first == String(s.writer.pid) }
        XCTAssertEqual(mine?.dropFirst(2).first, "rw")
        // pid fd open held unshared lockfile, where HELD "consistent read,write,resize" has a space.
        XCTAssertEqual(mine, ["\(s.writer.pid)", mine?[1] ?? "?", "rw", "consistent", "read,write,resize", "write,resize", "-"], "\(o)")
    }

    func testMissingProcRootExits2WithOneLine() throws {
        let r = try Run.locksmith(["list", "--proc", "/nonexistent-proc", "--lock-dir", "/nonexistent"])
        XCTAssertEqual(r.status, 2, "\(r)")
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("locksmith: cannot read /nonexistent-proc"), r.stderr)
    }

    func testUnknownColumnIsAUsageError() throws {
        let r = try Run.locksmith(["list", "-o", "pid,bogus"])
        XCTAssertEqual(r.status, 64, "\(r)")
        XCTAssertTrue(r.stderr.contains("unknown column 'bogus'"), r.stderr)
    }

    func testEmptyLockDirListsNothingAndExits0() throws {
        let dir = TempDir("emptylist")
        let r = try Run.locksmith(["list", "--json", "--lock-dir", dir.path, "--proc", try fakeProc(dir)])
        let top = try json(r)
        XCTAssertEqual((top["images"] as? [Any])?.count, 0)
        XCTAssertEqual((top["lock_files"] as? [Any])?.count, 0)
        let t = try Run.locksmith(["list", "--lock-dir", dir.path, "--proc", try fakeProc(dir)])
        XCTAssertEqual(t.status, 0)
        XCTAssertEqual(t.stdout, "IMAGE SCHEME MODE PID COMMAND VM USER AGE\n")
    }

    /// `list` reads the kernel's lock table from before main (Sources/LocksmithStart): the
    /// scan takes that read; a `list` of another proc root neither starts nor takes one.
    func testListTakesTheTableReadBeforeMain() throws {
        let dir = TempDir("earlyread")
        let r = try Run.locksmith(["list", "--timing", "--lock-dir", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("/proc/locks ") && r.stderr.contains("(read from before main)"), r.stderr)
        let other = try Run.locksmith(["list", "--timing", "--lock-dir", dir.path, "--proc", "/proc"])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertTrue(other.stderr.contains("timing: total") && !other.stderr.contains("before main"), other.stderr)
        // The audited scan takes it too, and times itself.
        let audited = try Run.locksmith(["list", "--audit", "--json", "--timing", "--lock-dir", dir.path])
        XCTAssertEqual(audited.status, 0, audited.stderr)
        XCTAssertTrue(audited.stderr.contains("(read from before main)") && !audited.stderr.contains("total 0.0 ms"), audited.stderr)
    }

    func fakeProc(_ dir: TempDir) throws -> String {
        let p = dir.file("proc")
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: p + "/locks", contents: Data())
        return p
    }

    func testUnknownImageHasNullPath() throws {
        let dir = TempDir("nullpath")
        let lf = dir.file(".qemu-" + String(repeating: "0", count: 40) + ".lock")
        _ = FileManager.default.createFile(atPath: lf, contents: Data())
        let r = try Run.locksmith(["list", "--json", "--lock-dir", dir.path, "--proc", try fakeProc(dir)])
        XCTAssertTrue(r.stdout.contains("\"path\":null"), r.stdout)
        let images = try XCTUnwrap(try json(r)["images"] as? [[String: Any]])
        XCTAssertEqual(images.count, 1)
        XCTAssertTrue(images[0]["path"] is NSNull)
        XCTAssertEqual(images[0]["lock_files"] as? [String], [lf])
        XCTAssertEqual((images[0]["holders"] as? [Any])?.count, 0)
    }

    func testNonRootRunRecordsWhatItCannotSee() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        // As nobody: root's fds cannot be read; the lock dir can (its temp dir is opened up).
        XCTAssertEqual(chmod(s.dir.path, 0o755), 0)
        let r = try Run.capture(try Run.tool("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                          Run.locksmith, "list", "--json", "--lock-dir", s.lockDir])
        let top = try json(r)
        let unseen = try XCTUnwrap(top["unseen"] as? [[String: String]])
        XCTAssertFalse(unseen.isEmpty)
        XCTAssertTrue(unseen.contains { $0["what"] == "open files of pid \(s.writer.pid) (qemu-nbd)" && $0["why"]?.contains("Permission denied") == true },
                      "\(unseen)")
        // The writer's lock is still listed, as held by someone this user cannot see.
        let images = try XCTUnwrap(top["images"] as? [[String: Any]])
        let inode = try XCTUnwrap(ProcLocks.inode(of: s.writable))
        let w = try XCTUnwrap(images.first { ($0["inode"] as? NSNumber)?.uint64Value == inode })
        XCTAssertTrue(w["path"] is NSNull)
        XCTAssertEqual((w["locks"] as? [Any])?.count, 4)
        // POSIX locks carry their pid in /proc/locks: the python holder is still named, and
        // the lock file of locksmith hold still maps to its image through its content.
        let t = try Run.capture(try Run.tool("setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                          Run.locksmith, "list", "--lock-dir", s.lockDir])
        XCTAssertEqual(t.status, 0)
        let rows = t.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(rows.contains { $0.prefix(6) == ["<unknown>", s.pyLockFile, "lockfile", "write", "\(s.python.pid)", "python3"] },
                      t.stdout)
        XCTAssertTrue(rows.contains { $0.prefix(4) == [s.held, "lockfile", "held", "-"] }, t.stdout)
        XCTAssertTrue(t.stderr.contains("could not be looked at"), t.stderr)
    }

    /// `locksmith` alone, not on a terminal, is `list` with the same options.
    func testNoSubcommandListsWithTheGivenOptions() throws {
        let dir = TempDir("browse")
        let lockFile = dir.file(".qemu-" + String(repeating: "ab", count: 20) + ".lock")
        XCTAssertTrue(FileManager.default.createFile(atPath: lockFile, contents: Data()))
        let r = try Run.locksmith(["--lock-dir", dir.path])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.hasPrefix("IMAGE "), r.stdout)
        XCTAssertTrue(r.stdout.contains("<unknown> \(lockFile)"), "the --lock-dir was used: \(r.stdout)")
    }

    /// `locksmith` alone takes list's and the TUI's options; off a terminal it lists.
    func testNoSubcommandTakesListAndTUIOptions() throws {
        let dir = TempDir("browse-opts")
        let lockFile = dir.file(".qemu-" + String(repeating: "cd", count: 20) + ".lock")
        XCTAssertTrue(FileManager.default.createFile(atPath: lockFile, contents: Data()))
        let tuiOptions = try Run.locksmith(["--interval", "1", "--filter", "x", "--no-color", "--lock-dir", dir.path])
        XCTAssertEqual(tuiOptions.status, 0, "\(tuiOptions)")
        XCTAssertTrue(tuiOptions.stdout.contains("<unknown> \(lockFile)"), tuiOptions.stdout)
        let j = try json(try Run.locksmith(["--json", "--lock-dir", dir.path]))
        XCTAssertEqual((j["lock_files"] as? [[String: Any]])?.compactMap { $0["path"] as? String }
            .filter { $0.hasPrefix(dir.path) }, [lockFile])
        let o = try Run.locksmith(["-o", "lockfile,mode", "--no-headings", "--lock-dir", dir.path])
        XCTAssertEqual(mine(o.stdout, dir), ["\(lockFile) free"], "\(o)")
    }

    /// The table's lines about files under `dir`, with runs of spaces made one.
    func mine(_ table: String, _ dir: TempDir) -> [String] {
        table.split(separator: "\n").filter { $0.contains(dir.path) }
            .map { $0.split(separator: " ").joined(separator: " ") }
    }

    /// Usage errors of plain `locksmith` point at `locksmith --help`, never at the hidden
    /// `browse` command.
    func testNoSubcommandUsageErrorsNeverNameBrowse() throws {
        for args in [["--bogus"], ["--interval", "0"], ["-o", "nope"], ["--max-iterations", "0"]] {
            let r = try Run.locksmith(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r)")
            XCTAssertFalse((r.stdout + r.stderr).contains("browse"), "\(args): \(r)")
            XCTAssertTrue(r.stderr.contains("'locksmith --help'"), "\(args): \(r)")
        }
        let help = try Run.locksmith(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertFalse(help.stdout.contains("browse"), help.stdout)
    }

    /// Nothing locked: on a terminal a sentence says what was scanned; a pipe and
    /// --no-headings get only the table (a header, or nothing).
    func testEmptyResultSaysSoOnATerminal() throws {
        let dir = TempDir("emptytty")
        let proc = try fakeProc(dir)
        let command = [Run.locksmith, "list", "--lock-dir", dir.path, "--proc", proc]
        let tty = try Run.capture(try Run.tool("script"), ["-qec", command.joined(separator: " "), "/dev/null"])
        XCTAssertEqual(tty.status, 0, "\(tty)")
        XCTAssertEqual(tty.stdout.replacingOccurrences(of: "\r", with: ""),
                       "no image locks on this host: scanned 1 lock dir, 0 processes\n")
        let quiet = try Run.capture(try Run.tool("script"), ["-qec", (command + ["--no-headings"]).joined(separator: " "), "/dev/null"])
        XCTAssertEqual(quiet.stdout, "", "\(quiet)")
        let piped = try Run.locksmith(Array(command.dropFirst()))
        XCTAssertEqual(piped.stdout, "IMAGE SCHEME MODE PID COMMAND VM USER AGE\n")
    }

    /// LOCKSMITH_COLUMNS sets the default columns (as LSLOCKS_COLUMNS); -o wins; a bad
    /// value is a usage error that names the variable.
    func testColumnsFromTheEnvironment() throws {
        let dir = TempDir("envcols")
        let lockFile = dir.file(".qemu-" + String(repeating: "ef", count: 20) + ".lock")
        XCTAssertTrue(FileManager.default.createFile(atPath: lockFile, contents: Data()))
        let env = try Run.locksmith(["list", "--lock-dir", dir.path], environment: ["LOCKSMITH_COLUMNS": "mode,lockfile"])
        XCTAssertTrue(env.stdout.hasPrefix("MODE "), "\(env)")
        XCTAssertEqual(env.stdout.split(separator: "\n").first?.split(separator: " "), ["MODE", "LOCKFILE"], "\(env)")
        XCTAssertEqual(mine(env.stdout, dir), ["free \(lockFile)"], "\(env)")
        let plus = try Run.locksmith(["list", "--lock-dir", dir.path], environment: ["LOCKSMITH_COLUMNS": "+lockfile"])
        XCTAssertEqual(plus.stdout.split(separator: "\n").first?.split(separator: " "),
                       ["IMAGE", "SCHEME", "MODE", "PID", "COMMAND", "VM", "USER", "AGE", "LOCKFILE"], "\(plus)")
        let o = try Run.locksmith(["list", "-o", "mode", "--lock-dir", dir.path], environment: ["LOCKSMITH_COLUMNS": "bogus"])
        XCTAssertEqual(o.status, 0, "\(o)")
        XCTAssertEqual(o.stdout.split(separator: "\n").first, "MODE", "\(o)")
        let bad = try Run.locksmith(["list", "--lock-dir", dir.path], environment: ["LOCKSMITH_COLUMNS": "bogus"])
        XCTAssertEqual(bad.status, 64, "\(bad)")
        XCTAssertTrue(bad.stderr.contains("LOCKSMITH_COLUMNS: unknown column 'bogus'"), bad.stderr)
    }
}
