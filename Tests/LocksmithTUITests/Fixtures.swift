import Foundation
import ImageLock
import LockInspector
@testable import LocksmithTUI

/// Snapshots built in code: a small host with QEMU users, a lock-file holder, a waiter,
/// a lock file nobody holds, and a path with odd bytes.
enum Fixtures {
    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    static let web01 = Holder(pid: 4242, command: "qemu-system-x86", args: ["qemu-system-x86_64", "-name", "guest=web01"],
                              user: "libvirt-qemu", started: now.addingTimeInterval(-3 * 3600), fd: 31, openMode: .readWrite,
                              vm: "web01", scheme: .qemu, qemu: .readWrite)
    static let web01Base = Holder(pid: 4242, command: "qemu-system-x86", user: "libvirt-qemu",
                                  started: now.addingTimeInterval(-3 * 3600), fd: 32, openMode: .readOnly,
                                  vm: "web01", scheme: .qemu, qemu: .readOnly)
    static let db01Base = Holder(pid: 4300, command: "qemu-system-x86", user: "libvirt-qemu",
                                 started: now.addingTimeInterval(-2 * 86400), fd: 30, openMode: .readOnly,
                                 vm: "db01", scheme: .qemu, qemu: .readOnly)
    static let imgWaiter = Holder(pid: 5001, command: "qemu-img", user: "root", started: now.addingTimeInterval(-12),
                                  scheme: .qemu)
    static let backupHolder = Holder(pid: 777, command: "locksmith", user: "root", started: now.addingTimeInterval(-45),
                                     fd: 3, openMode: .readWrite, scheme: .lockfile, lockType: .write)
    static let oddHolder = Holder(pid: 900, command: "qemu-nbd", user: "backup", started: now.addingTimeInterval(-600),
                                  fd: 10, openMode: .readOnly, scheme: .qemu, qemu: .readOnly)

    static let webImage = ImageLocks(
        id: "/var/lib/libvirt/images/web01.qcow2", path: "/var/lib/libvirt/images/web01.qcow2",
        device: DeviceID(major: 254, minor: 0), inode: 1234, schemes: [.qemu],
        holders: [web01], waiters: [imgWaiter],
        locks: [KernelLock(id: 6, kind: .ofd, mode: "ADVISORY", type: "READ", pid: nil,
                           device: DeviceID(major: 254, minor: 0), inode: 1234, start: 100, end: 101)])
    static let baseImage = ImageLocks(
        id: "/var/lib/libvirt/images/base-debian12.qcow2", path: "/var/lib/libvirt/images/base-debian12.qcow2",
        schemes: [.qemu], holders: [web01Base, db01Base])
    static let backupImage = ImageLocks(
        id: "/srv/images/backup.raw", path: "/srv/images/backup.raw", schemes: [.lockfile],
        lockFiles: ["/var/tmp/.qemu-0123456789abcdef0123456789abcdef01234567.lock"], holders: [backupHolder])
    static let unknownImage = ImageLocks(
        id: "/var/tmp/.qemu-deadbeefdeadbeefdeadbeefdeadbeefdeadbeef.lock", path: nil, schemes: [.lockfile],
        lockFiles: ["/var/tmp/.qemu-deadbeefdeadbeefdeadbeefdeadbeefdeadbeef.lock"])
    static let oddPath = "/srv/images/odd\u{1b}[31m\tname-日本語\u{202e}.img"
    static let oddImage = ImageLocks(id: oddPath, path: oddPath, schemes: [.qemu], holders: [oddHolder])

    static func snapshot(_ images: [ImageLocks]? = nil) -> Snapshot {
        Snapshot(host: "kvm-host-1", generated: now,
                 images: images ?? [webImage, baseImage, backupImage, unknownImage, oddImage],
                 lockFiles: [], unseen: [Unseen(what: "/proc/77/fd", why: "Permission denied")])
    }

    /// A state of the given size with the fixture snapshot loaded.
    static func state(width: Int = 80, height: Int = 24, images: [ImageLocks]? = nil, why: Bool = true) -> TUIState {
        var s = TUIState(width: width, height: height, now: now, whyAvailable: why)
        s.handle(.snapshot(.fresh(snapshot(images))))
        return s
    }
}

extension PolledSnapshot {
    /// A fresh scan of `s` (not a repeat) with the audit's `findings`.
    static func fresh(_ s: Snapshot, findings: [Finding] = []) -> PolledSnapshot {
        PolledSnapshot(AuditedSnapshot(s, findings: findings))
    }
}

extension TUIState {
    /// Feeds keys; returns the reactions.
    @discardableResult
    mutating func press(_ keys: Key...) -> [Reaction] {
        keys.map { handle(.key($0)) }
    }

    /// Feeds characters as keys.
    @discardableResult
    mutating func type(_ text: String) -> [Reaction] {
        text.map { handle(.key(.char($0))) }
    }

    var selectedDescription: String {
        guard let r = selectedRow else { return "none" }
        return "\(r.image.id) pid \(r.holder.map { String($0.pid) } ?? "-")\(r.waiting ? " waiting" : "")"
    }
}
