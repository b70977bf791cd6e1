import FoundationEssentials
import ImageLock

/// The cross-host audit rules of a cluster view: pure functions of the merged snapshot
/// (`ClusterMerge`), where each holder and writer carries its host and each image on shared
/// storage its storage identity. A single host cannot see these hazards: each half of one
/// looks safe where it is.
public enum ClusterRules {
    public static func all(_ s: Snapshot) -> [Finding] {
        AuditRules.sorted(splitLock(s) + crossHostWriters(s))
    }

    /// `split-lock` (critical): two or more hosts each hold one shared image's lock file
    /// exclusively (lockfile scheme, a write lock), each in its own local lock dir: each
    /// believes it is alone.
    public static func splitLock(_ s: Snapshot) -> [Finding] {
        var out: [Finding] = []
        for img in s.images where img.storage != nil {
            let exclusive = img.holders.filter { $0.scheme == .lockfile && $0.lockType == .write && $0.host != nil }
            let hosts = orderedHosts(exclusive.map { $0.host! })
            guard hosts.count >= 2 else { continue }
            let files = s.lockFiles.filter { f in f.held && f.host.map(hosts.contains) == true && img.lockFiles.contains(f.path)
                && (f.image == nil || PathBytes.same(f.image, img.path) || img.path == nil) }
            let perHost = hosts.map { h -> String in
                let who = exclusive.filter { $0.host == h }.map { InvolvedProcess(holder: $0).label }.joined(separator: ", ")
                let lf = files.filter { $0.host == h }.map(\.path)
                return "on \(h) \(who) holds \(lf.isEmpty ? "its lock file" : lf.joined(separator: ", ")) exclusively"
            }
            out.append(Finding(
                rule: .splitLock, severity: .critical, image: img.path ?? img.storage,
                holders: exclusive.map { var p = InvolvedProcess(holder: $0); p.host = $0.host; return p },
                files: files.map { "\($0.host!):\($0.path)" },
                evidence: "one image on shared storage (\(img.storage!)), locked exclusively on \(hosts.count) hosts at once: "
                    + perHost.joined(separator: "; ") + ". Each lock file is in a local lock dir, so each host believes it is alone.",
                remedy: "stop all but one of them now; then lock where every host looks: a --lock-dir on the shared storage "
                    + "(the same on every host) or QEMU's byte locks inside the image (--scheme qemu)"))
        }
        return out
    }

    /// `cross-host-writers` (critical): one shared image open for writing on two or more
    /// hosts, unless every writer shares write (a QEMU user with share-rw=on, whose write
    /// permission is not in its unshared set).
    public static func crossHostWriters(_ s: Snapshot) -> [Finding] {
        // A writer's QEMU permissions, when it is also a QEMU holder of the image.
        var qemu: [String: QemuPermissions] = [:]
        for img in s.images where img.storage != nil {
            for h in img.holders { if let q = h.qemu, let host = h.host { qemu["\(img.storage!)\u{0}\(host)\u{0}\(h.pid)"] = q } }
        }
        var groups: [String: [ImageWriter]] = [:]
        var order: [String] = []
        for w in s.writers where w.storage != nil && w.host != nil {
            if groups[w.storage!] == nil { order.append(w.storage!) }
            if !(groups[w.storage!] ?? []).contains(where: { $0.host == w.host && $0.pid == w.pid }) {
                groups[w.storage!, default: []].append(w)
            }
        }
        var out: [Finding] = []
        for storage in order {
            let writers = groups[storage]!
            let hosts = orderedHosts(writers.map { $0.host! })
            guard hosts.count >= 2 else { continue }
            let sharing = writers.allSatisfy { w in
                qemu["\(storage)\u{0}\(w.host!)\u{0}\(w.pid)"].map { !$0.unshared.contains(.write) } ?? false
            }
            if sharing { continue }
            let perHost = hosts.map { h in
                "on \(h) " + writers.filter { $0.host == h }.map { InvolvedProcess(writer: $0).label }.joined(separator: ", ")
            }
            let image = s.images.first { $0.storage == storage }?.path ?? writers[0].path
            out.append(Finding(
                rule: .crossHostWriters, severity: .critical, image: image,
                holders: writers.map { var p = InvolvedProcess(writer: $0); p.host = $0.host; return p },
                files: [],
                evidence: "one image on shared storage (\(storage)) is open for writing on \(hosts.count) hosts: "
                    + perHost.joined(separator: "; ") + "; not every writer shares write (share-rw=on), so the image can be corrupted.",
                remedy: "stop the writers on all but one host (or, for a shared disk meant to be, open it with share-rw=on "
                    + "everywhere and a cluster filesystem inside)"))
        }
        return out
    }

    static func orderedHosts(_ hosts: [String]) -> [String] {
        var out: [String] = []
        for h in hosts where !out.contains(h) { out.append(h) }
        return out
    }
}
