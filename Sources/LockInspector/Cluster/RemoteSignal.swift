import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// `K` on a holder of another host: that host's own locksmith signals it (`locksmith signal`,
/// run over the cluster view's ssh), with the checks of a local `K` (`HolderSignal`: start
/// time and lock, before and after `pidfd_open`) made there, on a scan of its own. The
/// holder is named by what the view saw of it: pid, start time (whole seconds, as JSON
/// carries it), scheme, fd and image; the remote side signals only a holder of its fresh
/// scan that matches all of them.
public enum RemoteSignal {
    /// The signals `K` and `locksmith signal` send, by name.
    public static let signals: [String: Int32] = ["TERM": SIGTERM, "INT": SIGINT, "HUP": SIGHUP, "KILL": SIGKILL]

    /// `signal ...` words for the remote locksmith; nil when the holder cannot be named
    /// exactly enough (no pid, no start time, no image path).
    public static func words(for h: Holder, image: String, signal: String = "TERM") -> [String]? {
        guard h.pid > 0, let started = h.started, !image.isEmpty else { return nil }
        var w = ["signal", "--signal", signal, "--pid", "\(h.pid)", "--started", SnapshotJSON.iso8601(started),
                 "--scheme", h.scheme.rawValue]
        if let fd = h.fd { w += ["--fd", "\(fd)"] }
        return w + ["--", image]
    }

    /// The holder of `snapshot` (this host's fresh scan) that matches what the asking view
    /// saw, or why none does (the rest of a sentence after "pid N").
    public static func find(pid: Int32, started: String, scheme: LockScheme, fd: Int32?, image: String,
                            in snapshot: Snapshot) -> Result<Holder, Refusal> {
        let images = snapshot.images.filter { PathBytes.same($0.path, image) || PathBytes.same($0.id, image) }
        guard !images.isEmpty else { return .failure(Refusal("holds no lock on \(image) here any more")) }
        let mine = images.flatMap(\.holders).filter { $0.pid == pid && $0.scheme == scheme && (fd == nil || $0.fd == fd) }
        guard let h = mine.first else { return .failure(Refusal("holds no \(scheme.rawValue) lock on \(image) here any more")) }
        guard let s = h.started, SnapshotJSON.iso8601(s) == started else {
            return .failure(Refusal("has ended: the pid now names another process (started \(h.started.map(SnapshotJSON.iso8601) ?? "?"), not \(started))"))
        }
        return .success(h)
    }

    public struct Refusal: Error, Equatable {
        public var why: String
        public init(_ why: String) { self.why = why }
    }

    /// This host's side: the matching holder of `snapshot`, signalled through `HolderSignal`.
    public static func send(_ signal: Int32, named name: String, pid: Int32, started: String, scheme: LockScheme, fd: Int32?,
                            image: String, in snapshot: Snapshot) -> HolderSignal.Outcome {
        switch find(pid: pid, started: started, scheme: scheme, fd: fd, image: image, in: snapshot) {
        case .failure(let r): return .refused("Not signalled: pid \(pid) \(r.why).")
        case .success(let h): return HolderSignal.send(signal, named: name, to: h)
        }
    }

    /// `locksmith signal`: the same on a fresh scan of this host as `scan` asks (its lock
    /// and image dirs); throws when the scan cannot be made.
    public static func send(_ signal: Int32, named name: String, pid: Int32, started: String, scheme: LockScheme, fd: Int32?,
                            image: String, scanning scan: ScanRequest) throws -> HolderSignal.Outcome {
        let snapshot = try Inspector(scan.inspectorOptions(statedumpByDefault: false)).snapshot()
        return send(signal, named: name, pid: pid, started: started, scheme: scheme, fd: fd, image: image, in: snapshot)
    }

    /// The asking side: runs `REMOTE signal ...` on `destination` (the host's name in the
    /// view) and returns its one line, prefixed with the host; a failure to ask is a
    /// "Not signalled" line too. The remote text is bounded (`ClusterText`); the printer escapes it.
    public static func ask(_ query: ClusterQuery, destination: String, host: String, holder: Holder, image: String,
                           extra: [String] = []) -> String {
        guard let w = words(for: holder, image: image) else {
            return "Not signalled: pid \(holder.pid) on \(host) was seen without its start time or image: it cannot be named exactly."
        }
        // Scan options (lock dirs, gluster volumes) go before the `--`.
        let words = Array(w.dropLast(2)) + extra + Array(w.suffix(2))
        switch ClusterScan.run(query, destination, words: words) {
        case .failure(let f): return "Not signalled: pid \(holder.pid) on \(host): \(f.description)."
        case .success(let (bytes, status, said)):
            let line = ClusterText.lastLine(bytes)
            if status == 0 || status == 1, !line.isEmpty { return "\(host): \(line)" }
            return "Not signalled: pid \(holder.pid) on \(host): locksmith signal failed (exit \(status))" + (said.isEmpty ? "." : ": \(said)")
        }
    }
}

extension RemoteSignal {
    /// The TUI's K on a holder of another host: `locksmith signal` there, over the view's
    /// ssh, with the view's lock and image dirs; the holder's host named as the view
    /// labelled it (`directory`); this host's holders through a pidfd here. The outcome in
    /// one line.
    public static func terminator(_ query: ClusterQuery, scan: ScanRequest,
                                  directory: HostDirectory) -> @Sendable (Holder, String) -> String {
        let extra = scan.lockDirectories.flatMap { ["--lock-dir", $0] } + scan.imageDirectories.flatMap { ["--images", $0] }
        return { holder, image in
            let host = holder.host ?? "?"
            guard let dest = directory.destination(host) else {
                return "Not signalled: pid \(holder.pid): host \(ClusterText.line(host)) is not in view."
            }
            guard image.hasPrefix("/") || GlusterURL.looksLikeURL(image) else {
                return "Not signalled: pid \(holder.pid) on \(ClusterText.line(host)): the image of this lock is unknown."
            }
            if dest == "." { return HolderSignal.send(SIGTERM, named: "SIGTERM", to: holder).line }
            guard holder.scheme != .gluster else {
                return "Not signalled: pid \(holder.pid) on \(ClusterText.line(host)) holds a Gluster lock named by a statedump: stop it there."
            }
            return RemoteSignal.ask(query, destination: dest, host: ClusterText.line(host), holder: holder, image: image, extra: extra)
        }
    }
}
