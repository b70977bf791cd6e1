import Foundation
import ImageLock
@testable import LockInspector
import XCTest

/// `why`'s text, from verdicts the pure rule decides on inputs built in code.
final class WhyTextTests: XCTestCase {
    let dev = DeviceID(major: 0xfe, minor: 0)

    func verdict(_ intent: OpenIntent, holders: [Holder]) -> Verdict {
        let file = FileFacts(path: "/i/vm.qcow2", kind: .regular, device: dev, inode: 10, readable: true, writable: true)
        let rows = holders.compactMap(\.qemu).flatMap { p in
            p.bytes.map { kernelRow("1: OFDLCK ADVISORY  READ -1 fe:00:10 \($0) \($0)") }
        }
        let image = ImageLocks(id: "/i/vm.qcow2", path: "/i/vm.qcow2", device: dev, inode: 10, schemes: [.qemu], holders: holders, locks: rows)
        return Diagnosis.verdict(WhyInput(imageAsGiven: "vm.qcow2", intent: intent,
                                          chain: [ChainLink(name: "vm.qcow2", file: file, format: "qcow2")], images: [image]))
    }

    func testABlockedOpenNamesTheVMQuotesQemuAndGivesTheRemedy() {
        let started = Date(timeIntervalSince1970: 1_700_000_000)
        let web = Holder(pid: 42, command: "qemu-system-x86", user: "qemu", started: started, fd: 31, openMode: .readWrite,
                         vm: "web1", scheme: .qemu, lockType: .read, qemu: .readWrite)
        let v = verdict(.write, holders: [web])
        let lines = WhyText.lines(v)
        XCTAssertEqual(lines[0], "/i/vm.qcow2: won't open read-write — blocked by VM web1 (pid 42)")
        XCTAssertEqual(lines[1], "  QEMU says: Failed to get \"write\" lock")
        XCTAssertEqual(lines[2], "             Is another process using the image [vm.qcow2]?")
        let blocker = lines.first { $0.hasPrefix("  blocker: ") }
        XCTAssertEqual(blocker, "  blocker: pid 42 qemu-system-x86; VM web1; user qemu; since 2023-11-14T22:13:20Z; open read-write (fd 31); "
                       + "qemu scheme, holds \(v.blockers[0].lock) on \(v.blockers[0].holds); conflicting permissions: write, resize")
        XCTAssertEqual(lines[lines.firstIndex(of: blocker!)! + 1], "           remedy: \(v.blockers[0].remedy)")
    }

    func testSeveralBlockersAreCountedInTheHeadline() {
        let a = Holder(pid: 7, command: "qemu-img", scheme: .qemu, lockType: .read, qemu: .readOnly)
        let b = Holder(pid: 8, command: "qemu-img", scheme: .qemu, lockType: .read, qemu: .readOnly)
        XCTAssertEqual(WhyText.lines(verdict(.write, holders: [a, b]))[0], "/i/vm.qcow2: won't open read-write — blocked by 2 holders")
        XCTAssertEqual(WhyText.lines(verdict(.readOnly, holders: [a, b]))[0], "/i/vm.qcow2: opens read-only")
    }

    func testClusterLinesNameEachHostAndTheRemedyThere() {
        let h = Holder(pid: 9, command: "qemu-io", scheme: .qemu, lockType: .read, qemu: .readWrite, host: "h1")
        let hosts = [ClusterHost(name: ".", reached: true, label: "h0"), ClusterHost(name: "root@h1", reached: true, label: "h1"),
                     ClusterHost(name: "h2", reached: false)]
        let lines = WhyText.clusterLines(image: "/shared/vm.qcow2", hosts: hosts,
                                         seen: [ClusterWhy.Seen(holder: h, blocks: true)], storage: "fuse:vol1:/vm.qcow2")
        XCTAssertEqual(lines, [
            "  cluster: 3 hosts in view (h0, h1); not seen: h2; shared storage fuse:vol1:/vm.qcow2",
            "  blocked by qemu-io (pid 9) on h1 (qemu, rw)",
            "          remedy: on h1: stop qemu-io (pid 9) when it is done; `ssh root@h1 locksmith why /shared/vm.qcow2` there",
        ])
        XCTAssertEqual(WhyText.clusterLines(image: "x", hosts: [], seen: [], storage: nil).last, "  no holder on any host in view")
    }
}
