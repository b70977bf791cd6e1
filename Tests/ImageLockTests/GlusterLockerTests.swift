import _TestSupport
import Foundation
import ImageLock
import XCTest

/// The gluster scheme of the core against the real test bed (scripts/gluster-testbed).
final class GlusterLockerTests: XCTestCase {
    func testExclusiveBlocksAndNamesThisPid() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("core-excl"))
        let locker = ImageLocker()
        XCTAssertTrue(try locker.probe(url, scheme: .lockfile, mode: .exclusive).acquired, "a gluster:// name implies the scheme")

        guard case .acquired(let held) = try locker.acquire(url, scheme: .gluster, mode: .exclusive) else {
            return XCTFail("a free image could not be locked")
        }
        XCTAssertEqual(held.scheme, .gluster)
        XCTAssertEqual(held.image, url)
        // Each lock has a client of its own, so this process's probes and locks see it.
        let probe = try locker.probe(url, scheme: .gluster, mode: .shared)
        XCTAssertFalse(probe.acquired)
        XCTAssertEqual(probe.scheme, .gluster)
        XCTAssertEqual(probe.contention?.blocking.first?.type, .write)
        XCTAssertEqual(probe.contention?.blocking.first?.range, .wholeFile)
        XCTAssertEqual(probe.contention?.glusterHolders.map(\.pid), [getpid()], "l_pid = the holder's pid")
        guard case .busy(let c) = try locker.acquire(url, scheme: .gluster, mode: .exclusive) else {
            return XCTFail("a second exclusive lock was granted")
        }
        XCTAssertEqual(c.glusterHolders.first?.pid, getpid())

        held.release()
        XCTAssertTrue(try locker.probe(url, scheme: .gluster, mode: .exclusive).acquired, "released at once")
    }

    func testSharedLocksCoexistAndWaitGetsTheLock() throws {
        let bed = try GlusterTestBed.require()
        let url = bed.url(try bed.makeFile("core-shared"))
        let locker = ImageLocker()
        guard case .acquired(let s1) = try locker.acquire(url, scheme: .gluster, mode: .shared),
              case .acquired(let s2) = try locker.acquire(url, scheme: .gluster, mode: .shared) else {
            return XCTFail("two shared locks must coexist")
        }
        XCTAssertTrue(try locker.probe(url, scheme: .gluster, mode: .shared).acquired)
        XCTAssertFalse(try locker.probe(url, scheme: .gluster, mode: .exclusive).acquired)
        s1.release()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { s2.release() }
        let start = Date()
        guard case .acquired(let ex) = try locker.acquire(url, scheme: .gluster, mode: .exclusive, wait: 10) else {
            return XCTFail("--wait did not get the lock after the shared holders left")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        ex.release()
    }

    /// The test bed runs these tests once with server.statedump-path set and once left at
    /// Gluster's default, which GlusterFS >= 9 prints as `/var/run/gluster (DEFAULT)`.
    func testStatedumpDirectorySetOrDefault() throws {
        let bed = try GlusterTestBed.require()
        let raw = try Run.capture(try Run.tool("gluster"), ["--mode=script", "--glusterd-sock=\(bed.socket)",
                                                          "volume", "get", bed.volume, "server.statedump-path"])
        XCTAssertEqual(raw.status, 0, "\(raw)")
        XCTAssertEqual(raw.stdout.contains("(DEFAULT)"), bed.dumpDirectory == "/var/run/gluster", raw.stdout)
        XCTAssertEqual(try bed.cli.statedumpDirectory(volume: bed.volume), bed.dumpDirectory)
    }

    func testStatedumpNamesHostPidAndOwner() throws {
        let bed = try GlusterTestBed.require()
        let name = try bed.makeFile("core-dump")
        let url = bed.url(name)
        guard case .acquired(let held) = try ImageLocker().acquire(url, scheme: .gluster, mode: .shared) else {
            return XCTFail("not acquired")
        }
        defer { held.release() }
        let dump = try bed.cli.statedump(volume: bed.volume)
        XCTAssertFalse(dump.files.isEmpty)
        XCTAssertEqual(dump.bricksNotHere, [], "the test bed's one brick is on this node")
        XCTAssertTrue(dump.files.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "dump files removed once read")
        let mine = dump.records.filter { $0.path == "/" + name }
        XCTAssertEqual(mine.count, 1, "\(dump.records)")
        let r = try XCTUnwrap(mine.first)
        XCTAssertEqual(r.type, .read)
        XCTAssertEqual(r.state, .active)
        XCTAssertEqual(r.volume, bed.volume)
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        let hostname = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        XCTAssertEqual(r.owner?.text, "\(hostname):\(getpid())", "lk-owner <hostname>:<pid>")
        XCTAssertEqual(r.host, hostname)
        XCTAssertEqual(r.holderPID, getpid())
        XCTAssertEqual(r.clientPID, getpid(), "a gfapi client's connection is its own process")
        XCTAssertEqual(r.host, r.clientHost)
        let holders = GlusterLockHolder.conflicting(in: dump.records, path: "/" + name, type: .write)
        XCTAssertEqual(holders.map(\.pid), [getpid()])
    }

    func testClearGrantedLocksThroughTheCLI() throws {
        let bed = try GlusterTestBed.require()
        let name = try bed.makeFile("core-clear")
        let url = bed.url(name)
        guard case .acquired(let held) = try ImageLocker().acquire(url, scheme: .gluster, mode: .exclusive) else {
            return XCTFail("not acquired")
        }
        let cleared = try bed.cli.clearGrantedLocks(volume: bed.volume, path: "/" + name)
        XCTAssertEqual(cleared.grantedCleared, 1, cleared.output)
        XCTAssertTrue(try ImageLocker().probe(url, scheme: .gluster, mode: .exclusive).acquired)
        let again = try bed.cli.clearGrantedLocks(volume: bed.volume, path: "/" + name)
        XCTAssertEqual(again.grantedCleared, 0)
        XCTAssertTrue(again.output.hasSuffix("No locks cleared."), again.output)
        held.release()  // unlocking a lock that is gone is harmless
        XCTAssertThrowsError(try bed.cli.clearGrantedLocks(volume: bed.volume, path: "/no-such-file.img")) { e in
            XCTAssertTrue("\(e)".contains("No such file or directory"), "\(e)")
        }
    }

    func testFailuresAreErrorsWithinTheTimeout() throws {
        let bed = try GlusterTestBed.require()
        let locker = ImageLocker(glusterTimeout: 2)
        func expect(_ url: String, _ check: (ImageLockError) -> Bool) {
            let start = Date()
            XCTAssertThrowsError(try locker.probe(url, scheme: .gluster, mode: .exclusive), url) { e in
                XCTAssertTrue((e as? ImageLockError).map(check) ?? false, "\(url): \(e)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 2.5, url)
        }
        expect("gluster://\(bed.host)/no-such-volume/x.img") {
            if case .glusterUnreachable(_, "no-such-volume", ENOENT) = $0 { return true } else { return false }
        }
        expect("gluster://\(bed.host):24999/\(bed.volume)/x.img") {
            if case .glusterUnreachable("\(bed.host):24999", _, ENOTCONN) = $0 { return true } else { return false }
        }
        expect(bed.url("no-such-file.img")) { $0 == .imageMissing(path: bed.url("no-such-file.img")) }
        XCTAssertThrowsError(try locker.acquire("/tmp/local.img", scheme: .gluster, mode: .exclusive)) { e in
            XCTAssertTrue("\(e)".contains("needs an image named gluster://"), "\(e)")
        }
    }

    func testSilentServerTimesOut() throws {
        _ = try GlusterTestBed.require()
        // A peer that accepts TCP and never answers: glfs_init would block forever.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.3")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        XCTAssertEqual(withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }, 0)
        XCTAssertEqual(listen(listener, 16), 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))

        let start = Date()
        XCTAssertThrowsError(try ImageLocker(glusterTimeout: 1).acquire("gluster://127.0.0.3:\(port)/v/x.img", scheme: .gluster,
                                                                         mode: .exclusive)) { e in
            guard case ImageLockError.glusterTimedOut(_, let server, 1) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(server, "127.0.0.3:\(port)")
            XCTAssertTrue("\(e)".contains("did not answer within 1 s"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.5)
    }
}
