import _TestSupport
import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// virtlockd's locks, libvirt XML and QEMU arguments as image candidates.
final class InspectorSchemeTests: XCTestCase {
    /// A python process named `virtlockd` (as the real daemon's comm) that takes virtlockd's
    /// POSIX lock on byte 0 of the image and of a SHA-256-named lease file.
    func testVirtlockdDirectAndLeaseLocks() throws {
        let dir = TempDir("virtlockd")
        let image = dir.makeFile("vm2.img")
        let leases = dir.file("lockd")
        try FileManager.default.createDirectory(atPath: leases, withIntermediateDirectories: false)
        let libvirt = dir.file("qemu")
        try FileManager.default.createDirectory(atPath: libvirt, withIntermediateDirectories: false)
        try """
            <domain type='kvm'>
              <name>vm2</name>
              <devices>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='raw'/>
                  <source file='\(image)'/>
                  <target dev='vda' bus='virtio'/>
                </disk>
              </devices>
            </domain>
            """.write(toFile: libvirt + "/vm2.xml", atomically: false, encoding: .utf8)
        let lease = leases + "/" + Digest.sha256Hex(image)
        _ = FileManager.default.createFile(atPath: lease, contents: Data())
        let script = """
            import fcntl, sys, time
            open("/proc/self/comm", "w").write("virtlockd")
            a = open(sys.argv[1], "r+b")
            b = open(sys.argv[2], "r+b")
            fcntl.lockf(a, fcntl.LOCK_EX, 1, 0)
            fcntl.lockf(b, fcntl.LOCK_EX, 1, 0)
            time.sleep(60)
            """
        let p = try Background(try Run.tool("python3"), ["-c", script, image, lease])
        defer { p.stop() }
        p.waitForLocks(on: lease)
        let snap = try Inspector(InspectorOptions(lockDirectories: [], libvirtDirectories: [libvirt],
                                                  leaseDirectories: [leases])).snapshot()
        let img = try XCTUnwrap(snap.images.first { $0.path == image }, "\(snap.images.map(\.id))")
        XCTAssertEqual(img.schemes, [.virtlockd])
        XCTAssertEqual(img.lockFiles, [lease])
        XCTAssertEqual(img.holders.map(\.pid), [p.pid, p.pid], "one holder per locked file: the image and the lease")
        XCTAssertEqual(Set(img.holders.map(\.command)), ["virtlockd"])
        XCTAssertTrue(img.holders.allSatisfy { $0.scheme == .virtlockd && $0.lockType == .write && $0.qemu == nil })
        XCTAssertEqual(img.locks.count, 2)
        let entry = try XCTUnwrap(snap.lockFiles.first { $0.path == lease })
        XCTAssertEqual(entry.image, image)
        XCTAssertEqual(entry.mappedBy, "open file", "the holder has the image open: the first candidate source")
        XCTAssertTrue(entry.held)
    }

    func testLibvirtXMLAndQemuArgsMapLockFiles() throws {
        let dir = TempDir("candidates")
        let locks = dir.file("locks")
        try FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: false)
        let libvirt = dir.file("qemu")
        try FileManager.default.createDirectory(atPath: libvirt, withIntermediateDirectories: false)
        let fromXML = dir.makeFile("xml's & disk.img", size: 0)
        let escaped = fromXML.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "'", with: "&apos;")
        try "<domain><devices><disk><source file='\(escaped)' index='1'/></disk></devices></domain>"
            .write(toFile: libvirt + "/a.xml", atomically: false, encoding: .utf8)
        let fromArgs = dir.makeFile("args.img", size: 0)
        for img in [fromXML, fromArgs] {
            _ = FileManager.default.createFile(atPath: locks + "/" + ImageLocker.lockFileName(realPath: img), contents: Data())
        }
        // A QEMU-named process whose arguments name an image it does not hold open.
        let fake = dir.file("qemu-system-x86_64")
        // python3 may be a pyenv shim: link to the interpreter itself.
        let python = try Run.capture(try Run.tool("python3"), ["-c", "import sys; print(sys.executable)"])
        try FileManager.default.createSymbolicLink(atPath: fake, withDestinationPath: python.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let p = try Background(fake, ["-c", "import time; time.sleep(60)", "-drive", "file=\(fromArgs),format=raw,if=none", "-name", "guest=vm3"])
        defer { p.stop() }
        // Wait until its cmdline shows the exec.
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline,
              !((try? String(contentsOfFile: "/proc/\(p.pid)/cmdline", encoding: .utf8)) ?? "").contains("file=") {
            usleep(5_000)
        }
        var t = SnapshotTimings()
        let snap = try Inspector(InspectorOptions(lockDirectories: [locks], libvirtDirectories: [libvirt],
                                                  leaseDirectories: [])).snapshot(timings: &t)
        let byImage = Dictionary(uniqueKeysWithValues: snap.lockFiles.compactMap { e in e.image.map { ($0, e.mappedBy ?? "") } })
        XCTAssertEqual(byImage[fromXML], "libvirt")
        XCTAssertEqual(byImage[fromArgs], "qemu args")
        XCTAssertEqual(t.contentReads, 0)
    }

    /// Lock files looked up among the directories' candidates before the kernel's table is
    /// there (`EarlyMapping`, which a big host's scan does while the table is read) are named
    /// as without: an image both under --images and open in a process by the open file (the
    /// more trusted source, known only after the table), the others by their own source.
    func testLockFilesMappedBeforeTheTableAreMappedAsAfter() throws {
        let dir = TempDir("early-mapping")
        let images = dir.file("images"), locks = dir.file("locks"), libvirt = dir.file("qemu")
        for d in [images, locks, libvirt] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false) }
        let inDir = dir.makeFile("images/in-dir.img", size: 0)
        let open = dir.makeFile("images/open.img", size: 0)
        let fromArgs = dir.makeFile("args.img", size: 0)
        let fromXML = dir.makeFile("xml.img", size: 0)
        try "<domain><devices><disk><source file='\(fromXML)'/></disk></devices></domain>"
            .write(toFile: libvirt + "/a.xml", atomically: false, encoding: .utf8)
        // With lock files of no image (empty: named by nothing, no content read).
        for img in [inDir, open, fromArgs, fromXML, "/nowhere/1.img", "/nowhere/2.img"] {
            _ = FileManager.default.createFile(atPath: locks + "/" + ImageLocker.lockFileName(realPath: img), contents: Data())
        }
        let python = try Run.capture(try Run.tool("python3"), ["-c", "import sys; print(sys.executable)"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let opener = try Background(python, ["-c", "import sys, time; f = open(sys.argv[1], 'rb'); time.sleep(60)", open])
        defer { opener.stop() }
        let fake = dir.file("qemu-system-x86_64")
        try FileManager.default.createSymbolicLink(atPath: fake, withDestinationPath: python)
        let qemu = try Background(fake, ["-c", "import time; time.sleep(60)", "-drive", "file=\(fromArgs),format=raw,if=none"])
        defer { qemu.stop() }
        let deadline = Date().addingTimeInterval(5)
        func ready() -> Bool {
            ((try? String(contentsOfFile: "/proc/\(qemu.pid)/cmdline", encoding: .utf8)) ?? "").contains("file=")
                && (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(opener.pid)/fd"))?.contains { fd in
                    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(opener.pid)/fd/\(fd)")) == open
                } == true
        }
        while Date() < deadline, !ready() { usleep(5_000) }
        func mapped(_ policy: EarlyMappingPolicy) throws -> (byImage: [String: String], unmapped: Int, contentReads: Int) {
            var o = InspectorOptions(lockDirectories: [locks], imageDirectories: [images], libvirtDirectories: [libvirt],
                                     leaseDirectories: [])
            o.earlyMapping = policy
            var t = SnapshotTimings()
            let snap = try Inspector(o).snapshot(timings: &t)
            let byImage = Dictionary(uniqueKeysWithValues: snap.lockFiles.compactMap { e in e.image.map { ($0, e.mappedBy ?? "") } })
            return (byImage, snap.lockFiles.filter { $0.image == nil }.count, t.contentReads)
        }
        let expected = [inDir: "images dir", open: "open file", fromArgs: "qemu args", fromXML: "libvirt"]
        for policy in [EarlyMappingPolicy.never, .always] {
            let m = try mapped(policy)
            XCTAssertEqual(m.byImage, expected, "\(policy)")
            XCTAssertEqual(m.unmapped, 2, "\(policy)")
            XCTAssertEqual(m.contentReads, 0, "\(policy)")
        }
    }

    /// The default rule: early only with thousands of lock files, not for the audit's scan,
    /// and only while the table is still being read (asked last).
    func testLockFilesAreMappedEarlyByDefaultOnlyWhereACoreWouldIdle() {
        let rule = EarlyMappingPolicy.whenTableIsLate
        XCTAssertTrue(rule.mapsEarly(lockFiles: 4096, auditScan: false, tableReady: { false }))
        XCTAssertFalse(rule.mapsEarly(lockFiles: 4095, auditScan: false, tableReady: { false }))
        XCTAssertFalse(rule.mapsEarly(lockFiles: 100_000, auditScan: true, tableReady: { false }))
        XCTAssertFalse(rule.mapsEarly(lockFiles: 100_000, auditScan: false, tableReady: { true }))
        var asked = false
        XCTAssertFalse(rule.mapsEarly(lockFiles: 10, auditScan: false, tableReady: { asked = true; return false }))
        XCTAssertFalse(asked, "the table is not asked about for a small scan")
        XCTAssertTrue(EarlyMappingPolicy.always.mapsEarly(lockFiles: 0, auditScan: true, tableReady: { true }))
        XCTAssertFalse(EarlyMappingPolicy.never.mapsEarly(lockFiles: 100_000, auditScan: false, tableReady: { false }))
        XCTAssertEqual(InspectorOptions().earlyMapping, .whenTableIsLate, "the default")
    }

    func testQemuArgs() {
        XCTAssertEqual(QemuArgs.vmName(["qemu-system-x86_64", "-name", "guest=web1,debug-threads=on"]), "web1")
        XCTAssertEqual(QemuArgs.vmName(["qemu-system-x86_64", "-name", "db,,2,process=x"]), "db,2")
        XCTAssertEqual(QemuArgs.vmName(["qemu-kvm", "--name=plain"]), "plain")
        XCTAssertNil(QemuArgs.vmName(["qemu-io", "-r", "x.img"]))
        XCTAssertEqual(QemuArgs.filePaths(["qemu", "-drive", "file=/a,,b.img,format=qcow2",
                                           "-blockdev", "driver=file,filename=/c.img,node-name=n",
                                           "-drive", "file=nbd:localhost:10809",
                                           "-blockdev", #"{"driver":"qcow2","file":{"driver":"file","filename":"/d.qcow2"}}"#]),
                       ["/a,b.img", "/c.img", "/d.qcow2"])
        // JSON read whole (arrays, escapes, other values); what is not JSON names nothing.
        XCTAssertEqual(QemuArgs.filePaths(["-blockdev", #"{"children":[{"filename":"/e\u00e9 \"q\".img"},{"filename":1},null,true,2.5]}"#,
                                           "-blockdev", "{not json"]),
                       ["/e\u{e9} \"q\".img"])
        XCTAssertTrue(QemuArgs.isQemu(["/usr/bin/qemu-system-x86_64"]))
        XCTAssertFalse(QemuArgs.isQemu(["/usr/bin/python3"]))
    }
}
