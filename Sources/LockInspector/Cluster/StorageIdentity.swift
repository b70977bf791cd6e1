import FoundationEssentials
import ImageLock

/// Which file on shared storage an image is, in words every host that mounts the storage
/// agrees on: what lets the cluster view see one image where several hosts see one file,
/// and two where two hosts each have a local file of the same path.
///
/// - A GlusterFS file: `gluster:VOLUME/PATH`, the same for a FUSE mount (`fuse.glusterfs`,
///   volume and subdirectory from the mount's source) and for `gluster://HOST/VOLUME/PATH`.
/// - A file on another shared filesystem (`SharedFilesystem`: NFS, CephFS, SMB, GFS2,
///   OCFS2, other FUSE): `FSTYPE:SOURCE:PATH`, the mount's source as mountinfo shows it
///   (proc(5)) and the file's path from the root of that source.
/// - A local file: none.
///
/// Only mountinfo and the path are read (no stat of the file: a hung server would stall
/// it); the mount is the device's when the scan knows the device, else the deepest mount
/// point the path lies under.
public enum StorageIdentity {
    /// A mount, from one line of mountinfo.
    public struct Mount: Sendable, Equatable {
        public var device: DeviceID
        /// Field 4: the directory of the filesystem mounted here.
        public var root: String
        public var mountPoint: String
        public var fstype: String
        public var source: String
        public var isShared: Bool { SharedFilesystem.of(fstype: fstype) != nil }
    }

    /// Every mount of the text of a mountinfo, in its order (octal escapes decoded).
    public static func mounts(mountinfo: String) -> [Mount] {
        ServerLocks.mountinfoLines(mountinfo).compactMap { m in
            guard m.dash + 2 < m.fields.count else { return nil }
            return Mount(device: m.device, root: ServerLocks.unescape(m.fields[3]), mountPoint: ServerLocks.unescape(m.fields[4]),
                         fstype: String(m.fields[m.dash + 1]), source: ServerLocks.unescape(m.fields[m.dash + 2]))
        }
    }

    /// The identity of the file at `path` (its device as a scan saw it, when known), or nil
    /// when it is on no shared filesystem of `mounts`.
    public static func of(path: String?, device: DeviceID?, mounts: [Mount]) -> String? {
        if let path, GlusterURL.looksLikeURL(path), let u = try? GlusterURL(parsing: path) {
            return "gluster:\(u.volume)\(u.path.hasPrefix("/") ? "" : "/")\(u.path)"
        }
        guard let path, path.hasPrefix("/") else { return nil }
        func under(_ m: Mount) -> Bool { m.mountPoint == "/" || path.hasPrefix(m.mountPoint + "/") }
        // The deepest (last, on ties: the one mounted over the others) mount the path lies under.
        let candidates = mounts.filter { under($0) && (device == nil || $0.device == device) }
        guard let m = candidates.reversed().max(by: { $0.mountPoint.count < $1.mountPoint.count }), m.isShared else { return nil }
        if m.fstype == "fuse.glusterfs",
           let loc = ServerLocks.glusterLocation(path: path, mountPoint: m.mountPoint, source: m.source) {
            return "gluster:\(loc.volume)\(loc.path)"
        }
        let rel = m.mountPoint == "/" ? path : String(path.dropFirst(m.mountPoint.count))
        return "\(m.fstype):\(m.source):\(m.root == "/" ? "" : m.root)\(rel)"
    }

    /// Sets `storage` on every image and writer of `s` from this host's mountinfo.
    public static func annotate(_ s: inout Snapshot, mountinfo: String?) {
        let mounts = mountinfo.map { Self.mounts(mountinfo: $0) } ?? []
        // A host with no shared filesystem mounted (most): only gluster:// names have one,
        // and no image pays a pass over the mounts.
        let noShared = !mounts.contains(where: \.isShared)
        for i in s.images.indices {
            if noShared && !(s.images[i].path.map(GlusterURL.looksLikeURL) ?? false) {
                s.images[i].storage = nil
                continue
            }
            s.images[i].storage = of(path: s.images[i].path, device: s.images[i].device, mounts: mounts)
        }
        for i in s.writers.indices {
            if noShared && !GlusterURL.looksLikeURL(s.writers[i].path) {
                s.writers[i].storage = nil
                continue
            }
            s.writers[i].storage = of(path: s.writers[i].path, device: s.writers[i].device, mounts: mounts)
        }
    }

    /// The same, from `PROCROOT/self/mountinfo` (the mounts this process sees).
    public static func annotate(_ s: inout Snapshot, procRoot: String) {
        annotate(&s, mountinfo: ProcFS.read(procRoot + "/self/mountinfo"))
    }
}
