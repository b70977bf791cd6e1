import Foundation
import ImageLock
import XCTest
import _TestSupport

/// A tmux server of its own (a dedicated socket) with one shell in a pane of a given size;
/// the server is killed when the value goes.
final class TmuxPane {
    let socket: String
    let tmux: String

    init(width: Int = 100, height: Int = 30) throws {
        tmux = try Run.tool("tmux")
        socket = "locksmith-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let status = TmuxPane.spawnAndWait(tmux, ["-L", socket, "-f", "/dev/null", "new-session", "-d",
                                                  "-x", "\(width)", "-y", "\(height)", "-e", "LANG=C.UTF-8",
                                                  "-e", "PS1=$ ", "-e", "NO_COLOR=", "/bin/sh"])
        XCTAssertEqual(status, 0, "tmux new-session failed")
        _ = try Run.capture(tmux, ["-L", socket, "set-option", "-g", "status", "off"])
    }

    /// Runs a program that leaves a daemon behind (the tmux server) and waits for it.
    /// Not through Foundation's Process: the daemon would inherit the pipes and the
    /// socket Process watches for the child's end, and nobody would ever see it end.
    /// The child gets /dev/null as stdin/out/err and no other fd.
    /// The corresponding C functions are `posix_spawn` and `waitpid`.
    static func spawnAndWait(_ exe: String, _ args: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Int32(0)...2 {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in open where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, exe, &actions, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit { _ = try? Run.capture(tmux, ["-L", socket, "kill-server"]) }

    func tmux(_ args: [String]) throws -> RunResult { try Run.capture(tmux, ["-L", socket] + args) }

    /// Types a line into the shell.
    func type(_ line: String) throws {
        _ = try tmux(["send-keys", "-l", line])
        _ = try tmux(["send-keys", "Enter"])
    }

    /// Sends keys by tmux name (`Down`, `Enter`, `q`, `C-c`).
    func keys(_ names: String...) throws { _ = try tmux(["send-keys"] + names) }

    func capture() throws -> String { try tmux(["capture-pane", "-p"]).stdout }

    /// Waits until the pane shows `text` (or `predicate` holds); returns the screen.
    @discardableResult
    func waitFor(_ text: String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
                 _ predicate: ((String) -> Bool)? = nil) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var screen = ""
        while Date() < deadline {
            screen = try capture()
            if predicate?(screen) ?? screen.contains(text) { return screen }
            usleep(50_000)
        }
        XCTFail("the pane never showed \(text.debugDescription); it shows:\n\(screen)", file: file, line: line)
        return screen
    }

    /// The pid of the program the shell runs in the foreground (the TUI).
    func childOfShell() throws -> Int32? {
        let shell = try tmux(["display-message", "-p", "#{pane_pid}"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let children = (try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first.flatMap { Int32($0) }
    }
}

/// `locksmith tui` on a real terminal (tmux).
final class TUITerminalTests: XCTestCase {
    var dir: TempDir!

    override func setUp() {
        dir = TempDir("tui")
        mkdir(dir.file("images"), 0o755)
        mkdir(dir.file("locks"), 0o755)
    }

    /// The selected row of the list (it starts with `>`), or "".
    func selected(_ screen: String) -> String {
        screen.split(separator: "\n").first { $0.hasPrefix(">") }.map(String.init) ?? ""
    }

    /// The command line of the TUI over this test's image and lock dirs.
    func tui(_ extra: String = "", isolated: Bool = true) -> String {
        // The filter keeps other holders on this host (other tests, VMs) out of the view.
        let filter = isolated ? "--filter \(dir.path)" : ""
        return "\(Run.locksmith) tui --images \(dir.file("images")) --lock-dir \(dir.file("locks")) \(filter) \(extra); echo EXIT=$?"
    }

    /// A `locksmith hold` of an image in the background (lockfile scheme, this test's lock dir).
    func hold(_ image: String, shared: Bool = false) throws -> Background {
        let b = try Background(Run.locksmith, ["hold", "--lock-dir", dir.file("locks")] + (shared ? ["--shared"] : [])
                                    + [image, "--", "sleep", "600"])
        let lockFile = try Run.locksmith(["path", "--lock-dir", dir.file("locks"), image]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        b.waitForLocks(on: lockFile)
        return b
    }

    func testStartNavigateDetailHelpResizeAndQuit() throws {
        let a = dir.makeFile("images/alpha.raw"), b = dir.makeFile("images/beta.raw")
        let h1 = try hold(a), h2 = try hold(b, shared: true)
        defer { h1.stop(); h2.stop() }
        let pane = try TmuxPane(width: 100, height: 30)
        try pane.type(tui("--interval 0.5"))
        var screen = try pane.waitFor("beta.raw")
        XCTAssertTrue(screen.contains("locksmith "), screen)
        XCTAssertTrue(screen.contains(" IMAGE "), screen)
        XCTAssertTrue(screen.contains("q Quit"), screen)
        XCTAssertTrue(selected(screen).contains("alpha.raw"), "the first row is selected:\n\(screen)")
        XCTAssertTrue(screen.contains("\(h1.pid) locksmith"), screen)
        XCTAssertTrue(screen.contains("\(h2.pid) locksmith"), screen)
        XCTAssertTrue(screen.contains("── \(a) ──"), "the detail pane shows the selection:\n\(screen)")

        try pane.keys("Down")
        screen = try pane.waitFor("beta.raw selected") { self.selected($0).contains("beta.raw") }
        XCTAssertTrue(screen.contains("── \(b) ──"), screen)
        XCTAssertTrue(screen.contains("pid \(h2.pid) locksmith read"), screen)

        try pane.keys("Enter")
        screen = try pane.waitFor("", { !$0.contains("── ") })
        XCTAssertTrue(selected(screen).contains("beta.raw"), "the list stays:\n\(screen)")
        try pane.keys("Tab")
        try pane.waitFor("── \(b) ──")

        try pane.keys("?")
        screen = try pane.waitFor("any key closes")
        XCTAssertTrue(screen.contains("send SIGTERM to the selected holder"), screen)
        try pane.keys("x")
        try pane.waitFor("q Quit")

        _ = try pane.tmux(["resize-window", "-x", "70", "-y", "15"])
        screen = try pane.waitFor("the list at 70x15") { !$0.contains("── ") && !self.selected($0).isEmpty }
        let lines = screen.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertTrue(selected(screen).contains("beta.raw"), "the selection survives:\n\(screen)")
        XCTAssertTrue(lines.contains { $0.contains("alpha.raw") }, screen)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 70 }, screen)
        try pane.keys("Up")
        try pane.waitFor("alpha.raw selected") { self.selected($0).contains("alpha.raw") }

        try pane.keys("q")
        try pane.waitFor("EXIT=0")
        try pane.type("echo shell-ok-$((40+2))")
        screen = try pane.waitFor("shell-ok-42") { $0.split(separator: "\n").contains("shell-ok-42") }
        XCTAssertTrue(screen.contains("echo shell-ok-$((40+2))"), "the shell echoes again (the tty was restored):\n\(screen)")
    }

    func testMaxIterationsExitsByItself() throws {
        let pane = try TmuxPane(width: 80, height: 24)
        let start = Date()
        try pane.type(tui("--interval 0.2 --max-iterations 3"))
        try pane.waitFor("EXIT=0")
        XCTAssertLessThan(Date().timeIntervalSince(start), 8)
    }

    func testCtrlCQuitsAndSIGTERMRestoresTheTerminal() throws {
        let pane = try TmuxPane(width: 80, height: 24)
        try pane.type(tui())
        try pane.waitFor("q Quit")
        try pane.keys("C-c")
        try pane.waitFor("EXIT=0")

        try pane.type("clear; " + tui())
        try pane.waitFor("q Quit")
        guard let pid = try pane.childOfShell() else { return XCTFail("no TUI process under the shell") }
        kill(pid, SIGTERM)
        try pane.waitFor("EXIT=143")
        try pane.type("echo after-term")
        let screen = try pane.waitFor("after-term") { $0.split(separator: "\n").contains("after-term") }
        XCTAssertTrue(screen.contains("# echo after-term") || screen.contains("$ echo after-term"), screen)
    }

    func testFilterHidesRowsThatDoNotMatch() throws {
        let a = dir.makeFile("images/alpha.raw"), b = dir.makeFile("images/beta.raw")
        let h1 = try hold(a), h2 = try hold(b)
        defer { h1.stop(); h2.stop() }
        let pane = try TmuxPane(width: 100, height: 30)
        try pane.type(tui(isolated: false))
        try pane.waitFor("beta.raw")
        // This test's directory name, so that other holders on the host do not match.
        let token = (dir.path as NSString).lastPathComponent + "/images/bet"
        try pane.keys("/", token)
        var screen = try pane.waitFor("Filter: \(token)_")
        XCTAssertFalse(screen.contains("alpha.raw"), screen)
        try pane.keys("Enter")
        screen = try pane.waitFor("filter \"\(token)\"")
        XCTAssertTrue(selected(screen).contains("beta.raw"), screen)
        XCTAssertFalse(screen.contains("alpha.raw"), screen)
        try pane.keys("Escape")
        try pane.waitFor("alpha.raw")
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }

    func testKillAsksAndOnlyYEndsTheHolder() throws {
        let a = dir.makeFile("images/victim.raw")
        let holder = try hold(a)
        defer { holder.stop() }
        let pane = try TmuxPane(width: 100, height: 30)
        try pane.type(tui("--interval 0.5"))
        try pane.waitFor("\(holder.pid) locksmith")
        try pane.keys("K")
        try pane.waitFor("SIGTERM pid \(holder.pid) (locksmith, VM none)?")
        try pane.keys("n")
        try pane.waitFor("Not sent: pid \(holder.pid) left alone.")
        usleep(300_000)
        XCTAssertTrue(holder.process.isRunning, "n kills nothing")
        try pane.keys("K")
        try pane.waitFor("SIGTERM pid \(holder.pid)")
        try pane.keys("y")
        try pane.waitFor("Sent SIGTERM to pid \(holder.pid)")
        let deadline = Date().addingTimeInterval(5)
        while holder.process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(holder.process.isRunning, "y ends the holder")
        try pane.waitFor("", { !$0.contains("\(holder.pid) locksmith") })
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }

    func testQemuNbdHolderAndTestAcquireShowQemusMessage() throws {
        let image = try Qemu.createImage(dir.file("images/vm1.qcow2"))
        let nbd = try Background(try Run.tool("qemu-nbd"), ["-k", dir.file("nbd.sock"), "-f", "qcow2", image])
        defer { nbd.stop() }
        nbd.waitForLocks(on: image, count: 3)
        let pane = try TmuxPane(width: 110, height: 30)
        try pane.type(tui())
        // The whole frame: tmux can be asked for the pane while curses is still writing it
        // (a capture once had the table row and the detail pane's title, not its lines).
        let permissions = "holds consistent read, write, resize; does not share write, resize"
        var screen = try pane.waitFor("\(nbd.pid) qemu-nbd and its permissions") {
            $0.contains("\(nbd.pid) qemu-nbd") && $0.contains(permissions)
        }
        XCTAssertTrue(screen.contains("vm1.qcow2"), screen)
        XCTAssertTrue(screen.contains(" qemu "), screen)
        try pane.keys("t")
        try pane.waitFor("e exclusive, s shared (scheme qemu)")
        try pane.keys("e")
        screen = try pane.waitFor("QEMU would say: Failed to get \"write\" lock")
        XCTAssertTrue(screen.contains("held: an exclusive lock (qemu scheme) cannot be taken"), screen)
        // `w` and `o`: why it won't open, in QEMU's words, naming the holder.
        try pane.keys("w")
        screen = try pane.waitFor("QEMU says: Failed to get \"write\" lock")
        XCTAssertTrue(screen.contains("blocker: pid \(nbd.pid) qemu-nbd"), screen)
        try pane.keys("o")
        screen = try pane.waitFor("QEMU says: Failed to get shared \"write\" lock")
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }

    func testAuditViewListsARealHazardAndMarksItsRow() throws {
        // A lock file nobody holds (stale-lock-file, info) beside a held one.
        let stale = dir.makeFile("images/stale.raw"), held = dir.makeFile("images/held.raw")
        let h = try hold(held)
        defer { h.stop() }
        let staleLock = try Run.locksmith(["path", "--lock-dir", dir.file("locks"), stale]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(FileManager.default.createFile(atPath: staleLock, contents: Data((stale + "\n").utf8)))
        let pane = try TmuxPane(width: 110, height: 30)
        try pane.type(tui())
        var screen = try pane.waitFor("findings") { $0.contains("stale.raw") && $0.contains("held.raw") && $0.contains("findings") }
        let rows = screen.split(separator: "\n")
        XCTAssertTrue(rows.contains { $0.hasPrefix("!") && $0.contains("stale.raw") } || rows.contains { $0.hasPrefix(">") && $0.contains("stale.raw") },
                      "the stale lock file's row is marked:\n\(screen)")
        XCTAssertFalse(rows.contains { $0.hasPrefix("!") && $0.contains("held.raw") }, screen)
        try pane.keys("a")
        screen = try pane.waitFor("INFO stale-lock-file  \(stale)")
        try pane.keys("Escape")
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }

    func testQuitDuringAScanExitsCleanly() throws {
        // Many candidate images make each scan take a while: q arrives while one runs.
        let images = dir.file("images")
        for i in 0..<20000 { _ = FileManager.default.createFile(atPath: "\(images)/img-\(i).raw", contents: nil) }
        for round in 0..<3 {
            let pane = try TmuxPane(width: 100, height: 30)
            try pane.type(tui("--interval 0.1"))
            try pane.waitFor("scanning") { $0.contains("scanning") || $0.contains(" *") }
            try pane.keys("q")
            // The shell prints the TUI's status on a line of its own (the command line has "EXIT=$?").
            let screen = try pane.waitFor("a line EXIT=N", timeout: 20) { $0.split(separator: "\n").contains { $0.hasPrefix("EXIT=") } }
            XCTAssertTrue(screen.split(separator: "\n").contains("EXIT=0"), "round \(round):\n\(screen)")
        }
    }

    func testTwoReadOnlyQemusOfOneBaseAreTwoRows() throws {
        let image = try Qemu.createImage(dir.file("images/base.qcow2"))
        let readers = try (0..<2).map { _ in
            try Background(try Run.tool("qemu-io"), ["-r", "-f", "qcow2", "-c", "sleep 30000", image])
        }
        defer { readers.forEach { $0.stop() } }
        readers[0].waitForLocks(on: image, count: 6)
        let pane = try TmuxPane(width: 110, height: 30)
        try pane.type(tui())
        let screen = try pane.waitFor("\(readers[1].pid) qemu-io") { $0.contains("\(readers[0].pid) qemu-io") && $0.contains("\(readers[1].pid) qemu-io") }
        let rows = screen.split(separator: "\n").filter { $0.contains("base.qcow2") && $0.contains(" ro ") }
        XCTAssertEqual(rows.count, 2, screen)
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }

    func testOddBytesInAPathKeepTheLayout() throws {
        let odd = dir.makeFile("images/odd\u{1b}[31m\tnäme-日本語.raw")
        let h = try hold(odd)
        defer { h.stop() }
        let pane = try TmuxPane(width: 80, height: 24)
        try pane.type(tui())
        let screen = try pane.waitFor("日本語")
        let row = screen.split(separator: "\n").first { $0.contains("日本語") && $0.hasPrefix(">") }
        XCTAssertNotNil(row, screen)
        XCTAssertTrue(row?.contains("?[31m?näme-日本語.raw lockfile  write") ?? false, "columns line up:\n\(screen)")
        XCTAssertFalse(screen.contains("\u{1b}"))
        try pane.keys("q")
        try pane.waitFor("EXIT=0")
    }
}
