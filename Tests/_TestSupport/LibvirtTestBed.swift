import Foundation
import XCTest

/// Real libvirt on this host, without systemd: `virtlogd`, `virtlockd` and `libvirtd` started
/// in the foreground as children of the test, with libvirt's QEMU driver configured for the
/// test (`/etc/libvirt/qemu.conf`, and `qemu-lockd.conf` for lease files), and a transient
/// domain `web01` (no OS: the firmware waits) made with `virsh create`.
/// `stop()` (or the release of the value) destroys the domain, stops the daemons, restores the
/// configuration files byte for byte and removes the lockspace dirs libvirt made for the test.
/// A run that died half way leaves its backups (`*.locksmith-test-orig`) behind: the next
/// bed puts them back first.
public final class LibvirtTestBed: @unchecked Sendable {
    public enum LockManager: Sendable {
        /// libvirt's default: no lock manager (QEMU's own byte locks only).
        case none
        /// `lock_manager = "lockd"`: virtlockd locks byte 0 of each writable disk.
        case lockd
        /// lockd with `file_lockspace_dir`: virtlockd locks a lease file named by the
        /// SHA-256 of the disk path instead.
        case lockdLeases
    }

    public static let domain = "web01"
    public static let leaseDirectory = "/var/lib/libvirt/lockd/files"
    static let qemuConf = "/etc/libvirt/qemu.conf"
    static let lockdConf = "/etc/libvirt/qemu-lockd.conf"
    static let backupSuffix = ".locksmith-test-orig"
    static let uri = "qemu:///system"

    public let dir = TempDir("libvirt")
    public let virsh: String
    /// `kvm` when /dev/kvm works for libvirt's QEMU, else `qemu` (TCG).
    public private(set) var domainType = "qemu"
    /// The daemons, by name, in start order.
    public private(set) var daemons: [(name: String, process: Process)] = []
    private var saved: [(path: String, bytes: Data)] = []
    private var madeDirectories: [String] = []
    private var stopped = false

    public func pid(of daemon: String) -> Int32? {
        daemons.first { $0.name == daemon }.map { $0.process.processIdentifier }
    }

    public init(lockManager: LockManager, file: StaticString = #filePath, line: UInt = #line) throws {
        guard geteuid() == 0 else { throw XCTSkip("libvirt's system daemons need root") }
        virsh = try Run.tool("virsh", file: file, line: line)
        let programs = try ["virtlogd", "virtlockd", "libvirtd"].map { ($0, try Run.tool($0, file: file, line: line)) }
        _ = try Run.tool("qemu-system-x86_64", file: file, line: line)
        for (name, _) in programs {
            if let pid = Self.runningDaemon(name) {
                throw XCTSkip("a \(name) this test did not start is running (pid \(pid)): the test needs its own, "
                              + "with its own \(Self.qemuConf); stop it to run this test")
            }
        }
        Self.restoreLeftovers()
        do {
            try configure(lockManager)
            for (name, exe) in programs { try start(name, exe) }
            try waitUntilReady()
            // A domain of a run that died half way: libvirtd reattaches to it on start.
            try Run.capture(virsh, ["-c", Self.uri, "destroy", Self.domain], timeout: 30)
        } catch {
            stop()
            throw error
        }
    }

    /// The pid of a running daemon of that name, from its pid file.
    static func runningDaemon(_ name: String) -> Int32? {
        guard let text = try? String(contentsOfFile: "/run/\(name).pid", encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
              comm.trimmingCharacters(in: .newlines) == name else { return nil }
        return pid
    }

    static func restoreLeftovers() {
        for path in [qemuConf, lockdConf] where FileManager.default.fileExists(atPath: path + backupSuffix) {
            _ = rename(path + backupSuffix, path)
        }
    }

    private func configure(_ lockManager: LockManager) throws {
        // QEMU runs as root for the test: without udev, /dev/kvm here is root's alone (0600), and
        // libvirt 9.0 then finds its cached QEMU capabilities ("KVM was enabled when probing")
        // stale at every use and probes QEMU again, ~40 s per domain start.
        var qemu = "\n# locksmith test bed (Tests/_TestSupport/LibvirtTestBed.swift)\nuser = \"root\"\ngroup = \"root\"\n"
        if lockManager != .none { qemu += "lock_manager = \"lockd\"\n" }
        try append(qemu, to: Self.qemuConf)
        if lockManager == .lockdLeases {
            try append("\nfile_lockspace_dir = \"\(Self.leaseDirectory)\"\n", to: Self.lockdConf)
        }
        // libvirt makes the lockspace dirs; the test removes those that were not there before.
        var path = Self.leaseDirectory
        while !FileManager.default.fileExists(atPath: path) && path != "/var/lib/libvirt" {
            madeDirectories.append(path)
            path = (path as NSString).deletingLastPathComponent
        }
    }

    /// Appends to a configuration file after saving it (in memory, and beside it in case the
    /// test process dies).
    private func append(_ text: String, to path: String) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        guard copyfile(path, path + Self.backupSuffix) else { throw CocoaError(.fileWriteUnknown) }
        saved.append((path, bytes))
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seekToEnd()
        try h.write(contentsOf: Data(text.utf8))
        try h.close()
    }

    private func copyfile(_ from: String, _ to: String) -> Bool {
        (try? Run.capture("/bin/cp", ["-p", from, to]).status) == 0
    }

    private func start(_ name: String, _ exe: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = []
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        let log = dir.file(name + ".stderr")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        daemons.append((name, p))
    }

    /// Until libvirtd answers on its socket (or a daemon ended: then this host cannot run them).
    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let dead = daemons.first(where: { !$0.process.isRunning }) {
                let err = (try? String(contentsOfFile: dir.file(dead.name + ".stderr"), encoding: .utf8)) ?? ""
                throw XCTSkip("\(dead.name) cannot run on this host: it ended with status "
                              + "\(dead.process.terminationStatus): \(err.suffix(400))")
            }
            if FileManager.default.fileExists(atPath: "/run/libvirt/libvirt-sock"),
               try Run.capture(virsh, ["-c", Self.uri, "uri"], timeout: 10).status == 0 { return }
            usleep(50_000)
        }
        XCTFail("libvirtd did not answer on \(Self.uri) within 20 s")
        throw XCTSkip("libvirtd not ready")
    }

    /// What `createDomain` made.
    public struct Domain: Sendable {
        public var uuid: String
        /// The domain's QEMU process.
        public var pid: Int32
    }

    /// Starts the transient domain `web01` with `disk` as its virtio disk `vda` (64 MiB, no
    /// network, no display): KVM when it works for libvirt, else TCG.
    public func createDomain(disk: String, file: StaticString = #filePath, line: UInt = #line) throws -> Domain {
        var types = ["qemu"]
        if FileManager.default.fileExists(atPath: "/dev/kvm") { types.insert("kvm", at: 0) }
        var last: RunResult?
        for type in types {
            let xml = dir.file("web01-\(type).xml")
            try Self.domainXML(type: type, disk: disk).write(toFile: xml, atomically: false, encoding: .utf8)
            let r = try Run.capture(virsh, ["-c", Self.uri, "create", xml], timeout: 90)
            if r.status == 0 {
                domainType = type
                last = nil
                break
            }
            last = r
        }
        if let r = last {
            XCTFail("virsh create: \(r)", file: file, line: line)
            throw XCTSkip("no domain")
        }
        let uuid = try Run.capture(virsh, ["-c", Self.uri, "domuuid", Self.domain]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let pidText = try String(contentsOfFile: "/run/libvirt/qemu/\(Self.domain).pid", encoding: .utf8)
        let pid = try XCTUnwrap(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)), "pid file: \(pidText)",
                                file: file, line: line)
        return Domain(uuid: uuid, pid: pid)
    }

    static func domainXML(type: String, disk: String) -> String {
        let escaped = disk.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "'", with: "&apos;")
            .replacingOccurrences(of: "<", with: "&lt;")
        return """
            <domain type='\(type)'>
              <name>\(domain)</name>
              <memory unit='MiB'>64</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64' machine='pc'>hvm</type></os>
              <devices>
                <emulator>/usr/bin/qemu-system-x86_64</emulator>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='qcow2'/>
                  <source file='\(escaped)'/>
                  <target dev='vda' bus='virtio'/>
                </disk>
                <memballoon model='none'/>
              </devices>
            </domain>
            """
    }

    /// Destroys the domain, stops the daemons (SIGTERM, SIGKILL after 10 s), restores the
    /// configuration and removes the lockspace dirs libvirt made for the test.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        if daemons.contains(where: { $0.name == "libvirtd" && $0.process.isRunning }) {
            let pidFile = "/run/libvirt/qemu/\(Self.domain).pid"
            let qemu = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            _ = try? Run.capture(virsh, ["-c", Self.uri, "destroy", Self.domain], timeout: 30)
            // Should destroy have failed: the domain's own QEMU (named so on its command line).
            if let pid = qemu, let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
               cmd.contains("guest=\(Self.domain),") {
                kill(pid, SIGKILL)
            }
        }
        for (_, p) in daemons.reversed() where p.isRunning {
            kill(p.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while p.isRunning && Date() < deadline { usleep(10_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        for (path, bytes) in saved {
            if (try? bytes.write(to: URL(fileURLWithPath: path))) != nil { unlink(path + Self.backupSuffix) }
        }
        saved = []
        for d in madeDirectories { try? FileManager.default.removeItem(atPath: d) }
    }

    deinit { stop() }
}
