import _TestSupport
import Foundation
import ImageLock
import LockInspector
import XCTest

/// The inspector against real holders: qemu-nbd, two qemu-io readers, locksmith hold and
/// a python process with an empty lock file.
final class InspectorLiveTests: XCTestCase {
    /// Only the scenario's lock dir; no libvirt or virtlockd dirs of the host.
    func options(_ s: LiveScenario) -> InspectorOptions {
        InspectorOptions(lockDirectories: [s.lockDir], libvirtDirectories: [], leaseDirectories: [])
    }

    func testEveryImageAndEveryHolderExact() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let snap = try Inspector(options(s)).snapshot()
        func image(_ path: String) throws -> ImageLocks {
            try XCTUnwrap(snap.images.first { $0.path == path }, "\(path) not found in \(snap.images.map(\.id))")
        }

        // qemu-nbd: one holder, a writer.
        let w = try image(s.writable)
        XCTAssertEqual(w.schemes, [.qemu])
        XCTAssertEqual(w.holders.map(\.pid), [s.writer.pid])
        let wh = try XCTUnwrap(w.holders.first)
        XCTAssertEqual(wh.command, "qemu-nbd")
        XCTAssertNotNil(wh.fd)
        XCTAssertEqual(wh.openMode, .readWrite)
        XCTAssertEqual(wh.qemu, .readWrite)
        XCTAssertTrue(wh.qemu?.held.contains(.write) ?? false)
        XCTAssertEqual(wh.modeSummary, "rw")
        XCTAssertEqual(wh.args.last, s.writable)
        XCTAssertEqual(wh.user, "root")
        XCTAssertLessThan(abs(try XCTUnwrap(wh.started).timeIntervalSinceNow), 120)
        XCTAssertEqual(w.locks.count, 4)

        // Two qemu-io readers with identical OFD read locks: two holders, each its own pid.
        let b = try image(s.base)
        XCTAssertEqual(b.schemes, [.qemu])
        XCTAssertEqual(Set(b.holders.map(\.pid)), Set(s.readers.map(\.pid)))
        XCTAssertEqual(b.holders.count, 2)
        for h in b.holders {
            XCTAssertEqual(h.command, "qemu-io")
            XCTAssertEqual(h.openMode, .readOnly)
            XCTAssertEqual(h.qemu, .readOnly)
            XCTAssertTrue(h.qemu?.unshared.contains(.write) ?? false)
            XCTAssertFalse(h.qemu?.held.contains(.write) ?? true)
        }
        XCTAssertEqual(b.locks.count, 6)

        // locksmith hold: a lock file with the realpath inside.
        let hd = try image(s.held)
        XCTAssertEqual(hd.schemes, [.lockfile])
        XCTAssertEqual(hd.lockFiles, [s.heldLockFile])
        XCTAssertEqual(hd.holders.map(\.pid), [s.holder.pid])
        XCTAssertEqual(hd.holders.first?.lockType, .write)
        XCTAssertEqual(hd.holders.first?.command, "locksmith")
        XCTAssertNotNil(hd.holders.first?.fd)
        let heldEntry = try XCTUnwrap(snap.lockFiles.first { $0.path == s.heldLockFile })
        XCTAssertTrue(heldEntry.held)
        XCTAssertEqual(heldEntry.image, s.held)

        // python: an empty lock file, mapped by the image it has open; a classic POSIX lock.
        let py = try image(s.pyImage)
        XCTAssertEqual(py.schemes, [.lockfile])
        XCTAssertEqual(py.lockFiles, [s.pyLockFile])
        XCTAssertEqual(py.holders.map(\.pid), [s.python.pid])
        XCTAssertEqual(py.holders.first?.lockType, .write)
        XCTAssertEqual(py.holders.first?.openMode, .writeOnly)
        XCTAssertEqual(py.locks.first?.kind, .posix)
        let pyEntry = try XCTUnwrap(snap.lockFiles.first { $0.path == s.pyLockFile })
        XCTAssertEqual(pyEntry.mappedBy, "open file")
        XCTAssertEqual(pyEntry.image, s.pyImage)

        // Nothing else from the scenario's dir, and every row of the table has a holder.
        let rows = LockRow.rows(of: snap).filter { ($0.image.path ?? "").hasPrefix(s.dir.path) }
        XCTAssertEqual(rows.count, 5)
        XCTAssertTrue(rows.allSatisfy { $0.holder != nil })
    }

    /// An image with a lock file in each of two lock dirs and QEMU's own locks is one entry.
    func testOneImageIsOneEntryAcrossLockDirsAndSchemes() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let second = TempDir("locks2")
        let name = ImageLocker.lockFileName(realPath: s.base)
        for dir in [s.lockDir, second.path] {
            XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data((s.base + "\n").utf8)))
        }
        let snap = try Inspector(InspectorOptions(lockDirectories: [s.lockDir, second.path], libvirtDirectories: [],
                                                  leaseDirectories: [])).snapshot()
        let entries = snap.images.filter { $0.id == s.base }
        XCTAssertEqual(entries.count, 1, "\(snap.images.map(\.id))")
        let b = try XCTUnwrap(entries.first)
        XCTAssertEqual(b.lockFiles, [s.lockDir + "/" + name, second.path + "/" + name])
        XCTAssertEqual(b.schemes, [.lockfile, .qemu])
        XCTAssertEqual(Set(b.holders.map(\.pid)), Set(s.readers.map(\.pid)))
        XCTAssertEqual(b.locks.count, 6)
        XCTAssertNotNil(b.inode)
        // Still in path order, each image once.
        let paths = snap.images.compactMap(\.path)
        XCTAssertEqual(paths, paths.sorted())
        XCTAssertEqual(Set(snap.images.map(\.id)).count, snap.images.count)
    }

    func testStaleAndUnknownLockFilesAppear() throws {
        let dir = TempDir("stale")
        let image = dir.makeFile("gone.img")
        let stale = dir.file(ImageLocker.lockFileName(realPath: image))
        let unknown = dir.file(".qemu-" + String(repeating: "0", count: 40) + ".lock")
        let forged = dir.file(".qemu-" + String(repeating: "1", count: 40) + ".lock")
        _ = FileManager.default.createFile(atPath: stale, contents: Data((image + "\n").utf8))
        _ = FileManager.default.createFile(atPath: unknown, contents: Data())
        // Content whose SHA-1 does not match the name is not trusted.
        _ = FileManager.default.createFile(atPath: forged, contents: Data("/etc/shadow\n".utf8))
        try FileManager.default.createSymbolicLink(atPath: dir.file(".qemu-" + String(repeating: "2", count: 40) + ".lock"),
                                                   withDestinationPath: "/etc/passwd")
        var t = SnapshotTimings()
        let snap = try Inspector(InspectorOptions(lockDirectories: [dir.path], libvirtDirectories: [],
                                                  leaseDirectories: [])).snapshot(timings: &t)
        XCTAssertEqual(snap.lockFiles.count, 4)
        XCTAssertEqual(t.contentReads, 2, "stale and forged are read; the empty one and the link are not")
        let s = try XCTUnwrap(snap.images.first { $0.lockFiles == [stale] })
        XCTAssertEqual(s.path, image)
        XCTAssertTrue(s.holders.isEmpty)
        XCTAssertEqual(snap.lockFiles.first { $0.path == stale }?.mappedBy, "content")
        for path in [unknown, forged] {
            let u = try XCTUnwrap(snap.images.first { $0.lockFiles == [path] })
            XCTAssertNil(u.path)
            XCTAssertEqual(u.id, path)
        }
        let link = try XCTUnwrap(snap.lockFiles.first { $0.kind == .symlink })
        XCTAssertNil(link.image)
        XCTAssertFalse(snap.images.contains { $0.lockFiles.contains(link.path) }, "a symlink is reported, not listed as an image")
        XCTAssertEqual(Column.image.cell(LockRow(image: snap.images.last!, holder: nil)), "<unknown> \(snap.images.last!.id)")
    }

    /// Every name of a held lock file is held (the kernel lists the file once, by its key;
    /// `markHeld` passes it on to the other names only where names share a key).
    func testEveryNameOfAHeldLockFileIsHeld() throws {
        let dir = TempDir("hardlinks")
        let held = dir.file(ImageLocker.lockFileName(realPath: "/images/a.img"))
        let otherName = dir.file(ImageLocker.lockFileName(realPath: "/images/b.img"))
        let free = dir.file(ImageLocker.lockFileName(realPath: "/images/c.img"))
        _ = FileManager.default.createFile(atPath: held, contents: Data())
        _ = FileManager.default.createFile(atPath: free, contents: Data())
        try FileManager.default.linkItem(atPath: held, toPath: otherName)
        let python = try Run.tool("python3")
        let p = try Background(python, ["-c", "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(60)", held])
        defer { p.stop() }
        p.waitForLocks(on: held)
        let snap = try Inspector(InspectorOptions(lockDirectories: [dir.path], libvirtDirectories: [],
                                                  leaseDirectories: [])).snapshot()
        let byPath = Dictionary(uniqueKeysWithValues: snap.lockFiles.map { ($0.path, $0.held) })
        XCTAssertEqual(byPath, [held: true, otherName: true, free: false])
    }

    func testImagesDirMapsLockFilesWithoutOpeningThem() throws {
        let images = TempDir("images")
        let locks = TempDir("locks")
        let image = images.makeFile("vm9.img", size: 0)
        let lf = locks.file(ImageLocker.lockFileName(realPath: image))
        _ = FileManager.default.createFile(atPath: lf, contents: Data())
        var t = SnapshotTimings()
        let snap = try Inspector(InspectorOptions(lockDirectories: [locks.path], imageDirectories: [images.path],
                                                  libvirtDirectories: [], leaseDirectories: [])).snapshot(timings: &t)
        XCTAssertEqual(snap.lockFiles.first?.image, image)
        XCTAssertEqual(snap.lockFiles.first?.mappedBy, "images dir")
        XCTAssertEqual(t.contentReads, 0)
    }

    func testInspectionChangesNothing() throws {
        let s = try LiveScenario()
        defer { s.stop() }
        let stale = TempDir("unchanged")
        _ = FileManager.default.createFile(atPath: stale.file(".qemu-" + String(repeating: "a", count: 40) + ".lock"),
                                       contents: Data())
        func listing() throws -> [String] {
            try ([s.lockDir, stale.path]).flatMap { d in
                try FileManager.default.contentsOfDirectory(atPath: d).map { d + "/" + $0 }
            }.sorted()
        }
        // Other worktrees' tests take locks on this host at the same time: compare the
        // kernel's rows on every file of the scenario, IDs left out.
        func table() throws -> [String] {
            try (listing() + [s.writable, s.base, s.held, s.pyImage]).flatMap(ProcLocks.rows(for:))
                .map { "\($0.kind) \($0.type) \($0.pid ?? -1) \($0.inode ?? 0) \($0.start) \($0.end ?? -1) \($0.isWaiter)" }
                .sorted()
        }
        let locksBefore = try table()
        XCTAssertEqual(locksBefore.count, 4 + 6 + 2)
        let filesBefore = try listing()
        let snap = try Inspector(InspectorOptions(lockDirectories: [s.lockDir, stale.path], libvirtDirectories: [],
                                                  leaseDirectories: [])).snapshot()
        XCTAssertGreaterThanOrEqual(snap.images.count, 5)
        XCTAssertEqual(try table(), locksBefore)
        XCTAssertEqual(try listing(), filesBefore)
    }

    func testMissingProcRootIsAnError() {
        XCTAssertThrowsError(try Inspector(InspectorOptions(procRoot: "/nonexistent-proc")).snapshot()) { e in
            XCTAssertEqual(e as? InspectorError, .procUnreadable(path: "/nonexistent-proc", errno: ENOENT))
        }
    }
}
