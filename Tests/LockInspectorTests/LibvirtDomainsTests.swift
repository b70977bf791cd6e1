import _TestSupport
import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// Reading libvirt's domain XML as hostile input, and naming holders from it. The live
/// daemons are in locksmithTests/LibvirtCommandsTests; these cover what a live libvirt does
/// not write on demand (malformed, planted or odd XML, several domains on one disk).
final class LibvirtDomainsTests: XCTestCase {
    /// The shape of libvirt 9.0's live status XML (abridged from /run/libvirt/qemu/web01.xml).
    static let status = """
        <!--
        WARNING: THIS IS AN AUTO-GENERATED FILE. <disk><source file='/in/a/comment'/></disk>
        -->

        <domstatus state='running' reason='booted' pid='4242'>
          <monitor path='/var/lib/libvirt/qemu/domain-1-web01/monitor.sock' type='unix'/>
          <qemuCaps><flag name='kvm'/></qemuCaps>
          <domain type='qemu' id='1'>
            <name>web01</name>
            <uuid>06f76e1f-7f0b-40c0-9f7d-e3319e3620c1</uuid>
            <devices>
              <emulator>/usr/bin/qemu-system-x86_64</emulator>
              <disk type='file' device='disk'>
                <driver name='qemu' type='qcow2'/>
                <source file='/img/web01.qcow2' index='1'>
                  <privateData><nodenames><nodename type='storage' name='libvirt-1-storage'/></nodenames></privateData>
                </source>
                <backingStore type='file' index='2'>
                  <format type='qcow2'/>
                  <source file='/img/mid.qcow2'/>
                  <backingStore type='file' index='3'>
                    <source file='/img/base &amp; &#x41;&#66;.qcow2'/>
                    <backingStore/>
                  </backingStore>
                </backingStore>
                <mirror type='file' job='copy'><source file='/img/copy.qcow2'/></mirror>
                <target dev='vda' bus='virtio'/>
              </disk>
              <disk type="block" device="disk">
                <source dev="/dev/vg/data"><reservations managed='no'><source type='unix' path='/x' mode='client'/></reservations></source>
                <target dev="vdb" bus="virtio"/>
                <shareable/>
              </disk>
              <disk type='file' device='cdrom'>
                <target dev='sda' bus='sata'/>
                <readonly/>
              </disk>
            </devices>
          </domain>
        </domstatus>
        """

    func testParsesLibvirtsLiveStatus() throws {
        let d = try XCTUnwrap(LibvirtDomains.parse(Array(Self.status.utf8)))
        XCTAssertEqual(d.name, "web01")
        XCTAssertEqual(d.uuid, "06f76e1f-7f0b-40c0-9f7d-e3319e3620c1")
        XCTAssertEqual(d.pid, 4242)
        XCTAssertTrue(d.live)
        XCTAssertEqual(d.disks, [
            LibvirtDomain.Disk(target: "vda", sources: ["/img/web01.qcow2", "/img/mid.qcow2", "/img/base & AB.qcow2"]),
            LibvirtDomain.Disk(target: "vdb", sources: ["/dev/vg/data"], shareable: true),
            LibvirtDomain.Disk(target: "sda", sources: [], readOnly: true),
        ], "the backing chain top first; not a mirror's, a reservation's or a comment's source")
    }

    func testPersistentDefinitionHasNoPid() throws {
        let xml = "<?xml version='1.0'?><domain type='kvm'><name> db1 </name><devices><disk><source file='/a'/>"
            + "<target dev='hda'/></disk></devices></domain>\n"
        let d = try XCTUnwrap(LibvirtDomains.parse(Array(xml.utf8)))
        XCTAssertEqual(d.name, "db1")
        XCTAssertNil(d.pid)
        XCTAssertFalse(d.live)
        XCTAssertEqual(d.disks.map(\.target), ["hda"])
    }

    /// Planted or broken files are refused whole, never half-read, and never expand anything.
    func testRefusesWhatLibvirtDoesNotWrite() {
        let refused: [String: String] = [
            "DTD": "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain><name>&x;</name></domain>",
            "unclosed": "<domain><name>a</name><devices>",
            "mismatched": "<domain><name>a</devices></domain>",
            "two roots": "<domain><name>a</name></domain><domain><name>b</name></domain>",
            "other root": "<network><name>default</name></network>",
            "no domain": "<domstatus pid='1'><name>a</name></domstatus>",
            "unterminated comment": "<domain><name>a</name><!-- </domain>",
            "unquoted attribute": "<domain type=kvm><name>a</name></domain>",
            "< in attribute": "<domain><name>a</name><devices><disk><source file='/a<b'/></disk></devices></domain>",
            "empty": "",
            "binary": "\u{0}\u{1}<\u{2}>",
            "escape in name": "<domain><name>a\u{1b}[2Jb</name></domain>",
            "escape by reference": "<domain><name>a&#27;[2Jb</name></domain>",
            "C1 control in target": "<domain><name>a</name><devices><disk><target dev='vd&#x9b;a'/></disk></devices></domain>",
        ]
        for (what, xml) in refused {
            XCTAssertNil(LibvirtDomains.parse(Array(xml.utf8)), what)
        }
        // 100k nested elements: refused at depth 64, in one pass.
        let deep = String(repeating: "<a>", count: 100_000)
        XCTAssertNil(LibvirtDomains.parse(Array(("<domain>" + deep).utf8)))
        XCTAssertEqual(LibvirtDomains.parse(Array("<domain><uuid>u</uuid></domain>".utf8))?.name, "",
                       "no name: its disks are still candidate images, it names no holder")
        // An unknown entity is kept as written, not resolved.
        let d = LibvirtDomains.parse(Array("<domain><name>a&unknown;b&#0;</name></domain>".utf8))
        XCTAssertEqual(d?.name, "a&unknown;b&#0;")
    }

    func testReadSkipsUnreadableAndTooLargeFiles() throws {
        let dir = TempDir("domains")
        try Self.status.write(toFile: dir.file("web01.xml"), atomically: false, encoding: .utf8)
        try "<domain><name>x".write(toFile: dir.file("broken.xml"), atomically: false, encoding: .utf8)
        try "not xml".write(toFile: dir.file("notes.txt"), atomically: false, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: dir.file("huge.xml"), contents: Data(count: LibvirtDomains.sizeLimit + 1))
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.xml"), withDestinationPath: dir.file("web01.xml"))
        XCTAssertEqual(mkfifo(dir.file("fifo.xml"), 0o600), 0)
        let (domains, unseen) = LibvirtDomains.read([dir.path])
        XCTAssertEqual(domains.map(\.name), ["web01"], "the link and the FIFO are not followed or opened")
        XCTAssertEqual(Set(unseen.map(\.what)), Set(["broken.xml", "fifo.xml", "huge.xml", "link.xml"].map { "libvirt domain \(dir.file($0))" }),
                       "\(unseen)")
    }

    // MARK: Naming holders

    func holder(_ pid: Int32, _ command: String, scheme: LockScheme, args: [String] = []) -> Holder {
        Holder(pid: pid, command: command, args: args, vm: nil, scheme: scheme)
    }

    func testQemuHolderNamedByPidOrUUIDAndVirtlockdByTheDisksOwners() {
        let chain = ["/img/web01.qcow2", "/img/base.qcow2"]
        let domains = [
            LibvirtDomain(name: "web01", uuid: "u1", pid: 100, live: true, disks: [.init(target: "vda", sources: chain)]),
            LibvirtDomain(name: "web01", uuid: "u1", live: false, disks: [.init(target: "hda", sources: chain)]),
            LibvirtDomain(name: "db1", uuid: "u2", pid: 200, live: true,
                          disks: [.init(target: "vdb", sources: ["/img/shared.raw"], shareable: true)]),
            LibvirtDomain(name: "db2", uuid: "u3", pid: 300, live: true,
                          disks: [.init(target: "vdc", sources: ["/img/shared.raw"], shareable: true)]),
            LibvirtDomain(name: "off", uuid: "u4", live: false, disks: [.init(target: "vda", sources: ["/img/off.qcow2"])]),
        ]
        var images = [
            ImageLocks(id: chain[1], path: chain[1], schemes: [.qemu], holders: [
                holder(100, "qemu-system-x86", scheme: .qemu, args: ["/usr/bin/qemu-system-x86_64", "-name", "guest=other"]),
                // Not QEMU: a pid in a stale status file names nothing.
                holder(200, "bash", scheme: .qemu, args: ["bash"]),
                // Found by its -uuid, not its pid.
                holder(555, "qemu-kvm", scheme: .qemu, args: ["qemu-kvm", "-uuid", "u1"]),
            ]),
            ImageLocks(id: "/img/shared.raw", path: "/img/shared.raw", schemes: [.virtlockd],
                       holders: [holder(9, "virtlockd", scheme: .virtlockd)]),
            ImageLocks(id: "/img/off.qcow2", path: "/img/off.qcow2", schemes: [.virtlockd],
                       holders: [holder(9, "virtlockd", scheme: .virtlockd)]),
            ImageLocks(id: chain[1] + "x", path: chain[1], schemes: [.virtlockd],
                       holders: [holder(9, "virtlockd", scheme: .virtlockd)]),
        ]
        LibvirtDomains.annotate(&images, domains: domains)
        let q = images[0].holders
        XCTAssertEqual(q.map(\.vm), ["web01", nil, "web01"])
        XCTAssertEqual(q.map(\.vmUUID), ["u1", nil, "u1"])
        XCTAssertEqual(q.map(\.diskTarget), ["vda", nil, "vda"], "the live domain's target, through the backing chain")
        XCTAssertEqual(images[1].holders[0].vm, "db1,db2", "a shareable disk: every running owner")
        XCTAssertEqual(images[1].holders[0].diskTarget, "vdb,vdc")
        XCTAssertNil(images[1].holders[0].vmUUID)
        XCTAssertEqual(images[2].holders[0].vm, "off", "no running owner: the persistent definition")
        XCTAssertNil(images[3].holders[0].vm, "virtlockd locks a disk's own source, never a backing file")
    }

    func testSymlinkedSourceMatchesTheImagesRealPath() throws {
        let dir = TempDir("domains")
        let real = dir.makeFile("disk.raw", size: 0)
        try FileManager.default.createSymbolicLink(atPath: dir.file("alias.raw"), withDestinationPath: real)
        var images = [ImageLocks(id: real, path: real, schemes: [.virtlockd], holders: [holder(9, "virtlockd", scheme: .virtlockd)])]
        LibvirtDomains.annotate(&images, domains: [
            LibvirtDomain(name: "vm", pid: 1, live: true, disks: [.init(target: "sdb", sources: [dir.file("alias.raw")])]),
        ])
        XCTAssertEqual(images[0].holders[0].diskTarget, "sdb")
    }

    /// virtlockd's lock on an image whose name is the NFD twin of a domain's disk (é as e and
    /// a combining accent, the disk's as one code point) is not that domain's: another file.
    func testADisksNFDTwinIsNotTheDisk() {
        let disk = "/img/vm-\u{E9}.raw", twin = "/img/vm-e\u{301}.raw"
        var images = [ImageLocks(id: twin, path: twin, schemes: [.virtlockd], holders: [holder(9, "virtlockd", scheme: .virtlockd)]),
                      ImageLocks(id: disk, path: disk, schemes: [.virtlockd], holders: [holder(9, "virtlockd", scheme: .virtlockd)])]
        LibvirtDomains.annotate(&images, domains: [
            LibvirtDomain(name: "vm", pid: 1, live: true, disks: [.init(target: "vda", sources: [disk])]),
        ])
        XCTAssertEqual(images.map { $0.holders[0].vm }, [nil, "vm"])
    }

    func testOwnPidFiles() {
        XCTAssertTrue(LibvirtDomains.isOwnPidFile("/run/virtlockd.pid", command: "virtlockd", args: ["virtlockd", "--daemon"]))
        XCTAssertTrue(LibvirtDomains.isOwnPidFile("/srv/x.pid", command: "virtlockd", args: ["virtlockd", "-p", "/srv/x.pid"]))
        XCTAssertTrue(LibvirtDomains.isOwnPidFile("/srv/y", command: "virtlockd", args: ["virtlockd", "--pid-file=/srv/y"]))
        XCTAssertFalse(LibvirtDomains.isOwnPidFile("/img/virtlockd.pid.qcow2", command: "virtlockd", args: ["virtlockd"]))
        XCTAssertFalse(LibvirtDomains.isOwnPidFile("/img/a.pid", command: "virtlockd", args: ["virtlockd"]))
    }

    func testQemuUUIDArgument() {
        XCTAssertEqual(QemuArgs.uuid(["qemu-system-x86_64", "-name", "guest=web01,debug-threads=on", "-uuid", "06f7"]), "06f7")
        XCTAssertEqual(QemuArgs.vmName(["qemu-system-x86_64", "-name", "guest=web01,debug-threads=on", "-uuid", "06f7"]), "web01")
        XCTAssertNil(QemuArgs.uuid(["qemu-system-x86_64", "-uuid"]))
    }
}
