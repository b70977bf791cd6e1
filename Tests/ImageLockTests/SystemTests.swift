import _TestSupport
import CLinux
import Foundation
import ImageLock
import XCTest

/// The system layer (Sources/ImageLock/System): what it reads agrees with the kernel, and it
/// never follows a link or opens anything but the kind of file asked for.
final class SystemTests: XCTestCase {
    func testDirectoryEntriesKeepEveryNameAndKindWithoutFollowing() throws {
        let dir = TempDir("sys-dir")
        let file = dir.makeFile("plain", size: 0)
        XCTAssertEqual(symlink(file, dir.file("link")), 0)
        XCTAssertEqual(mkfifo(dir.file("fifo"), 0o600), 0)
        let odd = PathBytes.string([0x6f, 0x64, 0x64, 0xff])  // "odd\xff": not UTF-8
        XCTAssertTrue(PathBytes.withCString(dir.path + "/" + odd) { creat($0, 0o600) } >= 0)
        let entries = try Sys.entries(dir.path).get()
        var kinds: [String: FileKind?] = [:]
        for e in entries { kinds[e.name] = e.kind }
        XCTAssertEqual(Set(kinds.keys), ["plain", "link", "fifo", odd])
        XCTAssertEqual(kinds["link"], .symlink)
        XCTAssertEqual(kinds["fifo"], .fifo)
        XCTAssertEqual(entries.first { $0.name == "plain" }?.inode, try Sys.lstat(file).get().inode)
        // The filtered form: the prefix joined, the filter over the raw name (`.` and `..`
        // included: the caller's filter decides), bytes kept.
        let filtered = try Sys.entries(dir.path, prefix: dir.path + "/", where: { $0[0] != CChar(UInt8(ascii: "f")) && !Sys.isDots($0) }).get()
        XCTAssertEqual(Set(filtered.map(\.name)), [dir.file("plain"), dir.file("link"), dir.path + "/" + odd])
        XCTAssertEqual(Sys.names(dir.path).map(Set.init), Set(["plain", "link", "fifo", odd]))
        XCTAssertNil(Sys.names(dir.file("missing")))
        if case .failure(let e) = Sys.entries(dir.file("missing")) { XCTAssertEqual(e.code, ENOENT) } else { XCTFail("listed a missing dir") }
        XCTAssertEqual(Sys.decimalName("1234"), 1234)
        XCTAssertNil(Sys.decimalName("12a"))
        XCTAssertTrue(Sys.isDots(".") && Sys.isDots("..") && !Sys.isDots("...") && !Sys.isDots(".a"))
    }

    func testWholeFileReadsRefuseLinksAndFIFOsWithoutBlocking() throws {
        let dir = TempDir("sys-read")
        let file = dir.file("text")
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("hello\n".utf8)))
        XCTAssertEqual(symlink(file, dir.file("link")), 0)
        XCTAssertEqual(mkfifo(dir.file("fifo"), 0o600), 0)
        XCTAssertEqual(Sys.readFile(file), Array("hello\n".utf8))
        XCTAssertNil(Sys.readFile(dir.file("link")), "a final link is never followed")
        XCTAssertEqual(try Sys.readRegularFile(file, limit: 3).get(), Array("hel".utf8))
        // A FIFO is never opened (its open would wait for a writer), a link is refused.
        if case .failure(let e) = Sys.readRegularFile(dir.file("fifo"), limit: 10) { XCTAssertEqual(e.code, EINVAL) } else { XCTFail() }
        if case .failure(let e) = Sys.readRegularFile(dir.file("link"), limit: 10) { XCTAssertEqual(e.code, ELOOP) } else { XCTFail() }
        // A /proc file made by one show call, read into a buffer.
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = try XCTUnwrap(Sys.readSmall("/proc/self/status", into: &buffer))
        XCTAssertTrue(String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("Name:"))
        XCTAssertNil(Sys.readSmall(dir.file("link"), into: &buffer))
    }

    func testStatAgreesWithTheKernelsLockTable() throws {
        let dir = TempDir("sys-stat")
        let file = dir.makeFile("locked", size: 4096)
        let st = try Sys.stat(file).get()
        XCTAssertEqual(st.kind, .regular)
        XCTAssertEqual(try Sys.stat("/dev/null").get().kind, .characterDevice)
        XCTAssertEqual(try Sys.lstat(dir.path).get().kind, .directory)
        XCTAssertEqual(try ImageLocker.probeLocksNow(path: file, bytes: [100], expect: nil), [])
        // An OFD lock: /proc/locks shows it on the device and
        // inode stat gave (dev_t → DeviceID), and a probe through another open file sees it.
        let fd = open(file, O_RDWR | O_CLOEXEC)
        defer { close(fd) }
        var fl = flock()
        (fl.l_type, fl.l_whence, fl.l_start, fl.l_len) = (Int16(F_WRLCK), Int16(SEEK_SET), 100, 1)
        XCTAssertEqual(fcntl(fd, 37 /* F_OFD_SETLK */, &fl), 0)
        let row = try XCTUnwrap(ProcFS.locks(procRoot: "/proc").first { $0.inode == st.inode && $0.start == 100 })
        XCTAssertEqual(row.device, st.deviceID)
        XCTAssertEqual(row.kind, .ofd)
        XCTAssertEqual(row.end, 100)
        XCTAssertEqual(try ImageLocker.probeLocksNow(path: file, bytes: [100], expect: (st.deviceID, st.inode)),
                       [ProbedLock(type: .write, range: ByteRange(start: 100, length: 1), pid: nil)])
        XCTAssertThrowsError(try ImageLocker.probeLocksNow(path: dir.file("missing"), bytes: [100], expect: nil))
    }

    func testTheMonotonicDeadlineIsNormalised() {
        for seconds in [0, 0.25, 0.999_999_999, 1.5, 30] as [Double] {
            let ts = Sys.monotonic(after: seconds)
            XCTAssertTrue(ts.tv_nsec >= 0 && ts.tv_nsec < 1_000_000_000, "\(seconds)")
        }
        let a = Sys.monotonicSeconds(), b = Sys.monotonicSeconds()
        XCTAssertLessThanOrEqual(a, b)
        XCTAssertFalse(Sys.hostName.isEmpty)
        XCTAssertEqual(Sys.userName(0), "root")
        XCTAssertTrue(Sys.groups(ofUser: 0).contains(0))
    }

    /// A blocked signal waits for `next`, is taken once, and the mask comes back on restore.
    func testSignalGateCollectsABlockedSignalOnce() {
        let gate = SignalGate(signals: [SIGUSR2])
        XCTAssertNil(gate.next(), "nothing pending yet")
        XCTAssertEqual(pthread_kill(pthread_self(), SIGUSR2), 0)
        XCTAssertEqual(gate.next(waiting: 5), SIGUSR2)
        XCTAssertNil(gate.next(waiting: 0.05), "taken once")
        gate.restore()
        var now = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &now)
        XCTAssertEqual(sigismember(&now, SIGUSR2), 0, "unblocked again")
    }

    /// `Sys.format` is C's printf in the C locale: what Foundation's String(format:) printed
    /// (the numbers of `list --timing`, the metrics, the TUI's clock, a cluster timeout),
    /// also after the process took the user's locale (the TUI does, for curses).
    func testFormatIsPrintfInTheCLocale() {
        let values: [Double] = [0, 0.00049, 0.0005, 1.25, -3.14159, 1234567.891, 1e-7, 5e20, .infinity]
        for v in values {
            XCTAssertEqual(Sys.format("%.3f", v), String(format: "%.3f", v))
            XCTAssertEqual(Sys.format("%.1f ms", v * 1000), String(format: "%.1f ms", v * 1000))
            XCTAssertEqual(Sys.format("%g", v), String(format: "%g", v))
        }
        XCTAssertEqual(Sys.format("%02d:%02d:%02d", Int32(7), Int32(5), Int32(59)), "07:05:59")
        XCTAssertEqual(Sys.format("%.70f", 1.0), "1." + String(repeating: "0", count: 70))
        let saved = String(cString: setlocale(LC_ALL, nil))
        defer { setlocale(LC_ALL, saved) }
        for name in ["de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8"] where setlocale(LC_NUMERIC, name) != nil {
            XCTAssertEqual(Sys.format("%.1f", 2.5), "2.5", name)
        }
    }

    /// Threads, locks and conditions on pthreads (what Thread, NSLock and NSCondition were):
    /// named threads with their own stacks run, a lock keeps a shared count exact, and a
    /// condition wakes the waiter.
    func testThreadsLocksAndConditionsWithoutFoundation() {
        final class Box: @unchecked Sendable {
            var n = 0
            var names: [String] = []
            var done = 0
        }
        let box = Box(), lock = Lock(), cond = Condition()
        let threads = 4, rounds = 10_000
        for i in 0..<threads {
            Sys.startThread(name: "locksmith-test-\(i)-with-a-long-name", stackSize: 1 << 20) {
                let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
                lock.withLock { box.names.append(comm.trimmingCharacters(in: .newlines)) }
                for _ in 0..<rounds { lock.withLock { box.n += 1 } }
                cond.lock()
                box.done += 1
                cond.signal()
                cond.unlock()
            }
        }
        cond.lock()
        while box.done < threads { cond.wait() }
        cond.unlock()
        XCTAssertEqual(box.n, threads * rounds)
        XCTAssertEqual(Set(box.names), Set((0..<threads).map { String("locksmith-test-\($0)-with-a-long-name".utf8.prefix(15))! }))
    }

    /// `keepOff`: the thread leaves the CPU it is kept off at once and is not allowed it
    /// after; kept off none, it is allowed every CPU it was before; an affinity set on it
    /// meanwhile by anyone else is kept. (On a thread of its own:
    /// the test's affinity is left alone. With one CPU allowed, nothing changes.)
    func testKeepingAThreadOffACPUMovesItAndLetsItBack() throws {
        final class Seen: @unchecked Sendable {
            var before: Set<Int32> = [], during: Set<Int32> = [], after: Set<Int32> = []
            var from: Int32 = -1, on: Int32 = -1, only: Int32 = -1
            var pinned: Set<Int32> = []
            var finished = false
        }
        let seen = Seen(), done = Condition()
        Sys.startThread {
            seen.before = allowedCPUs()
            seen.from = Sys.currentCPU()
            Sys.keepOff(cpu: seen.from)
            (seen.during, seen.on) = (allowedCPUs(), Sys.currentCPU())
            Sys.keepOff(cpu: nil)
            seen.after = allowedCPUs()
            // An affinity set since by someone else (here: pinned to one CPU, as `taskset -p`
            // would) stays: being kept off that one CPU leaves the thread on it.
            if let only = seen.before.max() {
                seen.pinned = Sys.onCPU(only) {
                    Sys.keepOff(cpu: only)
                    return allowedCPUs()
                }
                seen.only = only
            }
            done.lock(); seen.finished = true; done.signal(); done.unlock()
        }
        done.lock()
        while !seen.finished { done.wait() }
        done.unlock()
        XCTAssertTrue(seen.before.contains(seen.from), "\(seen.before) \(seen.from)")
        XCTAssertEqual(seen.after, seen.before)
        XCTAssertEqual(seen.pinned, [seen.only])
        if seen.before.count < 2 {
            XCTAssertEqual(seen.during, seen.before)
        } else {
            XCTAssertEqual(seen.during, seen.before.subtracting([seen.from]))
            XCTAssertNotEqual(seen.on, seen.from)
        }
    }

    /// `startThread(elsewhere:)`: the thread starts off the caller's CPU (where there is
    /// another), then may run on every CPU the caller may.
    func testAThreadStartedElsewhereStartsOffTheCallersCPUThenMayRunAnywhere() throws {
        final class Seen: @unchecked Sendable {
            var first: Int32 = -1
            var after: Set<Int32> = []
            var finished = false
        }
        let allowed = allowedCPUs()
        var steady = 0
        for _ in 0..<5 {
            let seen = Seen(), done = Condition()
            let before = Sys.currentCPU()
            XCTAssertTrue(Sys.startThread(elsewhere: true) {
                seen.first = Sys.currentCPU()
                seen.after = allowedCPUs()
                done.lock(); seen.finished = true; done.signal(); done.unlock()
            })
            let after = Sys.currentCPU()
            done.lock()
            while !seen.finished { done.wait() }
            done.unlock()
            XCTAssertEqual(seen.after, allowed, "its affinity given back as it starts")
            // (Only when the caller stayed on one CPU meanwhile is its CPU known.)
            if allowed.count >= 2 && before == after {
                steady += 1
                XCTAssertNotEqual(seen.first, before, "started on another CPU than the caller's")
            }
        }
        if allowed.count >= 2 { XCTAssertGreaterThan(steady, 0, "the caller moved at every start") }
    }

    /// `mapBigHeapBlocks`: after a big block is freed, a smaller one above the threshold that
    /// no free chunk holds is still mapped on its own, not carved out of the heap as glibc's
    /// raised default threshold would have it. In a fresh process (this test binary running
    /// only the probe below): malloc maps a block only when no free chunk holds it, and here
    /// the tests before leave ~140 MB of free chunks in the heap.
    func testBigHeapBlocksAreMappedWhateverWasFreedBefore() throws {
        let probe = "testHeapProbeInAFreshProcess"
        let r = try Run.capture("/proc/self/exe", ["ImageLockTests.SystemTests/\(probe)"],
                                environment: ["LOCKSMITH_HEAP_PROBE": "1"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue((r.stdout + r.stderr).contains("'SystemTests.\(probe)' passed"), "\(r)")
    }

    /// The probe of the test above, run by it in a process of its own (skipped otherwise):
    /// the block asked for is bigger than every free byte of the heap and under 32 MiB
    /// (glibc's highest raised threshold); glibc's malloc counts mapped blocks in `hblkhd`.
    func testHeapProbeInAFreshProcess() throws {
        guard ProcessInfo.processInfo.environment["LOCKSMITH_HEAP_PROBE"] != nil else {
            throw XCTSkip("run in a process of its own by testBigHeapBlocksAreMappedWhateverWasFreedBefore")
        }
        Sys.mapBigHeapBlocks(atLeast: 128 << 10)
        malloc_trim(0)
        let free = Int(mallinfo2().fordblks)
        let size = max(8 << 20, (free + (2 << 20)) & ~((1 << 20) - 1))
        XCTAssertLessThan(size + (2 << 20), 32 << 20, "\(free) bytes free in the heap")
        let big = malloc(size + (2 << 20))!
        memset(big, 1, size + (2 << 20))
        Glibc.free(big)
        let before = mallinfo2().hblkhd
        let block = malloc(size)!
        memset(block, 1, size)
        let mapped = mallinfo2().hblkhd - before
        Glibc.free(block)
        XCTAssertGreaterThanOrEqual(mapped, size, "\(free) bytes free before")
    }

    /// When no thread can be had (here: a stack no mmap can give), the body runs on the
    /// caller's thread, or not at all for a body that never returns (the TUI's worker).
    func testAThreadThatCannotStartRunsItsBodyHereOnlyWhenAsked() {
        final class Box: @unchecked Sendable { var ran = 0 }
        let box = Box()
        XCTAssertFalse(Sys.startThread(stackSize: 1 << 46, runHereIfNone: false) { box.ran += 1 })
        XCTAssertEqual(box.ran, 0)
        XCTAssertFalse(Sys.startThread(stackSize: 1 << 46) { box.ran += 1 })
        XCTAssertEqual(box.ran, 1)
    }

    /// The early read (what `list` and `why` start before main for /proc/locks): the whole
    /// file, past the 64 KB of one read, taken once and only under its own path; one at a
    /// time; a link is not followed and a FIFO does not block it.
    func testTheEarlyReadIsTheWholeFileTakenOnce() throws {
        let dir = TempDir("sys-early")
        let file = dir.file("table")
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data(bytes)))
        XCTAssertNil(Sys.takeEarlyRead(file), "none was started")
        XCTAssertEqual(Sys.startEarlyRead(file), 0)
        XCTAssertEqual(Sys.startEarlyRead(file), EBUSY)
        XCTAssertTrue(Sys.earlyReadRunning(file))
        XCTAssertFalse(Sys.earlyReadRunning(dir.file("other")))
        XCTAssertNil(Sys.takeEarlyRead(dir.file("other")))
        let read = try XCTUnwrap(Sys.takeEarlyRead(file))
        XCTAssertEqual(read.bytes, bytes)
        XCTAssertEqual(read.errno, 0)
        XCTAssertGreaterThan(read.seconds, 0)
        XCTAssertFalse(Sys.earlyReadRunning(file))
        XCTAssertNil(Sys.takeEarlyRead(file), "taken once")

        XCTAssertEqual(symlink(file, dir.file("link")), 0)
        XCTAssertEqual(Sys.startEarlyRead(dir.file("link")), 0)
        let link = try XCTUnwrap(Sys.takeEarlyRead(dir.file("link")))
        XCTAssertNil(link.bytes)
        XCTAssertEqual(link.errno, ELOOP)

        XCTAssertEqual(mkfifo(dir.file("fifo"), 0o600), 0)
        XCTAssertEqual(Sys.startEarlyRead(dir.file("fifo")), 0)
        let fifo = try XCTUnwrap(Sys.takeEarlyRead(dir.file("fifo")))
        XCTAssertEqual(fifo.bytes, [], "no writer: empty, without blocking")
    }

    /// The early reader starts on another CPU than its creator's (a new thread was often
    /// queued behind its creator, and asked for the table only when the creator next slept),
    /// then is allowed all its creator's CPUs again.
    func testTheEarlyReaderStartsOffItsCreatorsCPU() throws {
        let allowed = allowedCPUs()
        try XCTSkipIf(allowed.count < 2, "one CPU: nowhere else to start")
        let dir = TempDir("sys-early-cpu")
        let file = dir.file("table")
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        // Every other CPU busy too, as a host running its VMs is: the new thread has no idle
        // CPU to be placed on, and a busy creator's own is as good as any to the scheduler.
        final class Stop: @unchecked Sendable {
            let lock = NSLock()
            var stopped = false
            var isSet: Bool { lock.withLock { stopped } }
        }
        let stop = Stop()
        for _ in 1..<allowed.count { Thread { while !stop.isSet {} }.start() }
        defer { stop.lock.withLock { stop.stopped = true } }
        for _ in 0..<30 {
            XCTAssertEqual(Sys.startEarlyRead(file), 0)
            // The creator keeps its CPU busy for a while, as `main` does after the start.
            let until = DispatchTime.now().uptimeNanoseconds + 2_000_000
            while DispatchTime.now().uptimeNanoseconds < until {}
            XCTAssertNotNil(Sys.takeEarlyRead(file))
            let cpus = Sys.earlyReadCPUs()
            XCTAssertTrue(allowed.contains(cpus.creator) && allowed.contains(cpus.reader), "\(cpus)")
            XCTAssertNotEqual(cpus.reader, cpus.creator)
            XCTAssertEqual(Int(cpus.readerAllowed), allowed.count)
        }
    }
}
