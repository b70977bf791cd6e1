import FoundationEssentials
import ImageLock

/// The hosts' snapshots as one: every holder, waiter, lock file, writer and finding carries
/// its host; an image on shared storage (`ImageLocks.storage`) seen from several hosts is
/// one image with the holders of each, while images on local filesystems stay one per host
/// even when their paths are equal.
public enum ClusterMerge {
    public static func merge(_ answers: ClusterAnswers, host: String, generated: Date = Date()) -> AuditedSnapshot {
        var images: [ImageLocks] = []
        var byKey: [PathKey: Int] = [:]  // its paths compared by bytes
        var hostsOf: [[String]] = []
        var out = Snapshot(host: host, generated: generated, images: [], lockFiles: [], unseen: [])
        var findings: [Finding] = []
        for (h, answer) in zip(answers.hosts, answers.snapshots) {
            guard let s = answer?.snapshot, let found = answer?.findings else { continue }
            let label = h.label
            for var img in s.images {
                // A gluster holder without a host was found by F_GETLK through libgfapi, which
                // tells a pid but never the host (docs/ARCHITECTURE.md, "Facts"): not this host's.
                for i in img.holders.indices where img.holders[i].host == nil && img.holders[i].scheme != .gluster {
                    img.holders[i].host = label
                }
                for i in img.waiters.indices where img.waiters[i].host == nil { img.waiters[i].host = label }
                let key = PathKey(img.storage.map { "storage\u{0}" + $0 } ?? "host\u{0}\(label)\u{0}\(img.id)")
                if let at = byKey[key] {
                    absorb(&images[at], img, from: label)
                    if !hostsOf[at].contains(label) { hostsOf[at].append(label) }
                } else {
                    byKey[key] = images.count
                    img.host = label
                    // Holders another host named (a brick statedump) give way to their own host's entry.
                    var mine = img
                    (mine.holders, mine.waiters, mine.locks) = ([], [], [])
                    absorb(&mine, img, from: label)
                    images.append(mine)
                    hostsOf.append([label])
                }
            }
            out.lockFiles += s.lockFiles.map { var f = $0; f.host = label; return f }
            out.unseen += s.unseen.map { Unseen(what: "\(label): \($0.what)", why: $0.why) }
            out.writers += s.writers.map { var w = $0; w.host = label; return w }
            findings += found.map { f in
                var f = f
                f.host = label
                for i in f.holders.indices { f.holders[i].host = label }
                return f
            }
            out.serverLocks += s.serverLocks
        }
        for i in images.indices {
            images[i].host = hostsOf[i].count == 1 ? hostsOf[i][0] : nil
            // Where a statedump named the gluster holders' hosts, F_GETLK's host-less ones repeat them.
            if images[i].holders.contains(where: { $0.scheme == .gluster && $0.host != nil }) {
                images[i].holders.removeAll { $0.scheme == .gluster && $0.host == nil }
            }
        }
        // Known paths sorted, then by host; unknown images last (as a one-host scan orders them).
        out.images = images.sorted { a, b in
            switch (a.path, b.path) {
            case (let x?, let y?): return x != y ? x < y : (a.host ?? "") < (b.host ?? "")
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return a.id < b.id
            }
        }
        return AuditedSnapshot(out, findings: AuditRules.sorted(findings))
    }

    /// Folds another host's view of the same shared image into `img`: its holders and
    /// waiters, lock files, kernel rows and schemes. A holder is one per host, pid, scheme and
    /// fd; one that `reporter` names on another host (from a brick statedump, without its
    /// fd) is the same as that host's own entry of the pid and scheme, which wins.
    static func absorb(_ img: inout ImageLocks, _ other: ImageLocks, from reporter: String) {
        func key(_ h: Holder) -> String { "\(h.host ?? "")/\(h.pid)/\(h.scheme.rawValue)/\(h.fd ?? -1)" }
        func person(_ h: Holder) -> String { "\(h.host ?? "")/\(h.pid)/\(h.scheme.rawValue)" }
        func add(_ list: inout [Holder], _ more: [Holder]) {
            for h in more {
                let foreign = h.host != nil && h.host != reporter
                if foreign, list.contains(where: { person($0) == person(h) }) { continue }
                if !foreign, let at = list.firstIndex(where: { person($0) == person(h) && ($0.command == "?" || $0.fd == nil) }) {
                    list[at] = h
                    continue
                }
                if list.contains(where: { key($0) == key(h) }) { continue }
                list.append(h)
            }
        }
        add(&img.holders, other.holders)
        add(&img.waiters, other.waiters)
        for f in other.lockFiles where !img.lockFiles.contains(f) { img.lockFiles.append(f) }
        img.locks += other.locks
        for s in other.schemes where !img.schemes.contains(s) { img.schemes.append(s) }
        img.schemes.sort { LockScheme.allCases.firstIndex(of: $0)! < LockScheme.allCases.firstIndex(of: $1)! }
    }
}
