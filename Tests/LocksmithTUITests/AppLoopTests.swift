import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI
import XCTest

/// A terminal made of a key script: keys are handed out with their delays, frames kept.
final class FakeTerminal: TerminalDevice, @unchecked Sendable {
    var script: [(after: Double, key: Key)]
    var frames: [ScreenBuffer] = []
    var started = false
    var stopped = 0
    var width = 80, height = 24
    var failStart = false
    /// Called on the loop's thread at each key read (to raise a signal there, say).
    var onRead: (() -> Void)?
    private var lastKeyAt = Date()

    init(_ script: [(after: Double, key: Key)] = []) { self.script = script }

    struct Refused: Error {}
    func start(color: Bool) throws {
        if failStart { throw Refused() }
        started = true
    }
    func stop() { stopped += 1 }
    var size: (width: Int, height: Int) { (width, height) }
    var unicode: Bool { true }
    func readKey(timeoutMilliseconds: Int32) -> Key? {
        onRead?()
        if let next = script.first, Date().timeIntervalSince(lastKeyAt) >= next.after {
            script.removeFirst()
            lastKeyAt = Date()
            if next.key == .resize { (width, height) = (70, 15) }
            return next.key
        }
        usleep(UInt32(timeoutMilliseconds) * 1000 / 4)
        return nil
    }
    func draw(_ buffer: ScreenBuffer) { frames.append(buffer) }
}

final class AppLoopTests: XCTestCase {
    private func app(_ snapshot: @escaping @Sendable () throws -> Snapshot, interval: Double = 0.05,
                     max: Int? = nil, why: (@Sendable (ImageLocks, Bool) -> [String])? = nil,
                     terminate: @escaping @Sendable (Holder) -> String = { _ in "sent" }) -> TUIApp {
        let a = TUIApp(sources: TUISources(snapshot: { .fresh(try snapshot()) }, why: why, testAcquire: { _, _ in ["free"] }, terminate: terminate),
                       options: TUIOptions(interval: interval, color: false, maxIterations: max))
        a.pollMilliseconds = 20
        return a
    }

    func testMaxIterationsEndsTheLoopAndRestoresTheTerminal() throws {
        let t = FakeTerminal()
        let exit = try app({ Fixtures.snapshot() }, max: 3).run(on: t)
        XCTAssertEqual(exit, .maxIterations)
        XCTAssertTrue(t.started)
        XCTAssertEqual(t.stopped, 1)
        XCTAssertTrue(t.frames.last?.text.contains("web01.qcow2") ?? false)
    }

    func testQuitKeyRestoresTheTerminal() throws {
        let t = FakeTerminal([(0.1, .char("j")), (0.05, .char("q"))])
        XCTAssertEqual(try app({ Fixtures.snapshot() }).run(on: t), .quit)
        XCTAssertEqual(t.stopped, 1)
    }

    func testASlowScanDoesNotHoldUpKeys() throws {
        // The scan takes 3 s; help opens and q quits long before it is done.
        let t = FakeTerminal([(0.05, .char("?")), (0.1, .char("x")), (0.05, .char("q"))])
        let start = Date()
        let exit = try app({ sleep(3); return Fixtures.snapshot() }).run(on: t)
        XCTAssertEqual(exit, .quit)
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.5)
        XCTAssertTrue(t.frames.contains { $0.text.contains("Keys") }, "help was drawn while scanning")
        XCTAssertTrue(t.frames.contains { $0.line(0).contains("scanning") })
    }

    func testAFailingScanIsShownAndTheLoopGoesOn() throws {
        struct NoProc: Error, CustomStringConvertible { var description: String { "cannot read /proc/locks" } }
        let t = FakeTerminal()
        XCTAssertEqual(try app({ throw NoProc() }, max: 2).run(on: t), .maxIterations)
        XCTAssertTrue(t.frames.last?.line(0).contains("scan failed: cannot read /proc/locks") ?? false)
    }

    func testSIGTERMEndsTheLoopAndRestoresTheTerminal() throws {
        let t = FakeTerminal()
        var raised = false
        // Raised on the loop's own thread, where the gate blocks it: it stays pending
        // there and the loop collects it; nothing else in the test process sees it.
        t.onRead = {
            if !raised {
                raised = true
                pthread_kill(pthread_self(), SIGTERM)
            }
        }
        XCTAssertEqual(try app({ Fixtures.snapshot() }).run(on: t), .signal(SIGTERM))
        XCTAssertEqual(t.stopped, 1)
    }

    func testAStartFailureIsThrown() {
        let t = FakeTerminal()
        t.failStart = true
        XCTAssertThrowsError(try app({ Fixtures.snapshot() }).run(on: t))
    }

    func testWhyRunsInTheBackgroundAndLandsInTheDetailPane() throws {
        let t = FakeTerminal([(0.15, .char("w")), (0.4, .char("q"))])
        let why: @Sendable (ImageLocks, Bool) -> [String] = { img, write in
            usleep(100_000)
            return ["blocked: \(write ? "write" : "read") verdict for \(img.id)"]
        }
        XCTAssertEqual(try app({ Fixtures.snapshot() }, interval: 10, why: why).run(on: t), .quit)
        XCTAssertTrue(t.frames.contains { $0.text.contains("why --write  checking...") })
        XCTAssertTrue(t.frames.last?.text.contains("blocked: write verdict for /var/lib/libvirt/images/web01.qcow2") ?? false)
    }

    func testKillOnlyAfterYes() throws {
        let killed = Locked<[Int32]>([])
        let terminate: @Sendable (Holder) -> String = { h in killed.update { $0.append(h.pid) }; return "Sent SIGTERM to pid \(h.pid)." }
        let t = FakeTerminal([(0.15, .char("K")), (0.05, .char("n")), (0.05, .char("K")), (0.05, .char("y")),
                              (0.2, .char("q"))])
        XCTAssertEqual(try app({ Fixtures.snapshot() }, interval: 10, terminate: terminate).run(on: t), .quit)
        XCTAssertEqual(killed.value, [4242])
        XCTAssertTrue(t.frames.contains { $0.text.contains("Sent SIGTERM to pid 4242.") })
    }

    func testResizeRedrawsAtTheNewSize() throws {
        let t = FakeTerminal([(0.15, .resize), (0.1, .char("q"))])
        _ = try app({ Fixtures.snapshot() }).run(on: t)
        XCTAssertEqual(t.frames.last.map { ($0.width, $0.height) }?.0, 70)
        XCTAssertEqual(t.frames.last?.height, 15)
    }
}

final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ v: T) { _value = v }
    var value: T { lock.lock(); defer { lock.unlock() }; return _value }
    func update(_ f: (inout T) -> Void) { lock.lock(); f(&_value); lock.unlock() }
}
