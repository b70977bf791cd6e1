import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI
import XCTest

final class KeyHandlingTests: XCTestCase {
    func testMovesWithinBounds() {
        var s = Fixtures.state()
        XCTAssertEqual(s.rows.count, 7)
        XCTAssertEqual(s.selected, 0)
        s.press(.up)
        XCTAssertEqual(s.selected, 0, "up at the top stays")
        s.press(.down, .char("j"))
        XCTAssertEqual(s.selected, 2)
        s.press(.char("k"))
        XCTAssertEqual(s.selected, 1)
        s.press(.end)
        XCTAssertEqual(s.selected, 6)
        s.press(.down)
        XCTAssertEqual(s.selected, 6, "down at the bottom stays")
        s.press(.home)
        XCTAssertEqual(s.selected, 0)
        s.press(.char("G"))
        XCTAssertEqual(s.selected, 6)
        s.press(.char("g"))
        XCTAssertEqual(s.selected, 0)
    }

    func testPagesAndScrollKeepTheSelectionVisible() {
        let many = (0..<50).map { i in
            ImageLocks(id: "/img/\(i)", path: String(format: "/img/disk%02d.qcow2", i), schemes: [.qemu],
                       holders: [Holder(pid: Int32(1000 + i), command: "qemu-nbd", scheme: .qemu, qemu: .readOnly)])
        }
        var s = Fixtures.state(width: 80, height: 24, images: many)
        let h = s.layout.listHeight
        XCTAssertGreaterThan(h, 3)
        s.press(.pageDown)
        XCTAssertEqual(s.selected, h - 1)
        s.press(.pageDown, .pageDown, .pageDown, .pageDown, .pageDown)
        XCTAssertEqual(s.selected, 49)
        XCTAssertEqual(s.top, 50 - h, "the last page is shown")
        s.press(.pageUp)
        XCTAssertEqual(s.selected, 49 - (h - 1))
        XCTAssertLessThanOrEqual(s.top, s.selected)
        XCTAssertLessThan(s.selected, s.top + h)
        s.press(.home)
        XCTAssertEqual(s.top, 0)
    }

    func testEnterAndTabToggleTheDetailPane() {
        var s = Fixtures.state(width: 80, height: 24)
        XCTAssertTrue(s.layout.detailShown)
        s.press(.enter)
        XCTAssertFalse(s.layout.detailShown)
        s.press(.tab)
        XCTAssertTrue(s.layout.detailShown)
    }

    func testQuitKeys() {
        for key in [Key.char("q"), .interrupt, .function(10)] {
            var s = Fixtures.state()
            XCTAssertTrue(s.handle(.key(key)).flags.contains(.quit), "\(key)")
        }
        var s = Fixtures.state()
        s.press(.char("/"))
        XCTAssertFalse(s.handle(.key(.char("q"))).flags.contains(.quit), "q is text while typing a filter")
        XCTAssertTrue(s.handle(.key(.interrupt)).flags.contains(.quit), "Ctrl-C quits even while typing a filter")
    }

    func testHelpOpensAndAnyKeyClosesIt() {
        var s = Fixtures.state()
        s.press(.char("?"))
        XCTAssertEqual(s.overlay, .help)
        let r = s.handle(.key(.char("q")))
        XCTAssertNil(s.overlay)
        XCTAssertFalse(r.flags.contains(.quit), "the key that closes help does nothing else")
    }

    func testAuditKeyListsFindingsMostSevereFirstAndRowsAreFlagged() {
        let snap = Fixtures.snapshot()
        let findings = [
            Finding(rule: .staleLockFile, severity: .info, image: nil,
                    files: ["/var/tmp/.qemu-deadbeefdeadbeefdeadbeefdeadbeefdeadbeef.lock"],
                    evidence: "held by nobody", remedy: "locksmith audit --fix"),
            Finding(rule: .unlockedWriter, severity: .critical, image: "/srv/images/backup.raw",
                    evidence: "pid 777 writes it without a lock", remedy: "stop it"),
        ]
        var s = TUIState(width: 100, height: 30, now: Fixtures.now, whyAvailable: true)
        s.handle(.snapshot(.fresh(snap, findings: findings)))
        let flagged = s.rows.filter { s.isFlagged($0) }.map { $0.image.id }
        XCTAssertEqual(Set(flagged), ["/srv/images/backup.raw", "/var/tmp/.qemu-deadbeefdeadbeefdeadbeefdeadbeefdeadbeef.lock"])
        XCTAssertFalse(s.isFlagged(s.rows.first { $0.image.id == Fixtures.webImage.id }!))
        s.press(.char("a"))
        guard case .text(let title, let lines)? = s.overlay else { return XCTFail("no audit view: \(String(describing: s.overlay))") }
        XCTAssertEqual(title, "Audit")
        XCTAssertEqual(lines.first, "CRITICAL unlocked-writer  /srv/images/backup.raw")
        XCTAssertTrue(lines.contains("INFO stale-lock-file  /var/tmp/.qemu-deadbeefdeadbeefdeadbeefdeadbeefdeadbeef.lock"), "\(lines)")
        let screen = Renderer.render(s).text
        XCTAssertTrue(screen.contains("2 findings"), screen)
        s.press(.escape)
        XCTAssertNil(s.overlay)
        let list = Renderer.render(s).text
        XCTAssertTrue(list.split(separator: "\n").contains { $0.hasPrefix("!") && $0.contains("backup.raw") }, list)
    }

    func testARepeatedSnapshotKeepsTheRowsAndUpdatesTheRefreshTime() {
        var s = Fixtures.state()
        let rows = s.rows
        let again = AuditedSnapshot(Fixtures.snapshot([Fixtures.webImage]))
        let later = Fixtures.now.addingTimeInterval(2)
        s.handle(.snapshot(PolledSnapshot(again, isRepeat: true, refreshed: later)))
        XCTAssertEqual(s.rows, rows, "a repeat is the same scan: rows are not redone")
        XCTAssertEqual(s.lastRefresh, later)
        s.handle(.snapshot(PolledSnapshot(again)))
        XCTAssertEqual(s.rows.count, Fixtures.webImage.holders.count + Fixtures.webImage.waiters.count)
    }

    func testRefreshAsksForAScan() {
        var s = Fixtures.state()
        XCTAssertTrue(s.handle(.key(.char("r"))).flags.contains(.rescan))
        XCTAssertTrue(s.handle(.key(.function(5))).flags.contains(.rescan))
    }

    func testUnknownKeysDoNothing() {
        var s = Fixtures.state()
        XCTAssertEqual(s.handle(.key(.char("Z"))), Reaction())
        XCTAssertEqual(s.handle(.key(.unknown(999))), Reaction())
    }

    func testEveryBindingHasHelpAndNoKeyIsBoundTwice() {
        var seen = Set<Key>()
        for b in KeyTable.bindings {
            XCTAssertFalse(b.help.isEmpty)
            for k in b.keys { XCTAssertTrue(seen.insert(k).inserted, "\(k) bound twice") }
        }
        XCTAssertEqual(Set(KeyTable.bindings.map(\.action)), Set(Action.allCases), "every action has a key")
    }
}

final class FilterTests: XCTestCase {
    func testFilterMatchesPathCommandVMAndUser() {
        var s = Fixtures.state()
        s.press(.char("/"))
        s.type("DB01")
        XCTAssertTrue(s.editingFilter)
        XCTAssertEqual(s.rows.map { $0.holder?.pid }, [4300], "VM, case-insensitively, as you type")
        s.press(.backspace, .backspace, .backspace, .backspace)
        s.type("backup")
        XCTAssertEqual(Set(s.rows.map { $0.holder?.pid }), [777, 900], "path and user")
        s.press(.enter)
        XCTAssertFalse(s.editingFilter)
        XCTAssertEqual(s.filter, "backup", "Enter keeps the filter")
        s.press(.escape)
        XCTAssertEqual(s.filter, "")
        XCTAssertEqual(s.rows.count, 7, "Esc clears it")
    }

    func testEscWhileTypingClearsAndLeaves() {
        var s = Fixtures.state()
        s.press(.char("/"))
        s.type("qemu-img")
        XCTAssertEqual(s.rows.map { $0.holder?.pid }, [5001], "command")
        s.press(.escape)
        XCTAssertFalse(s.editingFilter)
        XCTAssertEqual(s.rows.count, 7)
    }

    func testFilterMatchesLockFilesOfUnknownImages() {
        var s = Fixtures.state()
        s.press(.char("/"))
        s.type("deadbeef")
        XCTAssertEqual(s.rows.count, 1)
        XCTAssertNil(s.rows[0].image.path)
    }

    func testNoMatchKeepsAnEmptyListAndSelectionComesBack() {
        var s = Fixtures.state()
        s.press(.down, .down)  // base-debian12, pid 4242
        s.press(.char("/"))
        s.type("nothing-like-this")
        XCTAssertTrue(s.rows.isEmpty)
        XCTAssertNil(s.selectedRow)
        s.press(.escape)
        XCTAssertEqual(s.selectedDescription, "/var/lib/libvirt/images/base-debian12.qcow2 pid 4242")
    }
}

final class SortTests: XCTestCase {
    /// The sort of text columns is Foundation's `compare(_:options: [.caseInsensitive,
    /// .numeric])`, written out (`naturalOrder`).
    func testNaturalOrderAgreesWithFoundationsNumericCaseInsensitiveCompare() {
        let words = ["", "a", "A", "b", "pid 9", "pid 10", "pid 010", "Pid 9", "img-2.qcow2", "img-10.qcow2", "img-02.qcow2",
                     "x1y2", "x1y10", "x01y2", "10", "9", "009", "abc", "abd", "ab", "/var/tmp/a", "/var/tmp/B", "0", "00"]
        for x in words {
            for y in words {
                let got = naturalOrder(x, y)
                XCTAssertEqual(got < 0 ? ComparisonResult.orderedAscending : got > 0 ? .orderedDescending : .orderedSame,
                               x.compare(y, options: [.caseInsensitive, .numeric]), "\(x) vs \(y)")
            }
        }
    }

    func testSCyclesThroughTheListColumnsThenBackToUnsorted() {
        var s = Fixtures.state()
        var seen: [Column?] = []
        for _ in 0...Column.defaults.count {
            s.press(.char("s"))
            seen.append(s.sortColumn)
        }
        XCTAssertEqual(seen, Column.defaults.map { Optional($0) } + [nil])
    }

    func testSortByPidIsNumericAndSReverses() {
        var s = Fixtures.state()
        while s.sortColumn != .pid { s.press(.char("s")) }
        XCTAssertEqual(s.rows.compactMap { $0.holder?.pid }, [777, 900, 4242, 4242, 4300, 5001])
        XCTAssertNil(s.rows.first?.holder, "the row without a holder sorts first")
        s.press(.char("S"))
        XCTAssertTrue(s.sortDescending)
        XCTAssertEqual(s.rows.compactMap { $0.holder?.pid }, [5001, 4300, 4242, 4242, 900, 777])
    }

    func testSortByImageKeepsTheSnapshotOrderForTies() {
        var s = Fixtures.state()
        s.press(.char("s"))
        XCTAssertEqual(s.sortColumn, .image)
        let ids = s.rows.map { $0.image.id }
        XCTAssertEqual(ids.first, "/srv/images/backup.raw")
        XCTAssertEqual(s.rows.filter { $0.image.id == Fixtures.webImage.id }.map(\.waiting), [false, true])
    }

    func testSortByAgePutsTheOldestFirst() {
        var s = Fixtures.state()
        while s.sortColumn != .age { s.press(.char("s")) }
        XCTAssertEqual(s.rows.first?.holder?.pid, 4300)
    }

    func testSortingKeepsTheSelection() {
        var s = Fixtures.state()
        s.press(.end)  // odd image, pid 900
        s.press(.char("s"))
        XCTAssertEqual(s.selectedRow?.holder?.pid, 900)
        s.press(.char("S"))
        XCTAssertEqual(s.selectedRow?.holder?.pid, 900)
    }
}

final class SelectionStabilityTests: XCTestCase {
    func testSelectionFollowsItsRowWhenRowsMove() {
        var s = Fixtures.state()
        s.press(.down, .down, .down)  // base-debian12, pid 4300
        XCTAssertEqual(s.selectedDescription, "/var/lib/libvirt/images/base-debian12.qcow2 pid 4300")
        // A new image appears first and the order changes.
        let newcomer = ImageLocks(id: "/a/new.qcow2", path: "/a/new.qcow2", schemes: [.qemu],
                                  holders: [Holder(pid: 1, command: "qemu-nbd", scheme: .qemu, qemu: .readWrite)])
        s.handle(.snapshot(.fresh(Fixtures.snapshot([newcomer, Fixtures.oddImage, Fixtures.baseImage, Fixtures.webImage]))))
        XCTAssertEqual(s.selectedDescription, "/var/lib/libvirt/images/base-debian12.qcow2 pid 4300")
        XCTAssertEqual(s.selected, 3)
    }

    func testSelectionStaysOnTheImageWhenItsHolderGoes() {
        var s = Fixtures.state()
        s.press(.down, .down, .down)  // base-debian12, pid 4300
        var base = Fixtures.baseImage
        base.holders = [Fixtures.web01Base]
        s.handle(.snapshot(.fresh(Fixtures.snapshot([Fixtures.webImage, base, Fixtures.backupImage]))))
        XCTAssertEqual(s.selectedDescription, "/var/lib/libvirt/images/base-debian12.qcow2 pid 4242")
        // And back on the original holder if it shows up again.
        s.handle(.snapshot(.fresh(Fixtures.snapshot())))
        XCTAssertEqual(s.selectedDescription, "/var/lib/libvirt/images/base-debian12.qcow2 pid 4300")
    }

    func testSelectionStaysAtItsPlaceWhenTheImageGoes() {
        var s = Fixtures.state()
        s.press(.end)
        s.handle(.snapshot(.fresh(Fixtures.snapshot([Fixtures.webImage, Fixtures.baseImage]))))
        XCTAssertEqual(s.selected, 3, "clamped to the last row")
        s.handle(.snapshot(.fresh(Fixtures.snapshot([]))))
        XCTAssertNil(s.selectedRow)
        s.handle(.snapshot(.fresh(Fixtures.snapshot())))
        XCTAssertNotNil(s.selectedRow)
    }

    func testAFailedScanKeepsTheLastSnapshot() {
        var s = Fixtures.state()
        s.press(.down)
        s.handle(.scanStarted)
        XCTAssertTrue(s.scanning)
        s.handle(.scanFailed("cannot read /proc/locks"))
        XCTAssertFalse(s.scanning)
        XCTAssertEqual(s.rows.count, 7)
        XCTAssertEqual(s.selected, 1)
        XCTAssertEqual(s.refreshes, 2)
        s.handle(.snapshot(.fresh(Fixtures.snapshot())))
        XCTAssertNil(s.scanError)
    }
}

final class ActionTests: XCTestCase {
    func testKillAsksAndOnlyYSends() {
        var s = Fixtures.state()
        let r = s.handle(.key(.char("K")))
        XCTAssertTrue(r.requests.isEmpty, "nothing is sent before the answer")
        guard case .kill(let h, _)? = s.prompt else { return XCTFail("no prompt") }
        XCTAssertEqual(h.pid, 4242)
        let text = Renderer.promptText(s.prompt!)
        XCTAssertTrue(text.contains("pid 4242") && text.contains("qemu-system-x86") && text.contains("VM web01"), text)
        let no = s.handle(.key(.char("n")))
        XCTAssertTrue(no.requests.isEmpty)
        XCTAssertNil(s.prompt)
        XCTAssertEqual(s.message, "Not sent: pid 4242 left alone.")

        s.press(.char("K"))
        s.press(.enter)
        XCTAssertNil(s.prompt, "Enter is not yes")
        s.press(.char("K"))
        let yes = s.handle(.key(.char("y")))
        XCTAssertEqual(yes.requests, [.terminate(Fixtures.web01, imageID: Fixtures.webImage.id)])
        let after = s.handle(.terminateResult("Sent SIGTERM to pid 4242 (qemu-system-x86)."))
        XCTAssertTrue(after.flags.contains(.rescan), "a kill is followed by a scan")
        XCTAssertEqual(s.message, "Sent SIGTERM to pid 4242 (qemu-system-x86).")
    }

    func testKillOnARowWithoutHolderSaysSo() {
        var s = Fixtures.state()
        s.press(.char("/"))
        s.type("deadbeef")
        s.press(.enter, .char("K"))
        XCTAssertNil(s.prompt)
        XCTAssertEqual(s.message, "No holder on this row.")
    }

    func testKillRefusesAHolderOnAnotherHost() {
        var img = Fixtures.backupImage
        img.holders[0].host = "gluster-peer-2"
        var s = Fixtures.state(images: [img])
        s.press(.char("K"))
        XCTAssertNil(s.prompt)
        XCTAssertTrue(s.message?.contains("gluster-peer-2") ?? false)
    }

    func testWhyRequestsAndShowsTheVerdict() {
        var s = Fixtures.state()
        let r = s.handle(.key(.char("w")))
        XCTAssertEqual(r.requests, [.why(Fixtures.webImage, write: true)])
        XCTAssertEqual(s.results[Fixtures.webImage.id]?.whyWrite, ["checking..."])
        s.handle(.whyResult(imageID: Fixtures.webImage.id, write: true,
                            lines: ["blocked: QEMU would say: Failed to get \"write\" lock", "held by pid 4242"]))
        XCTAssertEqual(s.results[Fixtures.webImage.id]?.whyWrite?.count, 2)
        XCTAssertNil(s.overlay, "the detail pane shows it")
        let o = s.handle(.key(.char("o")))
        XCTAssertEqual(o.requests, [.why(Fixtures.webImage, write: false)])
    }

    func testWhyWithTheDetailPaneHiddenOpensAnOverlay() {
        var s = Fixtures.state(width: 70, height: 15)
        XCTAssertFalse(s.layout.detailShown)
        s.press(.char("w"))
        s.handle(.whyResult(imageID: Fixtures.webImage.id, write: true, lines: ["blocked: held by pid 4242"]))
        guard case .text(let title, let lines)? = s.overlay else { return XCTFail("no overlay") }
        XCTAssertTrue(title.hasPrefix("why --write"))
        XCTAssertEqual(lines, ["blocked: held by pid 4242"])
    }

    func testWhyWithoutASourceSaysItIsNotAvailable() {
        var s = Fixtures.state(why: false)
        XCTAssertTrue(s.handle(.key(.char("w"))).requests.isEmpty)
        XCTAssertEqual(s.message, "why is not available in this build.")
    }

    func testTestAcquireAsksForTheMode() {
        var s = Fixtures.state()
        s.press(.char("t"))
        XCTAssertEqual(s.prompt, .testMode(Fixtures.webImage))
        XCTAssertEqual(s.handle(.key(.char("e"))).requests, [.testAcquire(Fixtures.webImage, .exclusive)])
        s.press(.char("t"))
        XCTAssertEqual(s.handle(.key(.char("s"))).requests, [.testAcquire(Fixtures.webImage, .shared)])
        s.press(.char("t"))
        XCTAssertTrue(s.handle(.key(.escape)).requests.isEmpty)
        XCTAssertEqual(s.message, "Test-acquire cancelled.")
    }

    func testTestAcquireOfAnUnknownImageIsRefused() {
        var s = Fixtures.state(images: [Fixtures.unknownImage])
        s.press(.char("t"))
        XCTAssertNil(s.prompt)
        XCTAssertNotNil(s.message)
    }

    func testTestAcquireSchemeFollowsTheHolders() {
        XCTAssertEqual(TestAcquireText.scheme(for: Fixtures.webImage), .qemu)
        XCTAssertEqual(TestAcquireText.scheme(for: Fixtures.backupImage), .lockfile)
    }

    func testColourFollowsNoColor() {
        XCTAssertTrue(TUIOptions.colorAllowed(flag: false, environment: [:]))
        XCTAssertFalse(TUIOptions.colorAllowed(flag: true, environment: [:]))
        XCTAssertFalse(TUIOptions.colorAllowed(flag: false, environment: ["NO_COLOR": "1"]))
        XCTAssertTrue(TUIOptions.colorAllowed(flag: false, environment: ["NO_COLOR": ""]))
    }
}
