import _TestSupport
import Foundation
import ImageLock
import XCTest

/// `list` and `why` against real libvirt: libvirtd, virtlockd and virtlogd started by the
/// test (LibvirtTestBed), a transient domain `web01` whose disk `vda` is a qcow2 overlay on a
/// base image, without a lock manager, with virtlockd locking the disk itself, and with
/// virtlockd locking lease files.
final class LibvirtCommandsTests: XCTestCase {
    /// A qcow2 overlay `web01.qcow2` on `base.qcow2`, in a fresh dir.
    struct Disks {
        let dir = TempDir("web01")
        let base: String
        let overlay: String
        init() throws {
            base = try Qemu.createImage(dir.file("base.qcow2"))
            overlay = try Qemu.createImage(dir.file("web01.qcow2"), backing: base)
        }
    }

    /// `locksmith list --json`: its images by path.
    func listImages(file: StaticString = #filePath, line: UInt = #line) throws -> [String: [String: Any]] {
        let r = try Run.locksmith(["list", "--json"], timeout: 60)
        XCTAssertEqual(r.status, 0, "\(r.stderr)", file: file, line: line)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                                file: file, line: line)
        var out: [String: [String: Any]] = [:]
        for img in obj["images"] as? [[String: Any]] ?? [] {
            if let p = img["path"] as? String { out[p] = img }
        }
        out["#lock_files"] = ["list": obj["lock_files"] as Any]
        return out
    }

    func holders(_ image: [String: Any]?) -> [[String: Any]] { image?["holders"] as? [[String: Any]] ?? [] }

    func pid(_ h: [String: Any]) -> Int32? { (h["pid"] as? NSNumber)?.int32Value }

    /// The kernel's POSIX byte-0 write locks on `path`, by pid (virtlockd's lock).
    func byteZeroHolders(_ path: String) -> [Int32] {
        ProcLocks.rows(for: path).filter { $0.kind == .posix && $0.start == 0 && $0.end == 0 && $0.type == "WRITE" }
            .compactMap(\.pid)
    }

    /// The table row of `list -o …` for `pid` on `image`, split on runs of spaces.
    func tableRow(image: String, pid: Int32, columns: String) throws -> [String] {
        let r = try Run.locksmith(["list", "--no-headings", "-o", columns])
        XCTAssertEqual(r.status, 0, "\(r)")
        return r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            .first { $0.first == image && $0.contains(String(pid)) } ?? []
    }

    // MARK: - No lock manager

    /// libvirt's default: QEMU's own byte locks only. `list` names the domain and its disk
    /// target on the overlay and on the base (through the overlay's backing chain), with the
    /// domain's UUID; `why` on the base names web01 as the user of the overlay on top, as
    /// QEMU's own refusal does.
    func testListNamesDomainAndDiskAndWhyNamesItThroughTheOverlay() throws {
        let disks = try Disks()
        let conf = try Data(contentsOf: URL(fileURLWithPath: "/etc/libvirt/qemu.conf"))
        let bed = try LibvirtTestBed(lockManager: .none)
        defer { bed.stop() }
        let domain = try bed.createDomain(disk: disks.overlay)
        let cmdline = try String(contentsOfFile: "/proc/\(domain.pid)/cmdline", encoding: .utf8)
        XCTAssertTrue(cmdline.contains("-accel\u{0}\(bed.domainType == "kvm" ? "kvm" : "tcg")\u{0}"),
                      "domain type \(bed.domainType): \(cmdline)")
        XCTAssertFalse(ProcLocks.rows(for: disks.overlay).isEmpty, "QEMU of web01 holds its byte locks")
        XCTAssertEqual(byteZeroHolders(disks.overlay), [], "no lock manager: nobody locks byte 0")

        let images = try listImages()
        for (path, mode) in [(disks.overlay, "rw"), (disks.base, "ro")] {
            let hs = holders(images[path])
            XCTAssertEqual(hs.compactMap(pid), [domain.pid], "\(path): \(hs)")
            let h = try XCTUnwrap(hs.first)
            XCTAssertEqual(h["vm"] as? String, "web01", path)
            XCTAssertEqual(h["vm_uuid"] as? String, domain.uuid, path)
            XCTAssertEqual(h["disk_target"] as? String, "vda", "\(path): the disk it is, or the disk above it")
            XCTAssertEqual(h["scheme"] as? String, "qemu", path)
            XCTAssertEqual(h["mode"] as? String, mode, path)
        }
        // The default table shows DISK beside VM when libvirt names disks.
        let table = try Run.locksmith(["list"])
        let header = table.stdout.split(separator: "\n").first.map { $0.split(separator: " ").map(String.init) } ?? []
        XCTAssertEqual(header.firstIndex(of: "DISK"), header.firstIndex(of: "VM").map { $0 + 1 }, "\(header)")
        XCTAssertEqual(try tableRow(image: disks.base, pid: domain.pid, columns: "image,pid,vm,disk"),
                       [disks.base, String(domain.pid), "web01", "vda"])

        // why on the base: blocked by web01 through the overlay, as QEMU itself says.
        let qemu = try Run.capture(try Run.tool("qemu-io"), ["-c", "read 0 512", disks.base], timeout: 20)
        XCTAssertNotEqual(qemu.status, 0, "QEMU cannot write the base under a running overlay: \(qemu)")
        let why = try Run.locksmith(["why", "--json", disks.base], timeout: 30)
        XCTAssertEqual(why.status, 1, "\(why)")
        let verdict = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(why.stdout.utf8)) as? [String: Any])
        let blockers = verdict["blockers"] as? [[String: Any]] ?? []
        XCTAssertEqual(blockers.compactMap(pid), [domain.pid], "\(blockers)")
        XCTAssertEqual(blockers.first?["vm"] as? String, "web01")
        XCTAssertEqual(blockers.first?["via"] as? String, disks.overlay)
        let message = try XCTUnwrap(verdict["qemu_message"] as? String)
        XCTAssertTrue(qemu.stderr.contains(message), "why says «\(message)», QEMU said «\(qemu.stderr)»")
        let text = try Run.locksmith(["why", disks.base], timeout: 30)
        XCTAssertTrue(text.stdout.contains("VM web01 (pid \(domain.pid))"), text.stdout)

        // The bed leaves nothing behind: no domain, no daemon, qemu.conf as it was.
        let daemons = bed.daemons.map { ($0.name, $0.process.processIdentifier) }
        bed.stop()
        func commandLine(_ pid: Int32) -> String { (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "" }
        for (name, pid) in daemons { XCTAssertFalse(commandLine(pid).contains(name), "\(name) (pid \(pid)) still runs") }
        XCTAssertFalse(commandLine(domain.pid).contains("guest=web01,"), "web01's QEMU still runs")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "/etc/libvirt/qemu.conf")), conf)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/etc/libvirt/qemu.conf.locksmith-test-orig"))
    }

    // MARK: - virtlockd

    /// `lock_manager = "lockd"`: virtlockd holds a POSIX write lock on byte 0 of the disk.
    /// `list` shows it as scheme virtlockd held for web01's vda (not as a QEMU user without a
    /// VM), beside QEMU's own holder; virtlockd's lock on its own pid file is no image.
    func testLockdHolderIsNamedByItsDomain() throws {
        let disks = try Disks()
        let bed = try LibvirtTestBed(lockManager: .lockd)
        defer { bed.stop() }
        let domain = try bed.createDomain(disk: disks.overlay)
        let virtlockd = try XCTUnwrap(bed.pid(of: "virtlockd"))
        XCTAssertEqual(byteZeroHolders(disks.overlay), [virtlockd], "the kernel shows virtlockd holding byte 0 of the disk")
        XCTAssertEqual(byteZeroHolders(disks.base), [], "virtlockd does not lock the read-only backing file")
        XCTAssertEqual(byteZeroHolders("/run/virtlockd.pid"), [virtlockd], "virtlockd locks byte 0 of its pid file too")

        let images = try listImages()
        let overlay = try XCTUnwrap(images[disks.overlay])
        XCTAssertEqual(Set(overlay["schemes"] as? [String] ?? []), ["qemu", "virtlockd"])
        let hs = holders(overlay)
        XCTAssertEqual(Set(hs.compactMap(pid)), [virtlockd, domain.pid], "\(hs)")
        let lockd = try XCTUnwrap(hs.first { pid($0) == virtlockd })
        XCTAssertEqual(lockd["command"] as? String, "virtlockd")
        XCTAssertEqual(lockd["scheme"] as? String, "virtlockd")
        XCTAssertEqual(lockd["mode"] as? String, "write")
        XCTAssertEqual(lockd["vm"] as? String, "web01", "the domain that owns virtlockd's lock")
        XCTAssertEqual(lockd["vm_uuid"] as? String, domain.uuid)
        XCTAssertEqual(lockd["disk_target"] as? String, "vda")
        let q = try XCTUnwrap(hs.first { pid($0) == domain.pid })
        XCTAssertEqual(q["scheme"] as? String, "qemu")
        XCTAssertEqual(q["vm"] as? String, "web01")
        XCTAssertNil(images["/run/virtlockd.pid"], "virtlockd's pid file is not an image")
        for (path, img) in images where path != disks.overlay {
            XCTAssertFalse(holders(img).contains { pid($0) == virtlockd }, "virtlockd holds nothing else: \(path)")
        }
        XCTAssertEqual(try tableRow(image: disks.overlay, pid: virtlockd, columns: "image,scheme,mode,pid,command,vm,disk"),
                       [disks.overlay, "virtlockd", "write", String(virtlockd), "virtlockd", "web01", "vda"])

        // why on the disk: virtlockd is a blocker, named by its domain.
        let why = try Run.locksmith(["why", "--json", disks.overlay], timeout: 30)
        XCTAssertEqual(why.status, 1, "\(why)")
        let verdict = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(why.stdout.utf8)) as? [String: Any])
        let blockers = verdict["blockers"] as? [[String: Any]] ?? []
        let b = try XCTUnwrap(blockers.first { pid($0) == virtlockd }, "\(blockers)")
        XCTAssertEqual(b["vm"] as? String, "web01")
        XCTAssertEqual(b["scheme"] as? String, "virtlockd")
    }

    /// lockd with `file_lockspace_dir`: virtlockd locks a lease file named by the SHA-256 of
    /// the disk path instead of the disk. `list` maps the lease to the disk and names web01.
    func testLockdLeaseFileIsNamedByItsDomain() throws {
        let disks = try Disks()
        let bed = try LibvirtTestBed(lockManager: .lockdLeases)
        defer { bed.stop() }
        _ = try bed.createDomain(disk: disks.overlay)
        let virtlockd = try XCTUnwrap(bed.pid(of: "virtlockd"))
        let lease = LibvirtTestBed.leaseDirectory + "/" + Digest.sha256Hex(disks.overlay)
        XCTAssertEqual(byteZeroHolders(lease), [virtlockd], "the kernel shows virtlockd holding byte 0 of the lease")
        XCTAssertEqual(byteZeroHolders(disks.overlay), [], "and nothing on the disk itself")

        let images = try listImages()
        let overlay = try XCTUnwrap(images[disks.overlay])
        XCTAssertEqual(overlay["lock_files"] as? [String], [lease])
        let lockd = try XCTUnwrap(holders(overlay).first { pid($0) == virtlockd }, "\(holders(overlay))")
        XCTAssertEqual(lockd["scheme"] as? String, "virtlockd")
        XCTAssertEqual(lockd["vm"] as? String, "web01")
        XCTAssertEqual(lockd["disk_target"] as? String, "vda")
        let files = images["#lock_files"]?["list"] as? [[String: Any]] ?? []
        let entry = try XCTUnwrap(files.first { $0["path"] as? String == lease })
        XCTAssertEqual(entry["image"] as? String, disks.overlay)
        XCTAssertEqual(entry["held"] as? Bool, true)
    }
}
