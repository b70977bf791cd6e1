import _TestSupport
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
        XCTAssertFalse(Sys.hasFcntlLock(file))
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
        XCTAssertTrue(Sys.hasFcntlLock(file))
        XCTAssertFalse(Sys.hasFcntlLock(dir.file("missing")))
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
}
