import Foundation
import ImageLock
import LockInspector
import XCTest

/// `list`'s table, `audit`'s report and `watch`'s lines, from values built in code.
final class ReportTextTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_700_000_000)

    func testTableAlignsNumbersRightLeavesTheLastColumnUnpaddedAndEscapesCells() throws {
        let a = Holder(pid: 7, command: "qemu-img", scheme: .qemu, lockType: .read, qemu: .readOnly)
        let b = Holder(pid: 12345, command: "evil\nname", scheme: .lockfile, lockType: .write)
        let s = Snapshot(host: "h", generated: now, images: [
            ImageLocks(id: "/i/a", path: "/i/a", schemes: [.qemu], holders: [a]),
            ImageLocks(id: "/i/b", path: "/i/b", schemes: [.lockfile], holders: [b]),
        ], lockFiles: [], unseen: [])
        let columns = try Column.parse("pid,command,image").get()
        let text = Table.render(LockRow.rows(of: s), columns: columns, now: now)
        XCTAssertEqual(text.split(separator: "\n", omittingEmptySubsequences: false), [
            "  PID COMMAND    IMAGE",
            "    7 qemu-img   /i/a",
            "12345 evil\\nname /i/b",
            "",
        ])
        XCTAssertEqual(Table.render(LockRow.rows(of: s), columns: columns, headings: false, now: now).split(separator: "\n").count, 2)
    }

    func testAuditTextBlocksEachFindingWithItsFixAndCountsBySeverity() {
        let stale = Finding(rule: .staleLockFile, severity: .info, image: nil, files: ["/var/tmp/.qemu-a.lock"],
                            evidence: "nobody holds it", remedy: "locksmith audit --fix")
        let writer = Finding(rule: .unlockedWriter, severity: .critical, image: "/i/vm", evidence: "pid 3 writes", remedy: "stop it")
        let fixes = [StaleFix(path: "/var/tmp/.qemu-a.lock", removed: true, outcome: "removed")]
        XCTAssertEqual(AuditText.render([writer, stale], fixes: fixes), """
            CRITICAL unlocked-writer  /i/vm
              pid 3 writes
              remedy: stop it
            INFO     stale-lock-file  /var/tmp/.qemu-a.lock
              nobody holds it
              remedy: locksmith audit --fix
              fix: /var/tmp/.qemu-a.lock: removed
            2 findings: 1 critical, 1 info
            fixed: removed 1 of 1 stale lock file

            """)
        XCTAssertEqual(AuditText.render([], fixes: []), "no findings\n")
    }

    func testWatchLineIsOneLineWhateverTheHolderIsNamed() {
        let h = Holder(pid: 5, command: "bad\ncmd", fd: 4, vm: "web", scheme: .qemu, lockType: .read, qemu: .readWrite, host: "h1")
        let e = WatchEvent(kind: .lockAcquired, time: now, image: "/i/vm", imageID: "/i/vm", holder: h)
        let line = WatchText.line(e)
        XCTAssertFalse(line.contains("\n"))
        XCTAssertEqual(line, "2023-11-14T22:13:20.000Z lock-acquired /i/vm pid 5 (bad\\ncmd) rw qemu fd 4 vm web on h1")
    }
}
