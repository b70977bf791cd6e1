import FoundationEssentials
import ImageLock

/// Where a scan looks, as `list`, `audit`, `watch`, `metrics` and the TUI are told (their
/// shared options, as plain values): this host's `InspectorOptions`, and the same request as
/// arguments for another host's `list` in a cluster view (`forwarded`).
public struct ScanRequest: Sendable, Equatable {
    /// Seconds a Gluster server may take at each step, unless told otherwise.
    public static let defaultGlusterTimeout = 5.0

    /// `--lock-dir`; empty: `InspectorOptions.defaultLockDirectories`.
    public var lockDirectories: [String] = []
    /// `--images`.
    public var imageDirectories: [String] = []
    /// `--proc`.
    public var procRoot = "/proc"
    /// `--gluster`: `host[:port]/volume` as given (ones that do not parse are left out).
    public var glusterVolumes: [String] = []
    /// `--gluster-path`: the directory the volumes are walked from.
    public var glusterPath: String?
    /// `--all-files`: probe every regular file of the volumes, not only image names.
    public var allFiles = false
    /// `--timeout`: seconds per step against a Gluster server.
    public var timeout = ScanRequest.defaultGlusterTimeout
    /// `--force`: one brick statedump per `--gluster` volume.
    public var force = false
    /// `--no-statedump`: none, not even `list`'s default one.
    public var noStatedump = false

    public init(lockDirectories: [String] = [], imageDirectories: [String] = [], procRoot: String = "/proc") {
        self.lockDirectories = lockDirectories
        self.imageDirectories = imageDirectories
        self.procRoot = procRoot
    }

    /// The inspector's options; with `statedumpByDefault` (`list`), a statedump is taken
    /// unless `noStatedump`.
    public func inspectorOptions(statedumpByDefault: Bool) -> InspectorOptions {
        let statedump = force || (statedumpByDefault && !noStatedump)
        var o = InspectorOptions(procRoot: procRoot,
                                 lockDirectories: lockDirectories.isEmpty ? InspectorOptions.defaultLockDirectories : lockDirectories,
                                 imageDirectories: imageDirectories)
        let dir = "/" + (glusterPath ?? "").split(separator: "/").joined(separator: "/")
        o.glusterVolumes = glusterVolumes.compactMap { try? GlusterURL(parsingVolume: $0) }.map { v in
            GlusterVolumeScan(volume: v.file(dir), allFiles: allFiles, timeout: timeout, statedump: statedump)
        }
        o.fuseStatedump = statedumpByDefault && !noStatedump
        return o
    }

    /// This request as arguments for another host's `list` (defaults left out).
    public var forwarded: [String] {
        var a: [String] = []
        for d in lockDirectories { a += ["--lock-dir", d] }
        for d in imageDirectories { a += ["--images", d] }
        if procRoot != "/proc" { a += ["--proc", procRoot] }
        for v in glusterVolumes { a += ["--gluster", v] }
        if let p = glusterPath { a += ["--gluster-path", p] }
        if allFiles { a.append("--all-files") }
        if timeout != ScanRequest.defaultGlusterTimeout { a += ["--timeout", "\(timeout)"] }
        if force { a.append("--force") }
        if noStatedump { a.append("--no-statedump") }
        return a
    }

    /// For `why IMAGE --host`: each host's `list` in `lockDirectories`, and for a
    /// `gluster://` image also the image's directory on its volume (`--gluster`, every
    /// file), so that a server node in view names the holders from a brick statedump.
    public static func why(image: String, lockDirectories: [String], timeout: Double) -> ScanRequest {
        var r = ScanRequest(lockDirectories: lockDirectories)
        r.timeout = timeout
        if GlusterURL.looksLikeURL(image), let u = try? GlusterURL(parsing: image) {
            r.glusterVolumes = [u.volumeName]
            r.glusterPath = "/" + u.path.split(separator: "/").dropLast().joined(separator: "/")
            r.allFiles = true
        }
        return r
    }
}
