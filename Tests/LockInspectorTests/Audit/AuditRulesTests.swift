import Foundation
import ImageLock
import LockInspector
import XCTest

/// The audit rules on snapshots and facts built in code: each rule fires on its hazard
/// and stays quiet on the normal case next to it.
final class AuditRulesTests: XCTestCase {
    let dev = DeviceID(major: 0xfe, minor: 0)
    let lockDir = "/var/tmp"
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func snapshot(images: [ImageLocks] = [], lockFiles: [LockFileEntry] = [], writers: [ImageWriter] = []) -> Snapshot {
        Snapshot(host: "h", generated: t0, images: images, lockFiles: lockFiles, unseen: [], writers: writers)
    }

    func writer(_ path: String, pid: Int32, inode: UInt64 = 7) -> ImageWriter {
        ImageWriter(path: path, device: dev, inode: inode, pid: pid, fd: 9, openMode: .readWrite, command: "qemu-io", user: "root", uid: 0)
    }

    func qemuImage(_ path: String, inode: UInt64 = 7, holders: [Holder]) -> ImageLocks {
        ImageLocks(id: path, path: path, device: dev, inode: inode, schemes: [.qemu], holders: holders)
    }

    func lockFile(_ image: String?, held: Bool = false, kind: FileKind = .regular, name: String? = nil) -> LockFileEntry {
        let n = name ?? ImageLocker.lockFileName(realPath: image ?? "/nowhere")
        return LockFileEntry(path: "\(lockDir)/\(n)", kind: kind, device: dev, inode: 99, held: held, image: image,
                             mappedBy: image == nil ? nil : "content")
    }

    func rules(_ found: [Finding]) -> [AuditRule] { found.map(\.rule) }

    // MARK: writers

    /// A writer of an image on FUSE: the probe's holders decide; where it cannot tell, info.
    func testUnlockedWriterOnServerLocks() {
        let img = "/shared/vm.qcow2"
        let fuse = SharedFilesystem(name: "fuse", localTable: .showsNone)
        let w = writer(img, pid: 100)
        func snap(_ probed: [ProbedLock], error: String? = nil, holders: [Holder] = []) -> Snapshot {
            var s = snapshot(images: holders.isEmpty ? [] : [qemuImage(img, holders: holders)], writers: [w])
            s.serverLocks = [ServerLockFacts(path: img, device: dev, inode: 7, filesystem: fuse, probed: probed,
                                             probeError: error, localHost: "h")]
            return s
        }
        let byte100 = ByteRange(start: 100, length: 1)
        // The writer holds QEMU's locks (named by the probe's pid): quiet.
        let mine = Holder(pid: 100, command: "qemu-io", scheme: .qemu, lockType: .read, qemu: .readWrite)
        XCTAssertEqual(AuditRules.unlockedWriter(snap([ProbedLock(type: .read, range: byte100, pid: 100)], holders: [mine]), AuditFacts()), [])
        // Locks held by a pid that no local process with the file open has: cannot tell.
        let other = AuditRules.unlockedWriter(snap([ProbedLock(type: .read, range: byte100, pid: 12)]), AuditFacts())
        XCTAssertEqual(other.map(\.severity), [.info])
        XCTAssertTrue(other.first?.evidence.contains("cannot tell") ?? false, "\(other)")
        XCTAssertTrue(other.first?.evidence.contains("pid 12") ?? false, "\(other)")
        // The probe failed: cannot tell either.
        XCTAssertEqual(AuditRules.unlockedWriter(snap([], error: "EACCES"), AuditFacts()).map(\.severity), [.info])
        // The probe found no lock at all: the server says there is none.
        XCTAssertEqual(AuditRules.unlockedWriter(snap([]), AuditFacts()).map(\.severity), [.critical])
    }

    func testUnlockedWriterFiresOnlyWithoutALockByItselfOrAParent() {
        let img = "/img/vm.qcow2"
        let w = writer(img, pid: 100)
        // No lock anywhere: critical, naming the writer.
        let bare = AuditRules.unlockedWriter(snapshot(writers: [w]), AuditFacts())
        XCTAssertEqual(bare.count, 1)
        XCTAssertEqual(bare.first?.severity, .critical)
        XCTAssertEqual(bare.first?.image, img)
        XCTAssertEqual(bare.first?.holders.map(\.pid), [100])
        XCTAssertEqual(bare.first?.holders.first?.role, .writer)
        // Its own QEMU locks cover it.
        let own = Holder(pid: 100, command: "qemu-nbd", fd: 9, scheme: .qemu, qemu: .readWrite)
        XCTAssertEqual(AuditRules.unlockedWriter(snapshot(images: [qemuImage(img, holders: [own])], writers: [w]), AuditFacts()), [])
        // Someone else's lock does not.
        let other = Holder(pid: 200, command: "qemu-io", fd: 3, scheme: .qemu, qemu: .readOnly)
        let s = snapshot(images: [qemuImage(img, holders: [other])], writers: [w])
        XCTAssertEqual(rules(AuditRules.unlockedWriter(s, AuditFacts())), [.unlockedWriter])
        // A parent's lock-file lock (locksmith hold -- CMD) covers it, matched by path.
        let lf = ImageLocks(id: img, path: img, schemes: [.lockfile],
                            holders: [Holder(pid: 50, command: "locksmith", fd: 3, scheme: .lockfile, lockType: .write)])
        let facts = AuditFacts(processes: [100: AuditProcessFacts(uid: 0, gid: 0, ancestors: [50, 1])])
        XCTAssertEqual(AuditRules.unlockedWriter(snapshot(images: [lf], writers: [w]), facts), [])
        XCTAssertEqual(rules(AuditRules.unlockedWriter(snapshot(images: [lf], writers: [w]), AuditFacts())), [.unlockedWriter])
        // virtlockd holds for the VM.
        let vl = qemuImage(img, holders: [Holder(pid: 300, command: "virtlockd", scheme: .virtlockd, lockType: .write)])
        XCTAssertEqual(AuditRules.unlockedWriter(snapshot(images: [vl], writers: [w]), AuditFacts()), [])
    }

    func testConcurrentWritersCriticalUnlessEverySharesWriteOnPurpose() {
        let img = "/img/vm.qcow2"
        let two = [writer(img, pid: 100), writer(img, pid: 101)]
        let found = AuditRules.concurrentWriters(snapshot(writers: two), AuditFacts())
        XCTAssertEqual(found.map(\.severity), [.critical])
        XCTAssertEqual(Set(found.first?.holders.map(\.pid) ?? []), [100, 101])
        // One process with two write fds is one writer; two files are two images.
        XCTAssertEqual(AuditRules.concurrentWriters(snapshot(writers: [writer(img, pid: 100), writer(img, pid: 100)]), AuditFacts()), [])
        XCTAssertEqual(AuditRules.concurrentWriters(snapshot(writers: [writer(img, pid: 100), writer("/img/b.qcow2", pid: 101, inode: 8)]), AuditFacts()), [])
        // share-rw=on: each holds write and shares it -> a warning.
        let shareRW = QemuPermissions(held: [.consistentRead, .write, .resize], unshared: [.resize])
        let holders = [100, 101].map { Holder(pid: Int32($0), command: "qemu-system-x86", fd: 9, scheme: .qemu, qemu: shareRW) }
        let shared = AuditRules.concurrentWriters(snapshot(images: [qemuImage(img, holders: holders)], writers: two), AuditFacts())
        XCTAssertEqual(shared.map(\.severity), [.warning])
    }

    // MARK: lock files

    func testUnsafeLockFileAndLockDir() {
        let img = "/img/vm.qcow2"
        let entry = lockFile(img)
        let ok = AuditFileFacts(kind: .regular, mode: 0o644)
        let base = AuditFacts(lockDirectories: [lockDir: AuditFileFacts(kind: .directory, mode: 0o1777)],
                              lockFiles: [entry.path: ok], images: [PathKey(img): AuditFileFacts(kind: .regular, mode: 0o600)])
        XCTAssertEqual(AuditRules.unsafeLockFile(snapshot(lockFiles: [entry]), base), [], "root's 0644 file in a sticky dir")

        func check(_ f: AuditFileFacts, kind: FileKind = .regular, _ severity: Severity, _ words: String,
                   line: UInt = #line) {
            var facts = base
            facts.lockFiles[entry.path] = f
            var e = entry
            e.kind = kind
            let found = AuditRules.unsafeLockFile(snapshot(lockFiles: [e]), facts)
            XCTAssertEqual(found.map(\.severity), [severity], line: line)
            XCTAssertTrue(found.first?.evidence.contains(words) ?? false, "\(found)", line: line)
            XCTAssertEqual(found.first?.files, [entry.path], line: line)
        }
        check(AuditFileFacts(kind: .symlink, mode: 0o777, linkTarget: "/etc/shadow"), kind: .symlink, .critical, "symbolic link to /etc/shadow")
        check(AuditFileFacts(kind: .fifo, mode: 0o644), kind: .fifo, .critical, "FIFO")
        check(AuditFileFacts(kind: .regular, mode: 0o666), .warning, "world-writable (mode 0666)")
        check(AuditFileFacts(kind: .regular, mode: 0o644, links: 2), .warning, "2 hard links")
        check(AuditFileFacts(kind: .regular, mode: 0o644, uid: 1000), .warning, "owned by uid 1000")
        // The image's owner may own its lock file.
        var owned = base
        owned.images[PathKey(img)] = AuditFileFacts(kind: .regular, mode: 0o600, uid: 1000)
        owned.lockFiles[entry.path] = AuditFileFacts(kind: .regular, mode: 0o644, uid: 1000)
        XCTAssertEqual(AuditRules.unsafeLockFile(snapshot(lockFiles: [entry]), owned), [])

        var dir = base
        dir.lockDirectories[lockDir] = AuditFileFacts(kind: .directory, mode: 0o777)
        let d = AuditRules.unsafeLockFile(snapshot(), dir)
        XCTAssertEqual(d.map(\.severity), [.critical])
        XCTAssertEqual(d.first?.files, [lockDir])
        XCTAssertNil(d.first?.image)
        dir.lockDirectories[lockDir] = AuditFileFacts(kind: .directory, mode: 0o755)
        XCTAssertEqual(AuditRules.unsafeLockFile(snapshot(), dir), [])
        // Lease files (virtlockd) are not lock-dir entries.
        let lease = LockFileEntry(path: "/var/lib/libvirt/lockd/files/" + String(repeating: "a", count: 64), kind: .symlink,
                                  device: dev, inode: 5, held: false)
        var lf = base
        lf.lockFiles[lease.path] = AuditFileFacts(kind: .symlink, mode: 0o777)
        XCTAssertEqual(AuditRules.unsafeLockFile(snapshot(lockFiles: [lease]), lf), [])
    }

    func testUnwritableLockFileForTheImagesOwner() {
        let img = "/img/vm.qcow2"
        let entry = lockFile(img, held: true)
        var f = AuditFacts(lockFiles: [entry.path: AuditFileFacts(kind: .regular, mode: 0o644, uid: 0)],
                           images: [PathKey(img): AuditFileFacts(kind: .regular, mode: 0o600, uid: 107, gid: 107)],
                           userGroups: [107: [107]])
        let found = AuditRules.unwritableLockFile(snapshot(lockFiles: [entry]), f)
        XCTAssertEqual(found.map(\.severity), [.warning])
        XCTAssertEqual(found.first?.image, img)
        f.lockFiles[entry.path] = AuditFileFacts(kind: .regular, mode: 0o664, uid: 0, gid: 107)
        XCTAssertEqual(AuditRules.unwritableLockFile(snapshot(lockFiles: [entry]), f), [], "group-writable for the owner's group")
        f.images[PathKey(img)]?.uid = 0
        f.lockFiles[entry.path] = AuditFileFacts(kind: .regular, mode: 0o444)
        XCTAssertEqual(AuditRules.unwritableLockFile(snapshot(lockFiles: [entry]), f), [], "root can always")
    }

    func testForeignHolderCannotReadTheImage() {
        let img = "/img/vm.qcow2"
        let nobody = Holder(pid: 400, command: "locksmith", user: "nobody", uid: 65534, fd: 3, scheme: .lockfile, lockType: .read)
        let root = Holder(pid: 401, command: "qemu-io", user: "root", uid: 0, fd: 3, scheme: .lockfile, lockType: .read)
        let image = ImageLocks(id: img, path: img, schemes: [.lockfile], lockFiles: ["/var/tmp/x.lock"], holders: [nobody, root])
        var f = AuditFacts(images: [PathKey(img): AuditFileFacts(kind: .regular, mode: 0o600)],
                           processes: [400: AuditProcessFacts(uid: 65534, gid: 65534), 401: AuditProcessFacts(uid: 0, gid: 0)])
        let found = AuditRules.foreignHolder(snapshot(images: [image]), f)
        XCTAssertEqual(found.map(\.severity), [.warning])
        XCTAssertEqual(found.first?.holders.map(\.pid), [400])
        XCTAssertEqual(found.first?.holders.first?.user, "nobody")
        f.images[PathKey(img)]?.mode = 0o604
        XCTAssertEqual(AuditRules.foreignHolder(snapshot(images: [image]), f), [])
        f.images[PathKey(img)]?.mode = 0o640
        f.images[PathKey(img)]?.gid = 6
        f.processes[400]?.groups = [6]
        XCTAssertEqual(AuditRules.foreignHolder(snapshot(images: [image]), f), [], "a supplementary group may read")
    }

    func testLocalLockOnSharedStorage() {
        let img = "/mnt/gluster/vm.qcow2"
        let entry = lockFile(img, held: true)
        var f = AuditFacts(lockDirectories: [lockDir: AuditFileFacts(kind: .directory, mode: 0o1777)],
                           images: [PathKey(img): AuditFileFacts(kind: .regular, mode: 0o644, sharedFilesystem: "fuse")])
        let found = AuditRules.localLockOnSharedStorage(snapshot(lockFiles: [entry]), f)
        XCTAssertEqual(found.map(\.severity), [.warning])
        XCTAssertTrue(found.first?.evidence.contains("(fuse)") ?? false)
        f.lockDirectories[lockDir]?.sharedFilesystem = "fuse"
        XCTAssertEqual(AuditRules.localLockOnSharedStorage(snapshot(lockFiles: [entry]), f), [], "lock dir on the shared fs too")
        f.lockDirectories[lockDir]?.sharedFilesystem = nil
        f.images[PathKey(img)]?.sharedFilesystem = nil
        XCTAssertEqual(AuditRules.localLockOnSharedStorage(snapshot(lockFiles: [entry]), f), [], "local image")
    }

    func testBlockedWaiterOverTheThreshold() {
        let img = "/img/vm.img"
        let waiter = Holder(pid: 500, command: "python3", scheme: .lockfile, lockType: .write)
        let holder = Holder(pid: 501, command: "locksmith", fd: 3, scheme: .lockfile, lockType: .write)
        let image = ImageLocks(id: img, path: img, schemes: [.lockfile], holders: [holder], waiters: [waiter])
        var f = AuditFacts(waitThreshold: 30, processes: [500: AuditProcessFacts(uid: 0, gid: 0, waitedSeconds: 45)])
        let found = AuditRules.blockedWaiter(snapshot(images: [image]), f)
        XCTAssertEqual(found.map(\.severity), [.warning])
        XCTAssertEqual(found.first?.holders.map(\.role), [.waiter, .holder])
        XCTAssertEqual(found.first?.holders.first?.waitedSeconds, 45)
        f.processes[500]?.waitedSeconds = 10
        XCTAssertEqual(AuditRules.blockedWaiter(snapshot(images: [image]), f), [])
        f.processes[500]?.waitedSeconds = nil
        XCTAssertEqual(AuditRules.blockedWaiter(snapshot(images: [image]), f), [], "unknown wait time: no finding")
    }

    func testStaleAndUnmappedLockFiles() {
        let held = lockFile("/img/a.img", held: true)
        let stale = lockFile("/img/b.img")
        let unknown = lockFile(nil, name: ".qemu-" + String(repeating: "0", count: 40) + ".lock")
        let gone = lockFile("/img/gone.img")
        let s = snapshot(lockFiles: [held, stale, unknown, gone])
        let f = AuditFacts(missingImages: [PathKey("/img/gone.img")])
        XCTAssertEqual(AuditRules.staleLockFile(s, f).map(\.files), [[stale.path], [unknown.path], [gone.path]])
        XCTAssertTrue(AuditRules.staleLockFile(s, f).allSatisfy { $0.severity == .info })
        XCTAssertEqual(AuditRules.unmappedLockFile(s, f).map(\.files), [[unknown.path], [gone.path]])
        XCTAssertTrue(AuditRules.unmappedLockFile(s, f)[1].evidence.contains("no longer exists"))
    }

    func testAllOrdersBySeverityThenRule() {
        let img = "/img/vm.qcow2"
        let s = snapshot(lockFiles: [lockFile("/img/b.img")], writers: [writer(img, pid: 100), writer(img, pid: 101)])
        XCTAssertEqual(rules(AuditRules.all(s, AuditFacts())), [.unlockedWriter, .concurrentWriters, .staleLockFile])
    }

    func testModeBitsDecideAccess() {
        let f = AuditFileFacts(kind: .regular, mode: 0o640, uid: 10, gid: 20)
        XCTAssertTrue(f.permits(uid: 10, gid: 10, groups: [], access: 2))
        XCTAssertTrue(f.permits(uid: 11, gid: 20, groups: [], access: 4))
        XCTAssertFalse(f.permits(uid: 11, gid: 20, groups: [], access: 2))
        XCTAssertTrue(f.permits(uid: 11, gid: 11, groups: [20], access: 4))
        XCTAssertFalse(f.permits(uid: 11, gid: 11, groups: [], access: 4))
        XCTAssertTrue(f.permits(uid: 0, gid: 0, groups: [], access: 2))
    }

    /// Only the lockfile scheme's names are lock files to the lock-file rules: a virtlockd
    /// lease file (64 hex digits), uppercase hex, a digit short, and a non-UTF-8 byte in the
    /// name are not (`ImageLocker.isLockFileName` decides, read as bytes).
    func testLockFileRulesJudgeOnlyTheSchemesNames() {
        let sha = String(ImageLocker.lockFileName(realPath: "/img/a").dropFirst(6).prefix(40))
        let names = [".qemu-\(sha).lock", String(repeating: "ab", count: 32), ".qemu-\(sha.uppercased()).lock",
                     ".qemu-\(sha.dropLast()).lock", ".qemu-\(sha.dropLast())\u{F780}.lock", "x.qemu-\(sha).lock"]
        let s = snapshot(lockFiles: names.map { lockFile(nil, name: $0) })
        let stale = AuditRules.staleLockFile(s, AuditFacts()).flatMap(\.files)
        XCTAssertEqual(stale, ["\(lockDir)/\(names[0])"])
        for n in names { XCTAssertEqual(stale.contains("\(lockDir)/\(n)"), ImageLocker.isLockFileName(n), n) }
    }

    /// Most severe first, then rule order, then image, then files; equal keys keep their order.
    func testSortedOrdersBySeverityRuleImageAndFilesKeepingTies() {
        func f(_ rule: AuditRule, _ sev: Severity, _ image: String?, _ files: [String], _ tag: String) -> Finding {
            Finding(rule: rule, severity: sev, image: image, files: files, evidence: tag, remedy: "")
        }
        let found = [
            f(.staleLockFile, .info, nil, ["/l/b"], "1"), f(.unsafeLockFile, .warning, "/i/b", ["/l/x"], "2"),
            f(.staleLockFile, .info, nil, ["/l/a"], "3"), f(.unsafeLockFile, .critical, nil, ["/l/d"], "4"),
            f(.unsafeLockFile, .warning, "/i/a", ["/l/z", "/l/y"], "5"), f(.staleLockFile, .info, nil, ["/l/a"], "6"),
            f(.unsafeLockFile, .warning, "/i/a", ["/l/z"], "7"), f(.unlockedWriter, .critical, "/i/z", [], "8"),
            f(.unmappedLockFile, .info, nil, ["/l/a"], "9"),
        ]
        XCTAssertEqual(AuditRules.sorted(found).map(\.evidence), ["8", "4", "7", "5", "2", "3", "6", "1", "9"])
    }

    /// Swift's order of images, also where their bytes sort otherwise: a decomposed é
    /// (`e` + U+0301) is the same letter as a precomposed one (U+00E9), whose first byte is
    /// larger than `e`'s and smaller than `x`'s; an image that is a prefix of another first.
    func testSortedOrdersImagesAsSwiftDoesWhereBytesDisagree() {
        let images = ["/i/e\u{301}x", "/i/\u{e9}a", "/i/ab", "/i/a", "/i/e\u{301}x"]
        let found = images.enumerated().map { n, image in
            Finding(rule: .staleLockFile, severity: .info, image: image, files: ["/l/\(9 - n)"], evidence: "\(n)", remedy: "")
        }
        XCTAssertEqual(AuditRules.sorted(found).map(\.evidence), ["3", "2", "1", "4", "0"])
    }
}
