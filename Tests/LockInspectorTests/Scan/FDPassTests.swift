import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// The fd pass's use of the fdinfo read before the kernel's table was (`readEarlyInfo`):
/// taken only where the table still agrees, else read again. A real OFD lock, held by this
/// process on a file of its own.
final class FDPassTests: XCTestCase {
    var dir: String!
    var fd: Int32 = -1

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fdpass-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        fd = open(dir + "/held", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var fl = flock()
        fl.l_type = Int16(F_WRLCK)
        fl.l_whence = Int16(SEEK_SET)
        XCTAssertEqual(fcntl(fd, 37 /* F_OFD_SETLK */, &fl), 0, "errno \(errno)")
    }

    override func tearDownWithError() throws {
        close(fd)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// This process's fd as the pass saw it, the kernel's held rows on its file now, and
    /// its fdinfo read now.
    func facts() throws -> (OpenFD, LockedRows, FDInfo) {
        let st = try Sys.fstat(fd).get()
        let key = FileKey(device: st.deviceID, inode: st.inode)
        let table = KernelLock.parseTable(try XCTUnwrap(ProcFS.readBytes("/proc/locks")))
        let rows = table.locks.filter { $0.fileKey == key }
        XCTAssertEqual(rows.count, 1, "\(table.locks)")
        var reader = ProcessFDReader(procRoot: "/proc")
        defer { reader.close() }
        let info = try XCTUnwrap(reader.info(pid: getpid(), fd: fd))
        let f = OpenFD(pid: getpid(), fd: fd, inode: key.inode, device: key.device, kind: .regular, info: nil)
        return (f, LockedRows([key: rows]), info)
    }

    func examine(_ f: OpenFD, _ locked: LockedRows, early: FDInfo?) -> Scan.FDFinding? {
        var reader = ProcessFDReader(procRoot: "/proc")
        defer { reader.close() }
        return Scan.examine(f, locked: locked, lockFiles: ([], [:]), paths: false, writers: false, early: early, reader: &reader)
    }

    func testAnEarlyReadTheTableAgreesWithIsTakenWithoutReadingAgain() throws {
        let (f, locked, info) = try facts()
        let found = try XCTUnwrap(examine(f, locked, early: info))
        XCTAssertFalse(found.fdinfoRead)
        XCTAssertEqual(found.locks, info.locks)
        XCTAssertEqual(found.locks.count, 1)
    }

    func testAnEarlyReadOfALockTheTableNoLongerHasIsReadAgain() throws {
        let (f, locked, info) = try facts()
        // As read before the lock changed: another range, which the table does not list.
        var stale = info
        stale.locks[0].start = 7
        let found = try XCTUnwrap(examine(f, locked, early: stale))
        XCTAssertTrue(found.fdinfoRead)
        XCTAssertEqual(found.locks, info.locks)
        // Read when it held nothing yet: read again too.
        stale.locks = []
        let again = try XCTUnwrap(examine(f, locked, early: stale))
        XCTAssertTrue(again.fdinfoRead)
        XCTAssertEqual(again.locks, info.locks)
    }

    func testAnEarlyReadOnAFileTheTableListsNoLockOnNamesNoLock() throws {
        let (f, _, info) = try facts()
        // The lock was released before the table was read: no held row on the file.
        XCTAssertNil(examine(f, LockedRows([:]), early: info))
    }
}
