import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// Images whose locks live on a server (FUSE, NFS...): facts fed by hand to the pure parts
/// (`ServerLocks`, `Diagnosis`), no server.
final class ServerLocksTests: XCTestCase {
    let dev = DeviceID(major: 0, minor: 0x35)
    let fuse = SharedFilesystem(name: "fuse", localTable: .showsNone)
    let path = "/shared/vm.qcow2"

    /// F_GETLK's answers for a read-write QEMU user (bytes 100-101, 103, 201, 203) with `pid`.
    func qemuLocks(_ pid: Int32?) -> [ProbedLock] {
        QemuPermissions.readWrite.bytes.map { ProbedLock(type: .read, range: ByteRange(start: $0, length: 1), pid: pid) }
    }

    func file(shared: SharedFilesystem?) -> FileFacts {
        FileFacts(path: path, kind: .regular, device: dev, inode: 77, sharedFilesystem: shared)
    }

    func input(_ facts: ServerLockFacts, intent: OpenIntent = .write, proofs: [ProbeProof]? = nil) -> WhyInput {
        var i = WhyInput(imageAsGiven: path, intent: intent, chain: [ChainLink(name: path, file: file(shared: fuse), format: "qcow2")],
                         images: [ServerLocks.merged(nil, facts)], proofs: proofs)
        i.serverLocks = [facts]
        return i
    }

    func testFilesystemTable() {
        XCTAssertEqual(SharedFilesystem.of(magic: 0x65735546), fuse)
        XCTAssertEqual(SharedFilesystem.of(magic: 0x6969)?.localTable, .showsThisHostOnly)
        XCTAssertEqual(SharedFilesystem.of(magic: 0x00c36400)?.name, "ceph")
        XCTAssertNil(SharedFilesystem.of(magic: 0xEF53), "ext4 is local")
        XCTAssertNil(SharedFilesystem.of(magic: 0x01021994), "tmpfs is local")
        XCTAssertEqual(SharedFilesystem.of(fstype: "fuse.glusterfs"), fuse)
        XCTAssertEqual(SharedFilesystem.of(fstype: "fuse"), fuse)
        XCTAssertEqual(SharedFilesystem.of(fstype: "fuseblk"), fuse)
        XCTAssertEqual(SharedFilesystem.of(fstype: "nfs4")?.name, "nfs")
        XCTAssertNil(SharedFilesystem.of(fstype: "ext4"))
        XCTAssertNil(SharedFilesystem.of(fstype: "fusectl"), "not a fuse mount")
        let types = ServerLocks.filesystemTypes(mountinfo: """
            36 25 0:32 / /tmp rw,relatime shared:15 - tmpfs tmpfs rw
            120 36 0:53 / /shared rw,relatime shared:70 opt:1 - fuse.glusterfs 10.77.0.1:/clvol rw
            """)
        XCTAssertEqual(types[DeviceID(major: 0, minor: 53)], "fuse.glusterfs", "optional fields before the dash")
        XCTAssertEqual(types[DeviceID(major: 0, minor: 32)], "tmpfs")
    }

    func testALocalHolderNamedByTheProbesPid() {
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: fuse, probed: qemuLocks(4242),
                                openers: [Opener(fd: 5, openMode: .readWrite, process: ProcessDetails(pid: 4242, command: "qemu-io", user: "root"))],
                                localHost: "h1")
        let e = ServerLocks.entry(f)
        XCTAssertEqual(e.holders.map(\.pid), [4242])
        XCTAssertEqual(e.holders.first?.command, "qemu-io")
        XCTAssertEqual(e.holders.first?.qemu, .readWrite, "permissions decoded from the bytes it locks")
        XCTAssertNil(e.holders.first?.host)
        XCTAssertEqual(e.locks.count, 5)
        XCTAssertTrue(e.locks.allSatisfy { $0.pid == 4242 && $0.inode == 77 })
    }

    func testAPidNoLocalProcessHasOpenIsNotNamed() {
        // On another host's mount, l_pid maps to no process here, or to an unrelated one.
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: fuse, probed: qemuLocks(12), localHost: "h2")
        let e = ServerLocks.entry(f)
        XCTAssertEqual(e.holders, [])
        XCTAssertTrue(e.locks.allSatisfy { $0.pid == nil }, "the rows stay, unnamed")
        let v = Diagnosis.verdict(input(f))
        XCTAssertEqual(v.outcome, .fails, "absence from /proc/locks proves nothing: the probe decides")
        XCTAssertEqual(v.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertEqual(v.blockers.count, 1)
        XCTAssertNil(v.blockers[0].pid)
        XCTAssertTrue(v.blockers[0].remedy.contains("held on the fuse server"), v.blockers[0].remedy)
        XCTAssertTrue(v.facts.contains { $0.statement.contains("from F_GETLK on fuse") }, "\(v.facts)")
    }

    func testAStatedumpNamesTheRemoteHostAndJoinsLocalOnes() {
        func rec(_ host: String, _ pid: Int32, _ byte: Int64) -> GlusterLockRecord {
            GlusterLockRecord(volume: "clvol", path: "/vm.qcow2", state: .active, type: .read,
                              range: ByteRange(start: byte, length: 1), pid: pid, owner: nil,
                              connectionID: nil, clientHost: host, clientPID: 99, clientName: nil, since: nil)
        }
        let dump = QemuPermissions.readWrite.bytes.map { rec("h1", 31, $0) } + [rec("h2", 8, 100)]
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: fuse, probed: qemuLocks(31),
                                openers: [Opener(fd: 3, process: ProcessDetails(pid: 8, command: "qemu-io"))],
                                glusterVolume: "clvol", glusterPath: "/vm.qcow2", statedump: dump, localHost: "h2")
        let e = ServerLocks.entry(f)
        XCTAssertEqual(e.holders.map(\.pid), [31, 8])
        XCTAssertEqual(e.holders[0].host, "h1")
        XCTAssertEqual(e.holders[0].command, "?", "another host's process: no /proc here")
        XCTAssertEqual(e.holders[0].qemu, .readWrite)
        XCTAssertNil(e.holders[1].host, "this host's holder is a local process")
        XCTAssertEqual(e.holders[1].command, "qemu-io")
        let v = Diagnosis.verdict(input(f))
        XCTAssertEqual(v.outcome, .fails)
        XCTAssertEqual(v.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertEqual(v.blockers.first?.pid, 31)
        XCTAssertEqual(v.blockers.first?.host, "h1")
        XCTAssertTrue(v.blockers.first?.remedy.contains("pid 31 on host h1") ?? false, "\(v.blockers)")
        XCTAssertTrue(v.facts.contains { $0.statement.contains("brick statedump of volume clvol names 2 holders") }, "\(v.facts)")
    }

    func testNothingLockedOnTheServerOpens() {
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: fuse, localHost: "h2")
        let v = Diagnosis.verdict(input(f))
        XCTAssertEqual(v.outcome, .opens)
    }

    func testAFailedProbeIsUnknownNotOpens() {
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: fuse, probeError: "Permission denied", localHost: "h2")
        let v = Diagnosis.verdict(input(f))
        XCTAssertEqual(v.outcome, .unknown, "\(v.reasons)")
    }

    func testThisHostOnlyTablesKeepTheLocalEntryAndAddTheOthers() {
        let nfs = SharedFilesystem(name: "nfs", localTable: .showsThisHostOnly)
        let mine = Holder(pid: 5, command: "qemu-io", scheme: .qemu, lockType: .read, qemu: .readOnly)
        let local = ImageLocks(id: path, path: path, device: dev, inode: 77, schemes: [.qemu], holders: [mine])
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: nfs,
                                probed: [ProbedLock(type: .read, range: ByteRange(start: 100, length: 1), pid: 5),
                                         ProbedLock(type: .write, range: .wholeFile, pid: 900)],
                                openers: [Opener(fd: 3, process: ProcessDetails(pid: 5, command: "qemu-io"))], localHost: "a")
        let m = ServerLocks.merged(local, f)
        XCTAssertEqual(m.holders.map(\.pid), [5])
        XCTAssertEqual(m.locks.map(\.pid), [nil], "the other host's lock, unnamed")
    }

    func testGlusterMountAndPathInVolume() {
        let info = """
            36 25 0:32 / /tmp rw,relatime shared:15 - tmpfs tmpfs rw
            120 36 0:53 / /shared rw,relatime shared:70 - fuse.glusterfs 10.77.0.1:/clvol rw,user_id=0
            121 36 0:54 / /mnt/a\\040b rw,relatime - fuse.glusterfs gl1:/vmstore/sub rw
            """
        let m = ServerLocks.glusterMount(mountinfo: info, path: "/shared/dir/vm.qcow2")
        XCTAssertEqual(m?.mountPoint, "/shared")
        XCTAssertEqual(m?.source, "10.77.0.1:/clvol")
        let loc = ServerLocks.glusterLocation(path: "/shared/dir/vm.qcow2", mountPoint: "/shared", source: "10.77.0.1:/clvol")
        XCTAssertEqual(loc?.volume, "clvol")
        XCTAssertEqual(loc?.path, "/dir/vm.qcow2")
        let spaced = ServerLocks.glusterMount(mountinfo: info, path: "/mnt/a b/x.img")
        XCTAssertEqual(spaced?.mountPoint, "/mnt/a b")
        let sub = ServerLocks.glusterLocation(path: "/mnt/a b/x.img", mountPoint: "/mnt/a b", source: "gl1:/vmstore/sub")
        XCTAssertEqual(sub?.volume, "vmstore")
        XCTAssertEqual(sub?.path, "/sub/x.img")
        XCTAssertNil(ServerLocks.glusterMount(mountinfo: info, path: "/sharedother/x"), "a prefix is not a parent")
    }

    // MARK: - why --force never contradicts its proofs

    /// qemu scheme: the probe fails QEMU's checks while the lock table shows nothing.
    func testForceQemuRefusedChecksFail() {
        let f = ServerLockFacts(path: path, device: dev, inode: 77, filesystem: fuse, probeError: nil, localHost: "h2")
        var i = input(f, proofs: [ProbeProof(scheme: .qemu, path: path, mode: .exclusive, acquired: false,
                                             qemuConflicts: QemuConflict.checks(for: .readWrite).filter { $0.permission == .write })])
        i.images = []
        let v = Diagnosis.verdict(i)
        XCTAssertEqual(v.outcome, .fails)
        XCTAssertEqual(v.qemuMessage, "Failed to get \"write\" lock")
        XCTAssertTrue(v.proven)
    }

    /// qemu scheme: the probe's byte lock itself is refused (a write lock over QEMU's bytes).
    func testForceQemuRefusedByteFails() {
        var i = WhyInput(imageAsGiven: path, intent: .write, chain: [ChainLink(name: path, file: file(shared: nil))],
                         proofs: [ProbeProof(scheme: .qemu, path: path, mode: .exclusive, acquired: false)])
        i.images = []
        let v = Diagnosis.verdict(i)
        XCTAssertEqual(v.outcome, .fails, "\(v.facts)")
        XCTAssertEqual(v.qemuMessage, "Failed to lock byte 100")
    }

    /// lockfile scheme: the lock file's lock is refused while the table shows nothing.
    func testForceLockfileRefusedFails() {
        let lf = "/var/tmp/.qemu-x.lock"
        let dir = LockDirFacts(directory: "/var/tmp", exists: true, writable: true, lockFile: lf,
                               lockFileFacts: FileFacts(path: lf, kind: .regular, device: dev, inode: 5))
        let i = WhyInput(imageAsGiven: path, intent: .write, chain: [ChainLink(name: path, file: file(shared: nil))], lockDirs: [dir],
                         proofs: [ProbeProof(scheme: .qemu, path: path, mode: .exclusive, acquired: true),
                                  ProbeProof(scheme: .lockfile, path: lf, mode: .exclusive, acquired: false)])
        let v = Diagnosis.verdict(i)
        XCTAssertEqual(v.outcome, .fails)
    }

    /// Every combination of proofs: "opens" only when every proof acquired.
    func testForceOpensOnlyWhenEveryProofAcquired() {
        let lf = "/var/tmp/.qemu-x.lock"
        let dir = LockDirFacts(directory: "/var/tmp", exists: true, writable: true, lockFile: lf,
                               lockFileFacts: FileFacts(path: lf, kind: .regular, device: dev, inode: 5))
        let qemuRefusals: [ProbeProof] = [
            ProbeProof(scheme: .qemu, path: path, mode: .exclusive, acquired: true),
            ProbeProof(scheme: .qemu, path: path, mode: .exclusive, acquired: false),
            ProbeProof(scheme: .qemu, path: path, mode: .exclusive, acquired: false, qemuConflicts: QemuConflict.checks(for: .readWrite)),
        ]
        for q in qemuRefusals {
            for lfOK in [true, false] {
                for shared in [nil, fuse] {
                    let i = WhyInput(imageAsGiven: path, intent: .write, chain: [ChainLink(name: path, file: file(shared: shared))],
                                     lockDirs: [dir], proofs: [q, ProbeProof(scheme: .lockfile, path: lf, mode: .exclusive, acquired: lfOK)])
                    let v = Diagnosis.verdict(i)
                    XCTAssertEqual(v.outcome == .opens, q.acquired && lfOK, "qemu \(q) lockfile \(lfOK): \(v.outcome) \(v.facts)")
                }
            }
        }
    }
}
