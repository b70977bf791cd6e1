import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// The pure rule, on inputs built in code (no /proc, no QEMU).
final class DiagnosisTests: XCTestCase {
    let dev = DeviceID(major: 0xfe, minor: 0)

    func file(_ path: String, inode: UInt64, kind: FileKind? = .regular, readable: Bool = true, writable: Bool = true) -> FileFacts {
        FileFacts(path: path, kind: kind, device: kind == nil ? nil : dev, inode: kind == nil ? nil : inode,
                  readable: readable, writable: writable)
    }

    func link(_ path: String, inode: UInt64, name: String? = nil, backing: String? = nil) -> ChainLink {
        ChainLink(name: name ?? path, backingName: backing, file: file(path, inode: inode), format: "qcow2")
    }

    func qemuHolder(_ pid: Int32, _ perms: QemuPermissions, vm: String? = nil) -> Holder {
        Holder(pid: pid, command: "qemu-system-x86", vm: vm, scheme: .qemu, lockType: .read, qemu: perms)
    }

    /// The kernel rows a QEMU user with `perms` leaves (read locks, one per byte).
    func rows(_ perms: QemuPermissions, inode: UInt64) -> [KernelLock] {
        perms.bytes.map { KernelLock(id: 1, kind: .ofd, mode: "ADVISORY", type: "READ", pid: nil, device: dev,
                                     inode: inode, start: $0, end: $0) }
    }

    func entry(_ path: String, inode: UInt64, holders: [Holder], rows extra: [KernelLock]? = nil) -> ImageLocks {
        let r = extra ?? holders.compactMap(\.qemu).flatMap { rows($0, inode: inode) }
        return ImageLocks(id: path, path: path, device: dev, inode: inode, schemes: [.qemu], holders: holders, locks: r)
    }

    func verdict(_ intent: OpenIntent, chain: [ChainLink]? = nil, images: [ImageLocks], lockDirs: [LockDirFacts] = [],
                 proofs: [ProbeProof]? = nil, overlayUses: [OverlayUse] = []) -> Verdict {
        Diagnosis.verdict(WhyInput(imageAsGiven: "vm.qcow2", intent: intent, chain: chain ?? [link("/i/vm.qcow2", inode: 10, name: "vm.qcow2")],
                                   lockDirs: lockDirs, images: images, overlayUses: overlayUses, proofs: proofs))
    }

    // MARK: - QEMU's rule

    func testFreeImageOpensBothWays() {
        for intent in OpenIntent.allCases {
            let v = verdict(intent, images: [])
            XCTAssertEqual(v.outcome, .opens)
            XCTAssertNil(v.qemuMessage)
            XCTAssertTrue(v.blockers.isEmpty)
            XCTAssertFalse(v.proven, "nothing was test-acquired")
        }
    }

    func testReadWriteHolderBlocksBothWithQemusWords() {
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [qemuHolder(42, .readWrite, vm: "web1")])]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.outcome, .fails)
        XCTAssertEqual(w.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertEqual(w.qemuHint, "Is another process using the image [vm.qcow2]?")
        XCTAssertEqual(w.blockers.map(\.pid), [42])
        XCTAssertEqual(w.blockers[0].vm, "web1")
        XCTAssertEqual(w.blockers[0].conflict, ["write", "resize"])
        XCTAssertTrue(w.blockers[0].remedy.contains("VM 'web1'"))
        // The checks come from QemuConflict.checks(for:), in QEMU's order.
        XCTAssertEqual(w.qemuFailures.map(\.byte), [201, 203, 101, 103])

        let r = verdict(.readOnly, images: images)
        XCTAssertEqual(r.outcome, .fails)
        XCTAssertEqual(r.qemuMessage, "Failed to get shared \"write\" lock")
        XCTAssertEqual(r.qemuFailures.map(\.byte), [101, 103])
        XCTAssertTrue(r.blockers[0].remedy.contains("qemu-img info -U"))
    }

    func testReadOnlyHolderBlocksOnlyWrite() {
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [qemuHolder(7, .readOnly)])]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.outcome, .fails)
        XCTAssertEqual(w.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertEqual(w.qemuFailures.map(\.byte), [201, 203])
        XCTAssertEqual(verdict(.readOnly, images: images).outcome, .opens)
    }

    func testWriterThatSharesWrite() {
        // share-rw=on: holds consistent read, write, resize; does not share resize only.
        let shareRW = QemuPermissions(held: [.consistentRead, .write, .resize], unshared: [.resize])
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [qemuHolder(9, shareRW)])]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.qemuMessage, "Failed to get \"resize\" lock")
        XCTAssertEqual(w.blockers.first?.conflict, ["resize", "write"], "it does not share resize; it holds write, which qemu-io does not share")
        XCTAssertEqual(verdict(.readOnly, images: images).qemuMessage, "Failed to get shared \"write\" lock")
    }

    func testSeveralHoldersAreAllNamed() {
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [qemuHolder(7, .readOnly), qemuHolder(8, .readOnly)])]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.blockers.map(\.pid), [7, 8])
        XCTAssertEqual(w.qemuFailures.first?.holders, [7, 8])
    }

    func testUnseenHolderStillBlocks() {
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [], rows: rows(.readOnly, inode: 10))]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.outcome, .fails)
        XCTAssertEqual(w.blockers.count, 1)
        XCTAssertNil(w.blockers[0].pid)
        XCTAssertEqual(verdict(.readOnly, images: images).outcome, .opens)
    }

    func testWholeFileWriteLockFailsWhileLockingAByte() {
        // QEMU's raw_apply_lock_bytes: "Failed to lock byte N" at the first refused byte, no hint.
        let wr = KernelLock(id: 1, kind: .posix, mode: "ADVISORY", type: "WRITE", pid: 5, device: dev, inode: 10, start: 0, end: nil)
        let h = Holder(pid: 5, command: "python3", scheme: .qemu, lockType: .write,
                       qemu: QemuPermissions(lockedRanges: [(0, nil)]))
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [h], rows: [wr])]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.qemuMessage, "Failed to lock byte 100")
        XCTAssertNil(w.qemuHint)
        XCTAssertEqual(w.blockers.map(\.pid), [5])
        XCTAssertEqual(verdict(.readOnly, images: images).qemuMessage, "Failed to lock byte 201")
    }

    // MARK: - Backing chain

    var chain: [ChainLink] {
        [link("/i/vm.qcow2", inode: 10, name: "/i/vm.qcow2"),
         link("/i/base.qcow2", inode: 20, name: "/i/base.qcow2", backing: "base.qcow2")]
    }

    func testBaseHeldReadWriteBlocksOverlayWriteBehindBackingPrefix() {
        let images = [entry("/i/base.qcow2", inode: 20, holders: [qemuHolder(3, .readWrite)])]
        let w = verdict(.write, chain: chain, images: images)
        XCTAssertEqual(w.qemuMessage, "Could not open backing file: Failed to get shared \"write\" lock")
        XCTAssertEqual(w.qemuHint, "Is another process using the image [/i/base.qcow2]?")
        XCTAssertEqual(w.blockers.first?.holds, "/i/base.qcow2")
        // qemu-img info does not open backing files.
        let r = verdict(.readOnly, chain: chain, images: images)
        XCTAssertEqual(r.outcome, .opens)
        XCTAssertEqual(r.chain.map(\.opened), [true, false])
    }

    func testVMOnOverlayIsNamedOnTheBaseWithTheOverlay() {
        let vm = qemuHolder(11, .readWrite, vm: "db")
        var base = qemuHolder(11, .readOnly, vm: "db")
        base.fd = 9
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [vm]), entry("/i/base.qcow2", inode: 20, holders: [base])]
        // Asked about the overlay: the VM is named on both; on the base via the overlay.
        let w = verdict(.write, chain: chain, images: images)
        XCTAssertEqual(w.chain[1].holders.first?.via, "/i/vm.qcow2")
        XCTAssertEqual(w.chain[1].holders.first?.vm, "db")
        // Asked about the base alone: the overlay comes from overlayUses.
        let b = verdict(.write, chain: [link("/i/base.qcow2", inode: 20, name: "/i/base.qcow2")], images: images,
                        overlayUses: [OverlayUse(pid: 11, overlay: "/i/vm.qcow2", base: "/i/base.qcow2")])
        XCTAssertEqual(b.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertEqual(b.blockers.first?.via, "/i/vm.qcow2")
        XCTAssertEqual(b.blockers.first?.vm, "db")
        XCTAssertTrue(b.blockers.first?.remedy.contains("backing file of /i/vm.qcow2") ?? false)
    }

    func testMissingBackingFileBlocksWriteOnly() {
        var c = chain
        c[1].file = FileFacts(path: "/i/base.qcow2", kind: nil)
        let w = verdict(.write, chain: c, images: [])
        XCTAssertEqual(w.outcome, .fails)
        XCTAssertEqual(w.reasons.map(\.kind), [.backingMissing])
        XCTAssertEqual(verdict(.readOnly, chain: c, images: []).outcome, .opens)
    }

    // MARK: - lockfile and virtlockd

    func lockDir(kind: FileKind? = .regular, writable: Bool = true, readable: Bool = true, dirExists: Bool = true,
                 dirWritable: Bool = true) -> LockDirFacts {
        LockDirFacts(directory: "/l", exists: dirExists, writable: dirWritable, lockFile: "/l/.qemu-x.lock",
                     lockFileFacts: file("/l/.qemu-x.lock", inode: 99, kind: kind, readable: readable, writable: writable))
    }

    func testLockFileHolders() {
        let ex = Holder(pid: 50, command: "locksmith", scheme: .lockfile, lockType: .write)
        let row = KernelLock(id: 1, kind: .ofd, mode: "ADVISORY", type: "WRITE", pid: nil, device: dev, inode: 99, start: 0, end: nil)
        let images = [ImageLocks(id: "/i/vm.qcow2", path: "/i/vm.qcow2", device: dev, inode: 10, schemes: [.lockfile],
                                 lockFiles: ["/l/.qemu-x.lock"], holders: [ex], locks: [row])]
        for intent in OpenIntent.allCases {
            let v = verdict(intent, images: images, lockDirs: [lockDir()])
            XCTAssertEqual(v.outcome, .fails)
            XCTAssertNil(v.qemuMessage, "QEMU itself does not use lock files")
            XCTAssertEqual(v.blockers.map(\.scheme), [.lockfile])
            XCTAssertEqual(v.blockers.first?.conflict, ["exclusive"])
        }
        let sh = Holder(pid: 51, command: "locksmith", scheme: .lockfile, lockType: .read)
        var shared = images
        shared[0].holders = [sh]
        shared[0].locks[0].type = "READ"
        XCTAssertEqual(verdict(.readOnly, images: shared, lockDirs: [lockDir()]).outcome, .opens)
        XCTAssertEqual(verdict(.write, images: shared, lockDirs: [lockDir()]).blockers.first?.conflict, ["shared"])
    }

    func testVirtlockdBlocksWriteOnly() {
        let v = Holder(pid: 60, command: "virtlockd", scheme: .virtlockd, lockType: .write)
        let images = [ImageLocks(id: "/i/vm.qcow2", path: "/i/vm.qcow2", device: dev, inode: 10, schemes: [.virtlockd], holders: [v])]
        let w = verdict(.write, images: images)
        XCTAssertEqual(w.blockers.map(\.scheme), [.virtlockd])
        XCTAssertTrue(w.blockers[0].remedy.contains("virsh"))
        XCTAssertEqual(verdict(.readOnly, images: images).outcome, .opens)
    }

    // MARK: - Reasons that are not locks

    func reasons(_ intent: OpenIntent, image: FileFacts, lockDirs: [LockDirFacts] = []) -> Verdict {
        Diagnosis.verdict(WhyInput(imageAsGiven: "x", intent: intent, chain: [ChainLink(name: "x", file: image)], lockDirs: lockDirs))
    }

    func testEveryNonLockReason() {
        let cases: [(Verdict, Reason.Kind, Verdict.Outcome)] = [
            (reasons(.write, image: FileFacts(path: "/i/x", kind: nil)), .imageMissing, .fails),
            (reasons(.write, image: file("/i/x", inode: 1, kind: .directory)), .notADisk, .fails),
            (reasons(.readOnly, image: file("/i/x", inode: 1, kind: .fifo)), .notADisk, .fails),
            (reasons(.readOnly, image: file("/i/x", inode: 1, kind: .characterDevice)), .notADisk, .fails),
            (reasons(.readOnly, image: file("/i/x", inode: 1, readable: false)), .notReadable, .fails),
            (reasons(.write, image: file("/i/x", inode: 1, writable: false)), .notWritable, .fails),
            (reasons(.write, image: FileFacts(path: "/i/x", kind: nil, error: "Permission denied")), .cannotInspect, .unknown),
            (reasons(.write, image: file("/i/x", inode: 1), lockDirs: [lockDir(dirExists: false)]), .lockDirMissing, .fails),
            (reasons(.write, image: file("/i/x", inode: 1), lockDirs: [lockDir(kind: nil, dirWritable: false)]), .lockDirNotWritable, .fails),
            (reasons(.write, image: file("/i/x", inode: 1), lockDirs: [lockDir(kind: .symlink)]), .lockFileSymlink, .fails),
            (reasons(.readOnly, image: file("/i/x", inode: 1), lockDirs: [lockDir(kind: .fifo)]), .lockFileNotRegular, .fails),
            (reasons(.write, image: file("/i/x", inode: 1), lockDirs: [lockDir(writable: false)]), .lockFileNotWritable, .fails),
        ]
        for (v, kind, outcome) in cases {
            XCTAssertEqual(v.reasons.map(\.kind), [kind])
            XCTAssertEqual(v.outcome, outcome, "\(kind)")
            XCTAssertFalse(v.reasons[0].message.contains("\n"))
            XCTAssertFalse(v.reasons[0].remedy.isEmpty)
        }
        // A read-only look needs neither a writable image nor a writable lock file.
        XCTAssertEqual(reasons(.readOnly, image: file("/i/x", inode: 1, writable: false), lockDirs: [lockDir(writable: false)]).outcome, .opens)
        // An existing lock file needs no writable lock dir.
        XCTAssertEqual(reasons(.write, image: file("/i/x", inode: 1), lockDirs: [lockDir(dirWritable: false)]).outcome, .opens)
    }

    // MARK: - Proof

    func testProofReplacesInference() {
        let images = [entry("/i/vm.qcow2", inode: 10, holders: [qemuHolder(42, .readWrite)])]
        // The holder went away between the scan and the probe: the probe wins.
        let gone = verdict(.write, images: images, proofs: [ProbeProof(scheme: .qemu, path: "/i/vm.qcow2", mode: .exclusive, acquired: true)])
        XCTAssertEqual(gone.outcome, .opens)
        XCTAssertTrue(gone.proven)
        // Confirmed: blockers are marked proven.
        let held = verdict(.readOnly, images: images, proofs: [ProbeProof(
            scheme: .qemu, path: "/i/vm.qcow2", mode: .shared, acquired: false,
            qemuConflicts: [QemuConflict(kind: .held, permission: .write), QemuConflict(kind: .held, permission: .resize)])])
        XCTAssertEqual(held.qemuMessage, "Failed to get shared \"write\" lock")
        XCTAssertEqual(held.blockers.map(\.proven), [true])
        XCTAssertTrue(held.proven)
        // The core's shared probe also tests byte 200, which qemu-img info never does.
        let only200 = verdict(.readOnly, images: [], proofs: [ProbeProof(
            scheme: .qemu, path: "/i/vm.qcow2", mode: .shared, acquired: false,
            qemuConflicts: [QemuConflict(kind: .unshared, permission: .consistentRead)])])
        XCTAssertEqual(only200.outcome, .opens)
    }
}
