// TEMPORARY ADAPTER (issue 4): `why` needs `ImageLocks` for a handful of files before
// `Inspector.snapshot()` exists. This builds them from /proc/locks and the core's
// LockHolderFinder.attribute, for the given files only; it is not a general scanner.
// On merge, `why` should take its entries from the inspector's snapshot; the inspector
// may reuse `FocusedScan.entry(...)`'s classification or drop this file.
import Foundation
import ImageLock
#if canImport(Glibc)
import Glibc
#endif

public enum FocusedScan {
    /// A file whose locks are wanted: a chain member and, for the image, its lock files.
    public struct Target: Sendable {
        public var path: String
        public var device: DeviceID
        public var inode: UInt64
        public var lockFiles: [(path: String, device: DeviceID, inode: UInt64)]

        public init(path: String, device: DeviceID, inode: UInt64, lockFiles: [(path: String, device: DeviceID, inode: UInt64)] = []) {
            self.path = path
            self.device = device
            self.inode = inode
            self.lockFiles = lockFiles
        }
    }

    /// The targets of a `WhyInput`: every chain member that exists, the image with its
    /// regular lock files.
    public static func targets(of input: WhyInput) -> [Target] {
        var out: [Target] = []
        for (i, link) in input.chain.enumerated() {
            guard let dev = link.file.device, let ino = link.file.inode, link.file.isDisk else { continue }
            var t = Target(path: link.file.path, device: dev, inode: ino)
            if i == 0 {
                t.lockFiles = input.lockDirs.compactMap { d in
                    let f = d.lockFileFacts
                    guard f.kind == .regular, let dv = f.device, let io = f.inode else { return nil }
                    return (d.lockFile, dv, io)
                }
            }
            if !out.contains(where: { $0.device == dev && $0.inode == ino }) { out.append(t) }
        }
        return out
    }

    /// One `ImageLocks` per target, from one read of `<procRoot>/locks`. Throws when the
    /// lock table cannot be read.
    public static func images(for targets: [Target], procRoot: String = "/proc") throws -> [ImageLocks] {
        guard let text = ProcFS.read(procRoot + "/locks") else {
            throw ImageLockError.system(operation: "read", path: procRoot + "/locks", errno: errno == 0 ? ENOENT : errno)
        }
        // fcntl locks only: flock(2) locks and leases never conflict with fcntl locks.
        let all = text.split(separator: "\n").compactMap { KernelLock(line: $0) }.filter { $0.kind == "POSIX" || $0.kind == "OFDLCK" }
        func on(_ dev: DeviceID, _ ino: UInt64) -> [KernelLock] { all.filter { $0.device == dev && $0.inode == ino } }
        let relevant = targets.flatMap { t in on(t.device, t.inode) + t.lockFiles.flatMap { on($0.device, $0.inode) } }
        let attributed = LockHolderFinder.attribute(relevant.filter { !$0.isWaiter }, procRoot: procRoot)
            .filter { $0.pid != getpid() }
        var details = HolderDetails(procRoot: procRoot)
        return targets.map { t in
            let imageRows = on(t.device, t.inode)
            let lockRows = t.lockFiles.flatMap { on($0.device, $0.inode) }
            var holders: [Holder] = []
            // The image: one holder per process and open file, its locks decoded.
            let onImage = attributed.filter { $0.lock.device == t.device && $0.lock.inode == t.inode }
            for key in orderedKeys(onImage) {
                let locks = onImage.filter { $0.pid == key.pid && $0.fd == key.fd }.map(\.lock)
                let type: LockType = locks.contains { $0.lockType == .write } ? .write : .read
                let qemuRanges = locks.filter { QemuPermissions.touchesLockBytes(start: $0.start, end: $0.end) }
                if !qemuRanges.isEmpty {
                    holders.append(details.holder(pid: key.pid, fd: key.fd, scheme: .qemu, lockType: type,
                                                  qemu: QemuPermissions(lockedRanges: qemuRanges.map { ($0.start, $0.end) })))
                } else if locks.contains(where: { $0.start == 0 && $0.end == 0 }) {
                    // virtlockd direct mode: byte 0, length 1, on the disk (FACTS.md §5).
                    holders.append(details.holder(pid: key.pid, fd: key.fd, scheme: .virtlockd, lockType: type, qemu: nil))
                }
            }
            // The lock files: whole-file read or write locks.
            for lf in t.lockFiles {
                let onFile = attributed.filter { $0.lock.device == lf.device && $0.lock.inode == lf.inode }
                for key in orderedKeys(onFile) {
                    let locks = onFile.filter { $0.pid == key.pid && $0.fd == key.fd }.map(\.lock)
                    let type: LockType = locks.contains { $0.lockType == .write } ? .write : .read
                    holders.append(details.holder(pid: key.pid, fd: key.fd, scheme: .lockfile, lockType: type, qemu: nil))
                }
            }
            // Blocked waiters: `->` lines. OFD waiters have no pid and no fdinfo line.
            let waiters = (imageRows + lockRows).filter(\.isWaiter).map { w in
                var h = w.pid.map { details.holder(pid: $0, fd: nil, scheme: lockRows.contains(w) ? .lockfile : .qemu,
                                                   lockType: w.lockType, qemu: nil) }
                    ?? Holder(pid: -1, command: "?", scheme: lockRows.contains(w) ? .lockfile : .qemu, lockType: w.lockType)
                h.fd = nil
                return h
            }
            var schemes: [LockScheme] = []
            for h in holders where !schemes.contains(h.scheme) { schemes.append(h.scheme) }
            return ImageLocks(id: t.path, path: t.path, device: t.device, inode: t.inode, schemes: schemes,
                              lockFiles: t.lockFiles.map(\.path), holders: holders, waiters: waiters,
                              locks: imageRows + lockRows)
        }
    }

    private struct Key: Hashable {
        var pid: Int32
        var fd: Int32?
    }

    private static func orderedKeys(_ hs: [LockHolder]) -> [Key] {
        var keys: [Key] = []
        for h in hs where !keys.contains(Key(pid: h.pid, fd: h.fd)) { keys.append(Key(pid: h.pid, fd: h.fd)) }
        return keys
    }

    /// Processes that hold a chain member because they opened an overlay of it that is not
    /// in the chain (`why base.qcow2` while a VM runs `vm.qcow2` on top of it): their other
    /// QEMU-locked files whose backing chain reaches the member.
    public static func overlayUses(images: [ImageLocks], chain: [ChainLink], procRoot: String = "/proc") -> [OverlayUse] {
        var out: [OverlayUse] = []
        let members = Set(chain.compactMap { $0.file.inode })
        for e in images {
            guard let path = e.path else { continue }
            for pid in Set(e.holders.filter { $0.scheme == .qemu }.map(\.pid)) {
                let dir = "\(procRoot)/\(pid)/fdinfo"
                for name in ProcFS.list(dir) ?? [] {
                    guard let text = ProcFS.read("\(dir)/\(name)"), let info = FDInfo(text: Substring(text)),
                          info.locks.contains(where: { QemuPermissions.touchesLockBytes(start: $0.start, end: $0.end) }),
                          let ino = info.inode, !members.contains(ino) else { continue }
                    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(procRoot)/\(pid)/fd/\(name)")) ?? ""
                    guard target.hasPrefix("/") else { continue }
                    let sub = WhyFacts.backingChain(named: target)
                    if sub.dropFirst().contains(where: { $0.file.path == path }) {
                        let use = OverlayUse(pid: pid, overlay: sub[0].file.path, base: path)
                        if !out.contains(use) { out.append(use) }
                    }
                }
            }
        }
        return out
    }
}

/// Who a pid is: command line, user, start time, VM name, open mode of an fd. Cached per pid.
struct HolderDetails {
    let procRoot: String
    private var cache: [Int32: Holder] = [:]
    private lazy var bootTime: Double? = {
        guard let s = ProcFS.read(procRoot + "/stat") else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }()

    init(procRoot: String) { self.procRoot = procRoot }

    mutating func holder(pid: Int32, fd: Int32?, scheme: LockScheme, lockType: LockType?, qemu: QemuPermissions?) -> Holder {
        var h = cache[pid] ?? base(pid)
        cache[pid] = h
        h.fd = fd
        h.scheme = scheme
        h.lockType = lockType
        h.qemu = qemu
        if let fd, let text = ProcFS.read("\(procRoot)/\(pid)/fdinfo/\(fd)"), let info = FDInfo(text: Substring(text)) {
            h.openMode = info.openMode
        }
        return h
    }

    private mutating func base(_ pid: Int32) -> Holder {
        let command = ProcFS.command(pid: pid, procRoot: procRoot) ?? "?"
        let args = (ProcFS.read("\(procRoot)/\(pid)/cmdline") ?? "").split(separator: "\0").map(String.init)
        var uid: UInt32?
        if let status = ProcFS.read("\(procRoot)/\(pid)/status") {
            for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
                uid = line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
            }
        }
        var started: Date?
        if let stat = ProcFS.read("\(procRoot)/\(pid)/stat"), let close = stat.lastIndex(of: ")"), let boot = bootTime {
            // Fields after the command: state is field 3; starttime (clock ticks) is field 22.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 19, let ticks = Double(fields[19]) {
                started = Date(timeIntervalSince1970: boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
            }
        }
        return Holder(pid: pid, command: command, args: args, user: uid.flatMap(Self.userName), uid: uid, started: started,
                      vm: Self.vmName(args), scheme: .qemu)
    }

    /// QEMU's `-name guest=NAME,...` or `-name NAME`.
    static func vmName(_ args: [String]) -> String? {
        guard let i = args.firstIndex(of: "-name"), i + 1 < args.count else { return nil }
        let value = args[i + 1]
        for part in value.split(separator: ",") where part.hasPrefix("guest=") { return String(part.dropFirst(6)) }
        let first = value.split(separator: ",").first.map(String.init)
        return first?.contains("=") == true ? nil : first
    }

    static func userName(_ uid: UInt32) -> String? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buf = [CChar](repeating: 0, count: 1024)
        guard getpwuid_r(uid, &pw, &buf, buf.count, &result) == 0, result != nil else { return String(uid) }
        return String(cString: pw.pw_name)
    }
}
