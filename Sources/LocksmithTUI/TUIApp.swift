import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector

/// Where the TUI's data and actions come from. Only `snapshot` is required; wiring the
/// inspector is `TUISources(snapshot: { PolledSnapshot(try Auditor.snapshot(...)) })`.
/// Every closure runs on a background thread, never on the UI loop.
public struct TUISources: Sendable {
    /// One scan and its findings, or the last one repeated (`SnapshotCache`). A thrown error
    /// is shown in the header; the last snapshot stays.
    public var snapshot: @Sendable () throws -> PolledSnapshot
    /// `why` for an image: the verdict as lines (first line `free...`/`blocked...`), for
    /// opening it read-write (`write` true) or read-only. nil: `w`/`o` say "not available".
    public var why: (@Sendable (ImageLocks, _ write: Bool) -> [String])?
    /// Takes and releases the image's lock in a mode; nil: `t` says "not available".
    public var testAcquire: (@Sendable (ImageLocks, LockMode) -> [String])?
    /// Sends SIGTERM to a holder (if it still is one); returns the one-line outcome.
    public var terminate: @Sendable (Holder) -> String
    /// Called before a scan the user asked for (`r`, or after an action), so that a
    /// `snapshot` that reuses unchanged results scans afresh.
    public var forceNextScan: (@Sendable () -> Void)?
    /// Clears the granted locks of a gluster image (`gluster volume clear-locks`); returns
    /// the one-line outcome. nil: `C` says "not available".
    public var clearLocks: (@Sendable (ImageLocks) -> String)? = nil
    /// Sends SIGTERM to a holder on another host of a cluster view (its own locksmith checks
    /// it: `RemoteSignal`), given the image's id; returns the one-line outcome. nil: `K`
    /// refuses holders of other hosts.
    public var terminateRemote: (@Sendable (Holder, String) -> String)? = nil

    public init(snapshot: @escaping @Sendable () throws -> PolledSnapshot,
                why: (@Sendable (ImageLocks, Bool) -> [String])? = nil,
                testAcquire: (@Sendable (ImageLocks, LockMode) -> [String])? = nil,
                terminate: @escaping @Sendable (Holder) -> String = TUISources.sigterm,
                forceNextScan: (@Sendable () -> Void)? = nil) {
        self.forceNextScan = forceNextScan
        self.snapshot = snapshot
        self.why = why
        self.testAcquire = testAcquire
        self.terminate = terminate
    }

    /// `t` through the locking core: the qemu scheme when the image has QEMU holders,
    /// else the lockfile scheme of `locker`'s lock dir. The lock is released at once.
    public static func testAcquire(using locker: ImageLocker) -> @Sendable (ImageLocks, LockMode) -> [String] {
        return { image, mode in
            guard let path = image.path else { return ["error: the image of this lock is unknown"] }
            do {
                return TestAcquireText.lines(try locker.probe(path, scheme: TestAcquireText.scheme(for: image), mode: mode))
            } catch {
                return ["error: \(error)"]
            }
        }
    }

    /// SIGTERM through a pidfd, only to the process the scan saw and while it still holds
    /// the lock (`HolderSignal`); otherwise a one-line refusal saying why.
    public static let sigterm: @Sendable (Holder) -> String = { h in
        HolderSignal.send(SIGTERM, named: "SIGTERM", to: h).line
    }
}

public struct TUIOptions: Sendable {
    /// Seconds between the end of one scan and the start of the next.
    public var interval: Double
    /// Colours (false for --no-color or NO_COLOR): attributes only.
    public var color: Bool
    /// End after this many refreshes (scans finished or failed).
    public var maxIterations: Int?
    /// The filter the view starts with (`/` changes it).
    public var filter: String

    public init(interval: Double = 2, color: Bool = true, maxIterations: Int? = nil, filter: String = "") {
        self.interval = interval
        self.color = color
        self.maxIterations = maxIterations
        self.filter = filter
    }

    /// NO_COLOR (https://no-color.org): any non-empty value turns colour off.
    public static func colorAllowed(flag noColor: Bool, environment: [String: String]) -> Bool {
        !noColor && (environment["NO_COLOR"] ?? "").isEmpty
    }
}

/// A terminal the runner can draw on and read keys from. `CursesTerminal` is the real one.
public protocol TerminalDevice: AnyObject {
    /// Takes over the terminal (full screen, raw keys, no echo).
    func start(color: Bool) throws
    /// Gives the terminal back as it was. Safe to call twice.
    func stop()
    var size: (width: Int, height: Int) { get }
    var unicode: Bool { get }
    /// The next key, or nil after `timeoutMilliseconds`.
    func readKey(timeoutMilliseconds: Int32) -> Key?
    func draw(_ buffer: ScreenBuffer)
}

/// Why the TUI ended.
public enum TUIExit: Equatable, Sendable {
    case quit
    case maxIterations
    /// SIGINT, SIGTERM or SIGHUP arrived.
    case signal(Int32)
}

/// The loop: keys and background results in, state changes, the screen redrawn. Scans
/// and actions run on their own threads and come back as events, so a slow scan never
/// holds up a key.
public final class TUIApp {
    public let sources: TUISources
    public let options: TUIOptions
    /// How long a key read waits: the loop's heartbeat for picking up results.
    public var pollMilliseconds: Int32 = 100

    public init(sources: TUISources, options: TUIOptions = TUIOptions()) {
        self.sources = sources
        self.options = options
    }

    /// Runs until `q`, a signal, or `maxIterations`. The terminal is restored on every way out.
    public func run(on terminal: TerminalDevice) throws -> TUIExit {
        // Block the quit signals before any thread of ours exists, so that every thread
        // inherits the mask and the signals wait for the loop to collect them.
        let signals = SignalGate(signals: [SIGINT, SIGTERM, SIGHUP])
        defer { signals.restore() }
        try terminal.start(color: options.color)
        defer { terminal.stop() }

        let mailbox = Mailbox()
        let scanner = Worker(name: "locksmith-scan", mailbox: mailbox)
        let actions = Worker(name: "locksmith-actions", mailbox: mailbox)
        defer {
            scanner.stop()
            actions.stop()
        }
        let size = terminal.size
        var state = TUIState(width: size.width, height: size.height, now: Date(),
                             whyAvailable: sources.why != nil, testAvailable: sources.testAcquire != nil,
                             filter: options.filter)
        state.clearLocksAvailable = sources.clearLocks != nil
        state.remoteSignalAvailable = sources.terminateRemote != nil
        var nextScan = monotonic()
        var scanInFlight = false
        var rescanWanted = false
        var dirty = true
        var lastSecond = Int(Date().timeIntervalSince1970)

        func startScan(forced: Bool) {
            scanInFlight = true
            state.handle(.scanStarted)
            let source = sources.snapshot
            let force = forced ? sources.forceNextScan : nil
            scanner.submit {
                force?()
                do { return .snapshot(try source()) } catch { return .scanFailed("\(error)") }
            }
        }

        while true {
            if let sig = signals.next() { return .signal(sig) }
            if !scanInFlight && (rescanWanted || monotonic() >= nextScan) {
                let forced = rescanWanted
                rescanWanted = false
                startScan(forced: forced)
                dirty = true
            }
            if dirty {
                terminal.draw(Renderer.render(state, unicode: terminal.unicode))
                dirty = false
            }
            var reactions: [Reaction] = []
            if let key = terminal.readKey(timeoutMilliseconds: pollMilliseconds) {
                if key == .resize {
                    let s = terminal.size
                    reactions.append(state.handle(.resize(width: s.width, height: s.height)))
                } else {
                    reactions.append(state.handle(.key(key)))
                }
            }
            for event in mailbox.drain() {
                switch event {
                case .snapshot, .scanFailed:
                    scanInFlight = false
                    nextScan = monotonic() + options.interval
                default: break
                }
                reactions.append(state.handle(event))
            }
            let second = Int(Date().timeIntervalSince1970)
            if second != lastSecond {
                lastSecond = second
                reactions.append(state.handle(.tick(Date())))
            }
            for r in reactions {
                if r.flags.contains(.redraw) { dirty = true }
                if r.flags.contains(.rescan) { rescanWanted = true }
                if r.flags.contains(.quit) { return .quit }
                for req in r.requests { perform(req, on: actions) }
            }
            if let max = options.maxIterations, state.refreshes >= max {
                terminal.draw(Renderer.render(state, unicode: terminal.unicode))
                return .maxIterations
            }
        }
    }

    private func perform(_ request: Request, on worker: Worker) {
        switch request {
        case .why(let image, let write):
            guard let why = sources.why else { return }
            worker.submit { .whyResult(imageID: image.id, write: write, lines: why(image, write)) }
        case .testAcquire(let image, let mode):
            guard let test = sources.testAcquire else { return }
            worker.submit { .testResult(imageID: image.id, mode: mode, lines: test(image, mode)) }
        case .terminateRemote(let holder, let imageID):
            guard let remote = sources.terminateRemote else { return }
            worker.submit { .terminateResult(remote(holder, imageID)) }
        case .terminate(let holder, _):
            let terminate = sources.terminate
            worker.submit { .terminateResult(terminate(holder)) }
        case .clearLocks(let image):
            guard let clear = sources.clearLocks else { return }
            worker.submit { .clearLocksResult(clear(image)) }
        }
    }
}

func monotonic() -> Double { Sys.monotonicSeconds() }

/// Events from background threads, collected by the loop.
final class Mailbox: @unchecked Sendable {
    private let lock = Lock()
    private var events: [TUIEvent] = []

    func post(_ e: TUIEvent) {
        lock.lock()
        events.append(e)
        lock.unlock()
    }

    func drain() -> [TUIEvent] {
        lock.lock()
        defer { lock.unlock() }
        let out = events
        events = []
        return out
    }
}

/// One thread running jobs in order; each job's event goes to the mailbox. A job that
/// is still running when the TUI ends is left to finish on its own (it only posts).
/// Without a thread (none could be created), each job runs when submitted.
final class Worker: @unchecked Sendable {
    private let cond = Condition()
    private var jobs: [@Sendable () -> TUIEvent] = []
    private var stopped = false
    private let mailbox: Mailbox
    private var threaded = false

    init(name: String, mailbox: Mailbox) {
        self.mailbox = mailbox
        threaded = Sys.startThread(name: name, runHereIfNone: false) { [self] in loop() }
    }

    func submit(_ job: @escaping @Sendable () -> TUIEvent) {
        guard threaded else { return mailbox.post(job()) }
        cond.lock()
        jobs.append(job)
        cond.signal()
        cond.unlock()
    }

    func stop() {
        cond.lock()
        stopped = true
        cond.signal()
        cond.unlock()
    }

    private func loop() {
        while true {
            cond.lock()
            while jobs.isEmpty && !stopped { cond.wait() }
            if stopped {
                cond.unlock()
                return
            }
            let job = jobs.removeFirst()
            cond.unlock()
            mailbox.post(job())
        }
    }
}
