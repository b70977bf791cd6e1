import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// A fake /proc tree, built at test time, for what a live system cannot produce on demand:
/// malformed /proc/locks lines, `<none>` inodes, unreadable fd dirs, a holder that vanished,
/// a blocked OFD request.
final class InspectorFixtureTests: XCTestCase {
    struct FakeProc {
        let root: String

        func write(_ rel: String, _ text: String) throws {
            let p = root + "/" + rel
            try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try text.write(toFile: p, atomically: false, encoding: .utf8)
        }

        /// A process: status, cmdline, stat (starttime in ticks), and fds with their fdinfo.
        func process(_ pid: Int32, name: String, uid: UInt32 = 0, args: [String], startTicks: Int = 100,
                     fds: [(fd: Int32, target: String, flags: String, ino: UInt64, locks: [String])] = []) throws {
            try write("\(pid)/status", "Name:\t\(name)\nState:\tS (sleeping)\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\n")
            try write("\(pid)/cmdline", args.joined(separator: "\0") + "\0")
            let fields = ["S"] + Array(repeating: "0", count: 18) + [String(startTicks), "0"]
            try write("\(pid)/stat", "\(pid) (\(name)) " + fields.joined(separator: " ") + "\n")
            try FileManager.default.createDirectory(atPath: "\(root)/\(pid)/fd", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(root)/\(pid)/fdinfo", withIntermediateDirectories: true)
            for f in fds {
                try FileManager.default.createSymbolicLink(atPath: "\(root)/\(pid)/fd/\(f.fd)", withDestinationPath: f.target)
                var info = "pos:\t0\nflags:\t\(f.flags)\nmnt_id:\t27\nino:\t\(f.ino)\n"
                for (i, l) in f.locks.enumerated() { info += "lock:\t\(i + 1): \(l)\n" }
                try write("\(pid)/fdinfo/\(f.fd)", info)
            }
        }
    }

    func testOddCasesAreToleratedAndRecorded() throws {
        let dir = TempDir("fixture")
        let proc = FakeProc(root: dir.file("proc"))
        let lockDir = dir.file("locks")
        try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: true)
        let heldImage = "/images/held.img"
        let lockFile = lockDir + "/" + ImageLocker.lockFileName(realPath: heldImage)
        _ = FileManager.default.createFile(atPath: lockFile, contents: Data((heldImage + "\n").utf8))
        var st = stat()
        XCTAssertEqual(stat(lockFile, &st), 0)
        // The device as /proc/locks prints it (gnu_dev_major/minor of st_dev).
        let dev = UInt64(st.st_dev)
        let devText = DeviceID(major: UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)),
                               minor: UInt32((dev & 0xff) | ((dev >> 12) & ~0xff))).description

        let rw = ["OFDLCK ADVISORY  READ -1 fe:00:5000 100 101", "OFDLCK ADVISORY  READ -1 fe:00:5000 103 103",
                  "OFDLCK ADVISORY  READ -1 fe:00:5000 201 201", "OFDLCK ADVISORY  READ -1 fe:00:5000 203 203"]
        let ro = ["OFDLCK ADVISORY  READ -1 fe:00:6000 100 100", "OFDLCK ADVISORY  READ -1 fe:00:6000 201 201",
                  "OFDLCK ADVISORY  READ -1 fe:00:6000 203 203"]
        try proc.write("locks", """
            1: OFDLCK ADVISORY  READ -1 fe:00:5000 100 101
            2: OFDLCK ADVISORY  READ -1 fe:00:5000 103 103
            3: OFDLCK ADVISORY  READ -1 fe:00:5000 201 201
            4: OFDLCK ADVISORY  READ -1 fe:00:5000 203 203
            5: OFDLCK ADVISORY  READ -1 fe:00:6000 100 100
            5: -> POSIX  ADVISORY  WRITE 500 fe:00:6000 0 EOF
            5: -> OFDLCK ADVISORY  WRITE -1 fe:00:6000 100 100
            6: OFDLCK ADVISORY  READ -1 fe:00:6000 100 100
            7: OFDLCK ADVISORY  READ -1 fe:00:6000 201 201
            8: OFDLCK ADVISORY  READ -1 fe:00:6000 201 201
            9: OFDLCK ADVISORY  READ -1 fe:00:6000 203 203
            10: OFDLCK ADVISORY  READ -1 fe:00:6000 203 203
            11: POSIX  ADVISORY  WRITE 300 \(devText):\(st.st_ino) 0 EOF
            12: OFDLCK ADVISORY  READ -1 fe:00:7000 100 100
            13: FLOCK  ADVISORY  WRITE 600 <none>:0 0 EOF
            14: LEASE  ACTIVE    READ 601 00:05:1234 0 EOF
            this is not a lock
            15: POSIX  ADVISORY  WRITE notapid fe:00:1 0 EOF

            """)
        try proc.write("stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 5\n")
        try proc.process(100, name: "qemu-system-x86", args: [
            "/usr/bin/qemu-system-x86_64", "-name", "guest=vm1,debug-threads=on",
            "-drive", "file=/images/vm1.qcow2,format=qcow2,if=virtio",
        ], startTicks: 250, fds: [(0, "/dev/null", "0100002", 7, []), (1, "pipe:[123]", "01", 8, []),
                                   (5, "/images/vm1.qcow2", "02100002", 5000, rw)])
        try proc.process(200, name: "qemu-io", args: ["qemu-io", "-r", "-c", "sleep 1", "/images/base.qcow2"],
                         fds: [(4, "/images/base.qcow2", "02100000", 6000, ro)])
        try proc.process(201, name: "qemu-io", args: ["qemu-io", "-r", "-c", "sleep 1", "/images/base.qcow2"],
                         fds: [(4, "/images/base.qcow2", "02100000", 6000, ro)])
        // pid 300 (the holder of the POSIX lock on the lock file) vanished: no directory.
        // pid 400: its fd dir cannot be listed (a file where the dir should be: ENOTDIR).
        try proc.write("400/status", "Name:\tsecretive\nUid:\t0\t0\t0\t0\n")
        try proc.write("400/cmdline", "secretive\0--quiet\0")
        try proc.write("400/fd", "")
        // pid 2: a kernel thread (empty cmdline) whose fds cannot be read either: it opens no files.
        try proc.write("2/status", "Name:\tkthreadd\nUid:\t0\t0\t0\t0\n")
        try proc.write("2/cmdline", "")
        try proc.write("2/fd", "")
        try proc.process(500, name: "qemu-img", args: ["qemu-img", "info", "/images/base.qcow2"])

        let snap = try Inspector(InspectorOptions(procRoot: proc.root, lockDirectories: [lockDir],
                                                  libvirtDirectories: [], leaseDirectories: [])).snapshot()
        func image(_ id: String) throws -> ImageLocks {
            try XCTUnwrap(snap.images.first { $0.id == id }, "\(id) not in \(snap.images.map(\.id))")
        }

        let vm1 = try image("/images/vm1.qcow2")
        XCTAssertEqual(vm1.holders.count, 1)
        let h = try XCTUnwrap(vm1.holders.first)
        XCTAssertEqual(h.pid, 100)
        XCTAssertEqual(h.fd, 5)
        XCTAssertEqual(h.command, "qemu-system-x86")
        XCTAssertEqual(h.vm, "vm1")
        XCTAssertEqual(h.openMode, .readWrite)
        XCTAssertEqual(h.qemu, .readWrite)
        XCTAssertEqual(h.user, "root")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        XCTAssertEqual(h.started, Date(timeIntervalSince1970: 1_700_000_000 + 250 / ticks))
        XCTAssertEqual(vm1.locks.count, 4)
        XCTAssertEqual(vm1.inode, 5000)

        // Identical OFD read locks of two processes: two holders; the POSIX waiter by pid.
        let base = try image("/images/base.qcow2")
        XCTAssertEqual(base.holders.map(\.pid), [200, 201])
        XCTAssertEqual(base.holders.map(\.fd), [4, 4])
        XCTAssertTrue(base.holders.allSatisfy { $0.qemu == .readOnly && $0.openMode == .readOnly })
        XCTAssertEqual(base.waiters.map(\.pid), [500])
        XCTAssertEqual(base.waiters.first?.command, "qemu-img")
        XCTAssertEqual(base.locks.filter(\.isWaiter).count, 2)
        XCTAssertEqual(base.locks.filter(\.isWaiter).map(\.blockedBy), [5, 5])
        let rows = LockRow.rows(of: snap).filter { $0.image.id == base.id }
        XCTAssertEqual(rows.map { Column.mode.cell($0) }, ["ro", "ro", "wait"])

        // The lock file's holder vanished: named by the pid /proc/locks gives.
        let held = try image(heldImage)
        XCTAssertEqual(held.schemes, [.lockfile])
        XCTAssertEqual(held.lockFiles, [lockFile])
        XCTAssertEqual(held.holders.map(\.pid), [300])
        XCTAssertEqual(held.holders.first?.command, "?")
        XCTAssertNil(held.holders.first?.fd)
        XCTAssertEqual(snap.lockFiles.first?.mappedBy, "content")

        // A QEMU lock nobody lists (its holder's fds cannot be read): the image is unknown.
        let hidden = try image("fe:00:7000")
        XCTAssertNil(hidden.path)
        XCTAssertEqual(hidden.schemes, [.qemu])
        XCTAssertTrue(hidden.holders.isEmpty)

        // Unrelated locks (flock on <none>, a lease) are not images.
        XCTAssertEqual(snap.images.count, 4)

        let unseen = snap.unseen.map { "\($0.what) | \($0.why)" }.joined(separator: "\n")
        XCTAssertTrue(unseen.contains("open files of pid 400 (secretive)"), unseen)
        XCTAssertTrue(unseen.contains("details of pid 300"), unseen)
        XCTAssertFalse(unseen.contains("kthreadd"), unseen)
        XCTAssertTrue(unseen.contains("holder of OFDLCK READ lock on fe:00:7000 bytes 100-100"), unseen)
        XCTAssertTrue(unseen.contains("waiter for OFDLCK WRITE lock on fe:00:6000"), unseen)
        XCTAssertTrue(unseen.contains("this is not a lock"), unseen)
        XCTAssertTrue(unseen.contains("notapid"), unseen)
        XCTAssertEqual(snap.unseen.count, 6, unseen)
    }

    func testEmptyProcHasNoImages() throws {
        let dir = TempDir("emptyproc")
        let proc = FakeProc(root: dir.file("proc"))
        try proc.write("locks", "")
        let snap = try Inspector(InspectorOptions(procRoot: proc.root, lockDirectories: [dir.file("missing")],
                                                  libvirtDirectories: [], leaseDirectories: [])).snapshot()
        XCTAssertTrue(snap.images.isEmpty)
        XCTAssertEqual(snap.unseen, [Unseen(what: "lock dir \(dir.file("missing"))", why: "No such file or directory")])
    }

    func testProcWithoutLocksFileIsAnError() throws {
        let dir = TempDir("nolocks")
        XCTAssertThrowsError(try Inspector(InspectorOptions(procRoot: dir.path)).snapshot())
    }
}
