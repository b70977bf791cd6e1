import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI
import XCTest

/// Whole screens as text, at the sizes the TUI promises to handle.
final class RenderTests: XCTestCase {
    override func setUp() {
        setenv("TZ", "UTC", 1)
        tzset()
    }

    private func screen(_ w: Int, _ h: Int, unicode: Bool = true, _ keys: Key...) -> (TUIState, ScreenBuffer) {
        var s = Fixtures.state(width: w, height: h)
        for k in keys { s.handle(.key(k)) }
        return (s, Renderer.render(s, unicode: unicode))
    }

    /// Every row fits its width in terminal columns, whatever the paths hold.
    private func assertFits(_ b: ScreenBuffer, file: StaticString = #filePath, line: UInt = #line) {
        for y in 0..<b.height {
            let l = b.line(y)
            XCTAssertLessThanOrEqual(DisplayText.width(l), b.width, "row \(y): \(l)", file: file, line: line)
            XCTAssertFalse(l.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f || $0 == "\u{202e}" },
                           "row \(y) carries a control character", file: file, line: line)
        }
    }

    func test80x24() {
        let (_, b) = screen(80, 24, .down, .down)
        XCTAssertEqual(b.text, """
            locksmith kvm-host-1  5 images  5 holders  1 waiting  1 unseen          22:13:20
             IMAGE                           SCHEME    MODE      PID COMMAND      VM
             …lib/libvirt/images/web01.qcow2 qemu      rw       4242 qemu-system… web01
             …lib/libvirt/images/web01.qcow2 qemu      wait     5001 qemu-img     -
            >…irt/images/base-debian12.qcow2 qemu      ro       4242 qemu-system… web01
             …irt/images/base-debian12.qcow2 qemu      ro       4300 qemu-system… db01
             /srv/images/backup.raw          lockfile  write     777 locksmith    -
             …fdeadbeefdeadbeefdeadbeef.lock lockfile  free        - -            -
             …ages/odd?[31m?name-日本語?.img qemu      ro        900 qemu-nbd     -

            ── /var/lib/libvirt/images/base-debian12.qcow2 ─────────────────────────────────
             image     /var/lib/libvirt/images/base-debian12.qcow2
             schemes   qemu
             holders (2)
             > pid 4242 qemu-system-x86 ro  VM web01  user libvirt-qemu  fd 32 (read-only) …
                   holds consistent read; does not share write, resize
               pid 4300 qemu-system-x86 ro  VM db01  user libvirt-qemu  fd 30 (read-only)  …
                   holds consistent read; does not share write, resize
             why --write  press w
             why --ro     press o
             test         press t


            Enter Detail  / Filter  s Sort  w Why-rw  o Why-ro  t Test  ? Help  q Quit
            """)
        assertFits(b)
    }

    func test120x40ShowsEveryDefaultColumn() {
        let (_, b) = screen(120, 40, .down, .down)
        let top = (0..<9).map(b.line).joined(separator: "\n")
        XCTAssertEqual(top, """
            locksmith kvm-host-1  5 images  5 holders  1 waiting  1 unseen                                        refreshed 22:13:20
             IMAGE                                                   SCHEME    MODE      PID COMMAND      VM         USER        AGE
             /var/lib/libvirt/images/web01.qcow2                     qemu      rw       4242 qemu-system… web01      libvirt…     3h
             /var/lib/libvirt/images/web01.qcow2                     qemu      wait     5001 qemu-img     -          root        12s
            >/var/lib/libvirt/images/base-debian12.qcow2             qemu      ro       4242 qemu-system… web01      libvirt…     3h
             /var/lib/libvirt/images/base-debian12.qcow2             qemu      ro       4300 qemu-system… db01       libvirt…     2d
             /srv/images/backup.raw                                  lockfile  write     777 locksmith    -          root        45s
             …mp/.qemu-deadbeefdeadbeefdeadbeefdeadbeefdeadbeef.lock lockfile  free        - -            -          -             -
             /srv/images/odd?[31m?name-日本語?.img                   qemu      ro        900 qemu-nbd     -          backup      10m
            """)
        XCTAssertTrue(b.line(10).hasPrefix("── /var/lib/libvirt/images/base-debian12.qcow2 ──"))
        XCTAssertEqual(b.line(39), "Enter Detail  / Filter  s Sort  w Why-rw  o Why-ro  t Test  K Kill  a Audit  ? Help  q Quit")
        assertFits(b)
    }

    func test40x10DropsColumnsByPriorityAndHidesTheDetailPane() {
        let (s, b) = screen(40, 10, .down, .down)
        XCTAssertFalse(s.layout.detailShown)
        XCTAssertEqual(b.text, """
            locksmith kvm-host-1  5 images… 22:13:20
             IMAGE                     MODE      PID
             …bvirt/images/web01.qcow2 rw       4242
             …bvirt/images/web01.qcow2 wait     5001
            >…ages/base-debian12.qcow2 ro       4242
             …ages/base-debian12.qcow2 ro       4300
             /srv/images/backup.raw    write     777
             …eefdeadbeefdeadbeef.lock free        -
             …dd?[31m?name-日本語?.img ro        900
            Enter Detail  / Filter  ? Help  q Quit
            """)
        assertFits(b)
    }

    func testBelowTheMinimumSaysSo() {
        let (_, b) = screen(30, 8)
        XCTAssertTrue(b.text.contains("terminal too small: 30x8"))
        XCTAssertTrue(b.text.contains("need 40x10"))
    }

    func testColumnsDropByPriority() {
        XCTAssertEqual(Layout.columns(width: 120).map(\.column), Column.defaults)
        XCTAssertEqual(Layout.columns(width: 80).map(\.column), [.image, .scheme, .mode, .pid, .command, .vm])
        XCTAssertEqual(Layout.columns(width: 40).map(\.column), [.image, .mode, .pid])
        for w in [40, 55, 70, 80, 100, 120, 200] {
            let cols = Layout.columns(width: w)
            XCTAssertEqual(cols.reduce(0) { $0 + $1.width } + cols.count - 1, w - 1, "width \(w) is used exactly")
        }
    }

    func testLayoutSplitsListAndDetail() {
        let l = Layout(width: 80, height: 24, showDetail: true)
        XCTAssertEqual(l.listTop, 2)
        XCTAssertEqual(l.listHeight + l.detailHeight, 21)
        XCTAssertGreaterThanOrEqual(l.listHeight, 5)
        XCTAssertFalse(Layout(width: 70, height: 15, showDetail: true).detailShown)
        XCTAssertEqual(Layout(width: 70, height: 15, showDetail: true).listHeight, 12)
        XCTAssertTrue(Layout(width: 39, height: 24, showDetail: true).tooSmall)
        XCTAssertTrue(Layout(width: 80, height: 9, showDetail: true).tooSmall)
        // A short list leaves the room to the detail pane.
        XCTAssertEqual(Layout(width: 80, height: 40, showDetail: true, rows: 2).listHeight, 5)
    }

    func testResizeKeepsTheSelectionOnScreen() {
        let many = (0..<40).map { i in
            ImageLocks(id: "/img/\(i)", path: "/img/\(i).raw", schemes: [.lockfile],
                       holders: [Holder(pid: Int32(100 + i), command: "locksmith", scheme: .lockfile, lockType: .read)])
        }
        var s = Fixtures.state(width: 120, height: 40, images: many)
        s.press(.end)
        s.handle(.resize(width: 70, height: 15))
        let b = Renderer.render(s)
        XCTAssertTrue(b.text.contains(">/img/39.raw"), b.text)
        XCTAssertTrue(b.text.contains("40/40"), "the position in a long list is shown")
        assertFits(b)
    }

    /// The position in a long list ("12/40") never covers a row: every list row of a
    /// 60x20 screen reads exactly as the same row does on a screen tall enough for no marker.
    func testThePositionMarkerLeavesTheRowsWhole() {
        let many = (0..<40).map { i in
            ImageLocks(id: "/img/\(i)", path: "/img/\(i).raw", schemes: [.lockfile],
                       holders: [Holder(pid: Int32(1000 + i), command: "locksmith", user: "root",
                                        started: Fixtures.now.addingTimeInterval(-45), scheme: .lockfile, lockType: .read)])
        }
        for keys in [[Key](), [.end], [.pageDown, .down, .down]] {
            var s = Fixtures.state(width: 60, height: 20, images: many)
            var tall = Fixtures.state(width: 60, height: 90, images: many)
            for k in keys { s.handle(.key(k)); tall.handle(.key(k)) }
            let b = Renderer.render(s), t = Renderer.render(tall)
            let layout = s.layout
            XCTAssertLessThan(layout.listHeight, many.count, "the list is longer than the screen")
            XCTAssertGreaterThanOrEqual(tall.layout.listHeight, many.count, "the tall screen needs no marker")
            XCTAssertFalse(t.text.contains("/40"), t.text)
            let tallRows = (0..<t.height).map(t.line)
            for y in layout.listTop..<(layout.listTop + layout.listHeight) {
                let row = b.line(y)
                let mark = row.first.map(String.init) ?? ""
                XCTAssertTrue(tallRows.contains(row) || tallRows.contains(" " + row.dropFirst()) && mark == ">",
                              "row \(y) differs from the same row without a marker: \(row)\n\(b.text)")
            }
            XCTAssertTrue(b.line(0).contains("\(s.selected + 1)/40"), "the position is shown: \(b.line(0))")
            assertFits(b)
        }
    }

    func testNoUnicodeTerminalGetsASCIIOnly() {
        let (_, b) = screen(80, 24, unicode: false, .end)
        XCTAssertTrue(b.text.unicodeScalars.allSatisfy(\.isASCII), b.text)
        XCTAssertTrue(b.text.contains(">~/images/odd?[31m?name-????.img qemu"))
        XCTAssertTrue(b.text.contains("-- /srv/images/odd?[31m?name-????.img ---"))
    }

    func testSortMarkOnTheSortedColumn() {
        let (_, b) = screen(80, 24, .char("s"), .char("s"), .char("s"), .char("s"))
        XCTAssertTrue(b.line(1).contains("PID▲"), b.line(1))
        let (_, r) = screen(80, 24, .char("s"), .char("S"))
        XCTAssertTrue(r.line(1).contains("IMAGE▼"), r.line(1))
    }

    func testHelpListsEveryKey() {
        let (_, b) = screen(80, 24, .char("?"))
        for binding in KeyTable.bindings {
            XCTAssertTrue(b.text.contains(binding.names), binding.names)
        }
        XCTAssertEqual(b.line(23), "any key closes")
    }

    func testFilterLineAndFilteredHeader() {
        let (_, typing) = screen(80, 24, .char("/"), .char("d"), .char("b"))
        XCTAssertEqual(typing.line(23), "Filter: db_   Enter keeps, Esc clears")
        XCTAssertEqual(typing.line(2), ">…irt/images/base-debian12.qcow2 qemu      ro       4300 qemu-system… db01")
        let (_, kept) = screen(80, 24, .char("/"), .char("d"), .char("b"), .enter)
        XCTAssertTrue(kept.line(0).contains("filter \"db\""), kept.line(0))
        let (_, none) = screen(80, 24, .char("/"), .char("z"), .char("z"), .enter)
        XCTAssertEqual(none.line(2), " no rows match \"zz\" (Esc clears the filter)")
    }

    func testKillPromptNamesPidCommandAndVM() {
        let (_, b) = screen(100, 24, .char("K"))
        XCTAssertEqual(b.line(23), "SIGTERM pid 4242 (qemu-system-x86, VM web01)? y sends it, any other key cancels")
    }

    func testVerdictsAndTestResultInTheDetailPane() {
        var s = Fixtures.state(width: 100, height: 30)
        s.press(.char("w"))
        s.handle(.whyResult(imageID: Fixtures.webImage.id, write: true,
                            lines: ["blocked: QEMU would say: Failed to get \"write\" lock", "held by pid 4242 (qemu-system-x86)"]))
        s.press(.char("t"), .char("s"))
        s.handle(.testResult(imageID: Fixtures.webImage.id, mode: .shared, lines: ["free: a shared lock (qemu scheme) can be taken"]))
        let b = Renderer.render(s)
        XCTAssertTrue(b.text.contains(" why --write  blocked: QEMU would say: Failed to get \"write\" lock\n              held by pid 4242"), b.text)
        XCTAssertTrue(b.text.contains(" test         free: a shared lock (qemu scheme) can be taken"), b.text)
        XCTAssertTrue(b.text.contains(" waiting (1)\n   pid 5001 qemu-img wait"), b.text)
        XCTAssertTrue(b.text.contains("   OFDLCK ADVISORY READ -1 fe:00:1234 100 101"), b.text)
        // Colours follow meaning: the verdict line is `bad`, the writer's mode `write`.
        let y = (0..<b.height).first { b.line($0).contains("Failed to get") }!
        XCTAssertEqual(b.runs(y).first { $0.text.contains("Failed") }?.style.role, .bad)
    }

    func testStylesOfTheSelectedRowAndModes() {
        let (_, b) = screen(80, 24)
        XCTAssertTrue(b.runs(2).allSatisfy(\.style.selected), "the whole selected row is highlighted")
        XCTAssertFalse(b.runs(3).contains { $0.style.selected })
        XCTAssertEqual(b.runs(2).first { $0.text.hasPrefix("rw") }?.style.role, .write)
        XCTAssertEqual(b.runs(3).first { $0.text.hasPrefix("wait") }?.style.role, .wait)
        XCTAssertEqual(b.runs(0).first?.style.role, .title)
    }

    func testBeforeTheFirstScan() {
        let s = TUIState(width: 80, height: 24, now: Fixtures.now)
        XCTAssertEqual(Renderer.render(s).line(2), " scanning...")
        var failed = s
        failed.handle(.scanFailed("cannot read /proc/locks: Permission denied"))
        let b = Renderer.render(failed)
        XCTAssertTrue(b.line(0).contains("scan failed: cannot read /proc/locks"), b.line(0))
    }

    func testARescanKeepsTheLastRefreshTime() {
        var s = Fixtures.state()
        s.handle(.scanStarted)
        XCTAssertTrue(Renderer.render(s).line(0).hasSuffix("22:13:20 *"), Renderer.render(s).line(0))
    }

    func testEmptySnapshot() {
        let (_, b) = (0, Renderer.render(Fixtures.state(images: [])))
        XCTAssertEqual(b.line(2), " no image locks found")
    }
}

final class DisplayTextTests: XCTestCase {
    func testWidths() {
        XCTAssertEqual(DisplayText.width("vm1.qcow2"), 9)
        XCTAssertEqual(DisplayText.width("日本"), 4)
        XCTAssertEqual(DisplayText.width("e\u{301}"), 1, "a combining mark takes no column")
        XCTAssertEqual(DisplayText.width("\u{1F600}"), 2, "emoji are wide")
        XCTAssertEqual(DisplayText.width("\u{FFFD}"), 1, "invalid bytes decoded as U+FFFD")
    }

    func testControlAndFormatCharactersAreReplaced() {
        XCTAssertEqual(DisplayText.fitted("a\u{1b}[2Jb\nc\td\u{7f}\u{9b}", width: 40), "a?[2Jb?c?d??")
        XCTAssertEqual(DisplayText.fitted("abc\u{202e}fed", width: 40), "abc?fed", "no bidi override")
        XCTAssertEqual(DisplayText.fitted("x\u{200b}y", width: 40), "x?y")
    }

    func testInvalidUTF8FromAPath() {
        let bytes: [UInt8] = Array("/img/bad-".utf8) + [0xff, 0xfe, 0x80] + Array(".raw".utf8)
        let path = String(decoding: bytes, as: UTF8.self)
        XCTAssertEqual(DisplayText.fitted(path, width: 40), "/img/bad-\u{FFFD}\u{FFFD}\u{FFFD}.raw")
        XCTAssertEqual(DisplayText.fitted(path, width: 40, unicode: false), "/img/bad-???.raw")
    }

    func testFitTruncatesWithAnEllipsisOnEitherSide() {
        XCTAssertEqual(DisplayText.fitted("/var/lib/images/vm1.qcow2", width: 12, truncation: .start), "…s/vm1.qcow2")
        XCTAssertEqual(DisplayText.fitted("qemu-system-x86_64", width: 12), "qemu-system…")
        XCTAssertEqual(DisplayText.fitted("short", width: 12), "short")
        XCTAssertEqual(DisplayText.fitted("anything", width: 0), "")
        XCTAssertEqual(DisplayText.fitted("abcdef", width: 4, unicode: false), "abc~")
    }

    func testWideGlyphsNeverSplit() {
        // 5 columns: two wide glyphs and the ellipsis; a third would not fit.
        XCTAssertEqual(DisplayText.fitted("日本語です", width: 5), "日本…")
        XCTAssertEqual(DisplayText.fitted("日本語です", width: 6), "日本…")
        var b = ScreenBuffer(width: 5, height: 1)
        b.put("ab日本", x: 0, y: 0)
        XCTAssertEqual(b.line(0), "ab日…")
        b.put("x", x: 3, y: 0)
        XCTAssertEqual(b.line(0), "ab x…", "overwriting half of a wide glyph blanks the other half")
        var edge = ScreenBuffer(width: 3, height: 1)
        edge.put("日", x: 2, y: 0, width: 2)
        XCTAssertEqual(edge.line(0), "  …", "a wide glyph in the last column is not drawn half")
    }
}
