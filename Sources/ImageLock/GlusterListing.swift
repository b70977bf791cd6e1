#if canImport(Glibc)
import Glibc
#endif

/// The regular files found under a directory of a Gluster volume (`ImageLocker.listGlusterFiles`).
public struct GlusterFileListing: Sendable, Equatable {
    /// Paths inside the volume (`/vms/vm1.qcow2`), sorted.
    public var files: [String]
    /// Directories that could not be read, and why (one line each).
    public var problems: [GlusterListingProblem]
    /// True when the walk stopped at its file limit; `files` is then incomplete.
    public var truncated: Bool

    public init(files: [String], problems: [GlusterListingProblem] = [], truncated: Bool = false) {
        self.files = files
        self.problems = problems
        self.truncated = truncated
    }
}

public struct GlusterListingProblem: Sendable, Equatable {
    public var path: String
    public var reason: String
}

extension ImageLocker {
    /// Lists the regular files under `volume.path` on the volume through libgfapi, at most
    /// `maxDepth` directories deep and at most `maxFiles` files. Hidden directories (a
    /// volume's `.trashcan`, `.shard`...) are skipped, so are symbolic links and anything
    /// that is not a regular file.
    ///
    /// Each directory is one step bounded by the locker's gluster timeout; the connection is
    /// this process's shared probing client (the same one `probe` uses), so `glfs_fini`
    /// never runs on this path. A server that cannot be reached, or a directory read that
    /// does not finish in time, is thrown (`glusterUnreachable`, `glusterTimedOut`); an
    /// unreadable subdirectory is a `problem`. A `volume.path` that is a file lists itself.
    public func listGlusterFiles(_ volume: GlusterURL, maxDepth: Int = 8, maxFiles: Int = 100_000) throws -> GlusterFileListing {
        try ImageLocker.requireGlusterSupport(volume)
        #if Gluster
        let client = try GlusterLocks.sharedClient(volume) { try connect(volume) }
        var listing = GlusterFileListing(files: [])
        var queue: [(path: String, depth: Int)] = [(volume.path, 0)]
        var count = 0
        while !queue.isEmpty {
            let (dir, depth) = queue.removeFirst()
            let limit = maxFiles - count + 1
            let read: Result<[(name: String, kind: FileKind)], Errno>
            do {
                read = try step("read directory \(dir) of", volume.file(dir), { client.entries(of: dir, limit: limit) },
                                abandoned: { _ in })
            } catch {
                GlusterLocks.forget(client)
                throw error
            }
            switch read {
            case .failure(let e) where dir == volume.path && e.code == ENOTDIR:
                return GlusterFileListing(files: [volume.path])
            case .failure(let e) where dir == volume.path && e.code == ENOENT:
                throw ImageLockError.system(operation: "read directory", path: volume.description, errno: ENOENT)
            case .failure(let e):
                if e.code == ENOTCONN || e.code == EIO { GlusterLocks.forget(client) }
                listing.problems.append(GlusterListingProblem(path: dir, reason: ImageLockError.text(e.code)))
            case .success(let entries):
                for e in entries.sorted(by: { $0.name < $1.name }) {
                    let path = (dir == "/" ? "" : dir) + "/" + e.name
                    switch e.kind {
                    case .regular:
                        guard count < maxFiles else {
                            listing.truncated = true
                            continue
                        }
                        count += 1
                        listing.files.append(path)
                    case .directory where depth + 1 < maxDepth && !e.name.hasPrefix("."):
                        queue.append((path, depth + 1))
                    default:
                        break
                    }
                }
            }
            if listing.truncated { break }
        }
        listing.files.sort()
        return listing
        #else
        return GlusterFileListing(files: [])
        #endif
    }
}
