import _TestSupport
import Foundation
import ImageLock
import XCTest

/// The fd pass's reads (System/ProcFDs.swift): the per-process reads relative to
/// /proc/PID/fd and fdinfo say what the path-based reads say, and statx of the fd entries
/// gives the inode and device stat gives.
final class ProcFDsTests: XCTestCase {
    func testRelativeReadsMatchPathReads() throws {
        let dir = TempDir("fdreader")
        let path = dir.makeFile("image.img", size: 4096)
        let pid = getpid()
        let ro = open(path, O_RDONLY | O_CLOEXEC), wo = open(path, O_WRONLY | O_CLOEXEC), rw = open(path, O_RDWR | O_CLOEXEC)
        defer { for fd in [ro, wo, rw] { close(fd) } }
        XCTAssertTrue(ro >= 0 && wo >= 0 && rw >= 0)
        // An OFD read lock through ro, for fdinfo to list.
        var fl = flock()
        fl.l_type = Int16(F_RDLCK)
        fl.l_whence = Int16(SEEK_SET)
        fl.l_start = 100
        fl.l_len = 1
        XCTAssertEqual(fcntl(ro, 37 /* F_OFD_SETLK */, &fl), 0)

        var reader = ProcessFDReader(procRoot: "/proc")
        defer { reader.close() }
        for (fd, flags) in [(ro, UInt32(0)), (wo, 1), (rw, 2)] {
            XCTAssertEqual(reader.openFlags(pid: pid, fd: fd), flags, "fd \(fd)")
            XCTAssertEqual(reader.link(pid: pid, fd: fd), path)
            XCTAssertEqual(reader.link(pid: pid, fd: fd), Sys.readlink("/proc/\(pid)/fd/\(fd)"))
        }
        var buffer = [UInt8](repeating: 0, count: 16384)
        let info = try XCTUnwrap(reader.info(pid: pid, fd: ro))
        let n = try XCTUnwrap(Sys.readSmall("/proc/\(pid)/fdinfo/\(ro)", into: &buffer))
        let byPath = try XCTUnwrap(buffer.withUnsafeBufferPointer { FDInfo.parse(UnsafeBufferPointer(rebasing: $0[0..<n])) })
        XCTAssertEqual(info.locks.map(\.identity), byPath.locks.map(\.identity))
        XCTAssertEqual(info.locks.map { "\($0.kind) \($0.type) \($0.start)" }, ["OFDLCK READ 100"])
        XCTAssertEqual(info.flags & 3, 0)

        // Another process next (its dirs replace these), then a closed fd and a gone process.
        let other = try Background(try Run.tool("sleep"), ["30"])
        defer { other.stop() }
        XCTAssertNotNil(reader.link(pid: other.pid, fd: 0))
        XCTAssertNil(reader.info(pid: pid, fd: 987))
        XCTAssertNil(reader.openFlags(pid: 999_999_999, fd: 0))
        XCTAssertEqual(reader.link(pid: pid, fd: rw), path)
    }

    func testTheFDPassSeesEveryFDWithTheInodeAndDeviceStatGives() throws {
        let dir = TempDir("fdpass")
        let path = dir.makeFile("image.img", size: 4096)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        let st = try Sys.stat(path).get()
        var fds: [OpenFD] = []
        XCTAssertNil(Sys.openFiles(procRoot: "/proc", pid: getpid(), into: &fds))
        let mine = try XCTUnwrap(fds.first { $0.fd == fd })
        XCTAssertEqual(mine.inode, st.inode)
        XCTAssertEqual(mine.device, st.deviceID)
        XCTAssertEqual(mine.kind, .regular)
        // The same from fdinfo (how a /proc copy is read): the inode, no device.
        var buffer = [UInt8](repeating: 0, count: 16384)
        var byInfo: [OpenFD] = []
        XCTAssertNil(Sys.openFilesFromFDInfo(procRoot: "/proc", pid: getpid(), buffer: &buffer, into: &byInfo))
        XCTAssertEqual(byInfo.first { $0.fd == fd }?.inode, st.inode)
        // A process that is gone: the failure, nothing appended.
        var none: [OpenFD] = []
        XCTAssertEqual(Sys.openFiles(procRoot: "/proc", pid: 999_999_999, into: &none)?.code, ENOENT)
        XCTAssertTrue(none.isEmpty)
    }
}
