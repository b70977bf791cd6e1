import Foundation
import LockInspector

/// Holders and unseen places as Encodable values, for `audit --json` and `watch --json`
/// (which build their objects with JSONEncoder). `list --json` writes the same fields through
/// LockInspector's SnapshotJSON; keep the two in step.
struct HolderJSON: Encodable {
    var holder: Holder

    init(_ holder: Holder) { self.holder = holder }

    func encode(to encoder: Encoder) throws {
        let h = holder
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(h.pid, forKey: .pid)
        try c.encode(h.command, forKey: .command)
        try c.encode(h.args, forKey: .args)
        try c.encode(h.user ?? h.uid.map(String.init), forKey: .user)
        try c.encode(h.uid, forKey: .uid)
        try c.encode(h.started.map(SnapshotJSON.iso8601), forKey: .started)
        try c.encode(h.fd, forKey: .fd)
        try c.encode(h.host, forKey: .host)
        try c.encode(h.openMode?.rawValue, forKey: .openMode)
        try c.encode(h.vm, forKey: .vm)
        try c.encode(h.vmUUID, forKey: .vmUUID)
        try c.encode(h.diskTarget, forKey: .diskTarget)
        try c.encode(h.scheme.rawValue, forKey: .scheme)
        try c.encode(h.modeSummary, forKey: .mode)
        if let q = h.qemu {
            try c.encode(["held": q.held.sorted().map(\.name), "unshared": q.unshared.sorted().map(\.name)], forKey: .qemu)
        } else {
            try c.encodeNil(forKey: .qemu)
        }
    }

    enum CodingKeys: String, CodingKey { case pid, command, args, user, uid, started, fd, host, openMode, vm, vmUUID = "vm_uuid", diskTarget, scheme, mode, qemu }
}

struct UnseenJSON: Encodable {
    var what: String
    var why: String
}
