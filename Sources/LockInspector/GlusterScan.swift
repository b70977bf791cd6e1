import Dispatch
import FoundationEssentials
import ImageLock

/// A Gluster volume for the inspector to scan (`list --gluster HOST[:PORT]/VOLUME`).
public struct GlusterVolumeScan: Sendable, Equatable {
    /// The volume; its `path` is the directory the walk starts from (`--gluster-path`, default `/`).
    public var volume: GlusterURL
    /// Probe every regular file, not only those named like images (`--all-files`).
    public var allFiles: Bool
    /// Seconds each step against the server may take (connect, read a directory, open, F_GETLK).
    public var timeout: Double
    /// Take one brick statedump of the volume when something is locked (`--force`): it names
    /// every holder with its host, also holders that are not locksmith (FUSE mounts). Needs
    /// the gluster CLI and a glusterd on this node (a server of the volume).
    public var statedump: Bool
    /// glusterd's CLI socket for the statedump; nil = $GLUSTER_SOCK, else glusterd's default.
    public var glusterdSocket: String?

    public init(volume: GlusterURL, allFiles: Bool = false, timeout: Double = 5, statedump: Bool = false,
                glusterdSocket: String? = GlusterCLI.socketFromEnvironment) {
        self.volume = volume
        self.allFiles = allFiles
        self.timeout = timeout
        self.statedump = statedump
        self.glusterdSocket = glusterdSocket
    }
}

/// Scans Gluster volumes for locked images: a directory walk through libgfapi, F_GETLK on
/// each image file through the core's probe (`ImageLocker.probe`), and with `statedump` one
/// brick statedump per volume to name every holder's host. Locked images join the snapshot
/// as `ImageLocks` with scheme `gluster`, `path` = the file's gluster:// URL.
///
/// What F_GETLK tells (api/src/glfs.h; docs/ARCHITECTURE.md, "Facts"): one conflicting lock, its type and range, and the l_pid
/// its holder put in its request (locksmith: its pid; a FUSE mount: the locking process's
/// pid); never the host. Only a statedump gives the host and every holder.
public enum GlusterScan {
    /// Names probed without `--all-files` (by suffix, case-insensitive).
    public static let imageSuffixes = ["qcow2", "raw", "img", "iso", "vmdk", "vdi", "vhd", "vhdx", "qed"]

    /// Whether a file name looks like a disk image.
    public static func isImageName(_ path: String) -> Bool {
        guard let dot = path.lastIndex(of: "."), !path[path.index(after: dot)...].contains("/") else { return false }
        return imageSuffixes.contains(path[path.index(after: dot)...].lowercased())
    }

    static let notScanned = " (not scanned)"

    /// The volumes that could not be scanned at all (no glusterd, no such volume, no answer
    /// in time, a --gluster-path that does not exist): one line each, also in `unseen`.
    public static func failedVolumes(in snapshot: Snapshot) -> [Unseen] {
        snapshot.unseen.filter { $0.what.hasPrefix("gluster volume ") && $0.what.hasSuffix(notScanned) }
    }

    /// Scans on threads of their own (one per volume) while the caller does its local scan.
    static func start(_ volumes: [GlusterVolumeScan], procRoot: String) -> Pending? {
        volumes.isEmpty ? nil : Pending(volumes, procRoot: procRoot)
    }

    /// A scan in progress; `finish` waits for it and adds its images and unseen to a snapshot.
    final class Pending: @unchecked Sendable {
        private let group = DispatchGroup()
        private var results: [(images: [ImageLocks], unseen: [Unseen])]

        init(_ volumes: [GlusterVolumeScan], procRoot: String) {
            results = Array(repeating: ([], []), count: volumes.count)
            let host = Sys.hostName
            for (i, v) in volumes.enumerated() {
                group.enter()
                Sys.startThread(stackSize: 1 << 20) { [self] in
                    let r = GlusterScan.scan(v, localHost: host, procRoot: procRoot)
                    results[i] = r
                    group.leave()
                }
            }
        }

        func finish(into snapshot: inout Snapshot) {
            group.wait()
            for r in results {
                snapshot.images += r.images
                snapshot.unseen += r.unseen
            }
        }
    }

    /// One volume: walk, probe, name. Never throws: what fails goes to `unseen`.
    public static func scan(_ v: GlusterVolumeScan, localHost: String, procRoot: String = "/proc")
        -> (images: [ImageLocks], unseen: [Unseen]) {
        let locker = ImageLocker(glusterTimeout: v.timeout)
        let name = v.volume.volumeName + (v.volume.path == "/" ? "" : " path \(v.volume.path)")
        var unseen: [Unseen] = []
        let listing: GlusterFileListing
        do {
            listing = try locker.listGlusterFiles(v.volume)
        } catch {
            return ([], [Unseen(what: "gluster volume \(name)\(notScanned)", why: "\(error)")])
        }
        for p in listing.problems {
            unseen.append(Unseen(what: "directory \(p.path) of gluster volume \(v.volume.volumeName)", why: p.reason))
        }
        if listing.truncated {
            unseen.append(Unseen(what: "files of gluster volume \(name) beyond the first \(listing.files.count)",
                                 why: "the walk stops there; name a directory with --gluster-path"))
        }

        // F_GETLK for a write lock finds any lock; when it finds a read lock, F_GETLK for a
        // read lock tells whether a write lock sits elsewhere on the file too.
        var locked: [(url: GlusterURL, holders: [GlusterLockHolder])] = []
        var grants: [PathKey: Date] = [:]  // "path host pid" (by bytes) -> when the brick granted its first lock there
        let files = listing.files.filter { v.allFiles || isImageName($0) }
        for (i, path) in files.enumerated() {
            let url = v.volume.file(path)
            do {
                guard let c = try locker.probe(url.description, scheme: .gluster, mode: .exclusive).contention else { continue }
                var holders = c.glusterHolders
                if holders.allSatisfy({ $0.type == .read }),
                   let w = try locker.probe(url.description, scheme: .gluster, mode: .shared).contention {
                    holders += w.glusterHolders.filter { !holders.contains($0) }
                }
                locked.append((url, holders))
            } catch ImageLockError.imageMissing, ImageLockError.notAnImage {
                continue  // removed or replaced since the directory was read
            } catch let e as ImageLockError {
                switch e {
                case .glusterTimedOut, .glusterUnreachable:
                    // The server stopped answering: the rest would only wait as long each.
                    unseen.append(Unseen(what: "\(files.count - i) file(s) of gluster volume \(name) from \(path) on",
                                         why: "\(e)"))
                    return (images(locked, localHost: localHost, procRoot: procRoot, grants: grants), unseen)
                default:
                    unseen.append(Unseen(what: url.description, why: "\(e)"))
                }
            } catch {
                unseen.append(Unseen(what: url.description, why: "\(error)"))
            }
        }

        if v.statedump && !locked.isEmpty {
            let cli = GlusterCLI(glusterdSocket: v.glusterdSocket, timeout: max(30, v.timeout))
            if !cli.isUsable {
                unseen.append(Unseen(what: "hosts of the holders on gluster volume \(v.volume.volumeName)",
                                     why: "naming them needs a brick statedump: the gluster CLI and a glusterd on this node (a server of the volume)"))
            } else {
                do {
                    let dump = try cli.statedump(volume: v.volume.volume)
                    for r in dump.records where r.state == .active {
                        guard let t = r.since.flatMap(GlusterStaleness.grantTime) else { continue }
                        let k = grantKey(r.path, r.host, r.holderPID)
                        grants[k] = min(grants[k] ?? t, t)
                    }
                    for i in locked.indices {
                        let named = GlusterLockHolder.conflicting(in: dump.records, path: locked[i].url.path, type: .write)
                        if !named.isEmpty { locked[i].holders = named }
                    }
                    if !dump.bricksNotHere.isEmpty {
                        unseen.append(Unseen(what: "locks on bricks of gluster volume \(v.volume.volumeName) on other nodes",
                                             why: "the statedump covers this node's bricks only: \(dump.bricksNotHere.joined(separator: ", "))"))
                    }
                } catch {
                    unseen.append(Unseen(what: "hosts of the holders on gluster volume \(v.volume.volumeName)",
                                         why: "statedump failed: \(error)"))
                }
            }
        }
        return (images(locked, localHost: localHost, procRoot: procRoot, grants: grants), unseen)
    }

    static func grantKey(_ path: String, _ host: String?, _ pid: Int32?) -> PathKey {
        PathKey("\(path)\u{0}\(host ?? "")\u{0}\(pid ?? 0)")
    }

    /// The snapshot entries of the locked files. A holder on this host (its host is this
    /// host's name) is a local process: its command, user and start come from /proc.
    static func images(_ locked: [(url: GlusterURL, holders: [GlusterLockHolder])], localHost: String,
                       procRoot: String, grants: [PathKey: Date] = [:]) -> [ImageLocks] {
        let local = GlusterHolderNaming.localDetails(locked.flatMap(\.holders), localHost: localHost, procRoot: procRoot)
        return locked.map { file in
            let holders = file.holders.map { g -> Holder in
                var h = Holder(pid: g.pid ?? 0, command: "?", scheme: .gluster, lockType: g.type, host: g.host)
                if g.source == .statedump {
                    h.statedump = StatedumpNaming(clientPID: g.clientPID, locksmithOwner: g.owner?.locksmithHolder != nil,
                                                  granted: grants[grantKey(file.url.path, g.host, g.pid)])
                }
                if g.host == localHost, let d = g.pid.flatMap({ local[$0] }) {
                    h.command = d.command
                    h.args = d.args
                    h.user = d.user
                    h.uid = d.uid
                    h.started = d.started
                    h.startTicks = d.startTicks
                    h.vm = d.vm
                }
                return h
            }
            .sorted { ($0.host ?? "", $0.pid) < ($1.host ?? "", $1.pid) }
            let id = file.url.description
            return ImageLocks(id: id, path: id, schemes: [.gluster], holders: holders)
        }
    }
}
