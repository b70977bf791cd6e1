import FoundationEssentials
import ImageLock

/// `why IMAGE --host ...`: the holders of the image on every host in view, and which of
/// them stand in the way of the open asked about.
public enum ClusterWhy {
    /// One holder of the image on some host, and whether it blocks the open.
    public struct Seen: Sendable, Equatable {
        public var holder: Holder
        public var blocks: Bool
    }

    /// The holders of the image in the merged snapshot `s`: the image with `storage` (one
    /// file on shared storage, from every host), else the one at `path` on `localHost`
    /// (a local file: the same path on another host is another file).
    public static func holders(in s: Snapshot, storage: String?, path: String, localHost: String?, intent: OpenIntent) -> [Seen] {
        let images = s.images.filter { img in
            if let storage { return img.storage == storage }
            return localHost != nil && PathBytes.same(img.path, path) && img.host == localHost
        }
        return images.flatMap(\.holders).map { Seen(holder: $0, blocks: blocks($0, intent: intent)) }
    }

    /// Whether `h` keeps an open with `intent` from succeeding: QEMU's rule (a permission
    /// one side holds that the other does not share) for QEMU users; any lock for an
    /// exclusive lockfile/gluster/virtlockd lock, a write lock for a shared one.
    public static func blocks(_ h: Holder, intent: OpenIntent) -> Bool {
        if let q = h.qemu {
            let mine = intent.topPermissions
            return !mine.held.isDisjoint(with: q.unshared) || !mine.unshared.isDisjoint(with: q.held)
        }
        return intent.lockMode == .exclusive || h.lockType == .write
    }

    /// The remedy for a Gluster holder proven stale: nobody to stop, the lock to clear.
    public static func staleRemedy(_ h: Holder, image: String, storage: String?) -> String? {
        guard h.liveness?.isProvenStale == true else { return nil }
        let url = GlusterURL.looksLikeURL(image) ? image
            : "gluster://SERVER/" + (storage.map { String($0.dropFirst("gluster:".count)) } ?? "VOLUME/PATH")
        return "nobody holds it any more: `locksmith clear-locks \(url)` on a server node, with --host for the holders' hosts, drops it"
    }

    /// "qemu-io (pid 4711, VM web01)"; a Gluster holder checked on its host and not found
    /// live: "python3 (pid 102; proven stale: host h2 has no process 102)".
    public static func name(_ h: Holder) -> String {
        let stale = h.liveness.flatMap { l in l.reason.map { "; \(l.isProvenStale ? "proven" : "possibly") stale: \($0)" } } ?? ""
        return "\(h.command) (pid \(h.pid)\(h.vm.map { ", VM \($0)" } ?? "")\(stale))"
    }
}

extension StorageIdentity {
    /// The identity of the file `path` names on this host (its real path, and this
    /// process's mountinfo); nil for a local file.
    public static func of(file path: String, procRoot: String = "/proc") -> String? {
        if GlusterURL.looksLikeURL(path) { return of(path: path, device: nil, mounts: []) }
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return of(path: real, device: nil, mounts: ProcFS.read(procRoot + "/self/mountinfo").map { mounts(mountinfo: $0) } ?? [])
    }
}
