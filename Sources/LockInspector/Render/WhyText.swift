import FoundationEssentials
import ImageLock

/// `why`'s verdict as text lines: the command prints them (escaped by its `say`), the TUI shows them.
public enum WhyText {

    public static func lines(_ v: Verdict) -> [String] {
        var out: [String] = []
        let how = v.intent == .write ? "read-write" : "read-only"
        switch v.outcome {
        case .opens:
            out.append("\(v.image): opens \(how)" + (v.proven ? " (proven)" : ""))
        case .fails:
            let n = v.blockers.count
            let by = n == 0 ? "" : " — blocked by " + (n == 1 ? name(v.blockers[0]) : "\(n) holders")
            out.append("\(v.image): won't open \(how)\(by)")
        case .unknown:
            out.append("\(v.image): can't tell whether it opens \(how)")
        }
        if let m = v.qemuMessage {
            out.append("  QEMU says: \(m)")
            if let h = v.qemuHint { out.append("             \(h)") }
        }
        for r in v.reasons {
            out.append("  \(r.blocks ? "reason" : "unknown"): \(r.message)")
            out.append("          remedy: \(r.remedy)")
        }
        for b in v.blockers {
            out.append("  blocker: \(describe(b))")
            out.append("           remedy: \(b.remedy)")
        }
        for w in v.waiters {
            let who = w.pid.map { "pid \($0) (\(w.command ?? "?"))" } ?? "an OFD lock request (pid not shown by the kernel)"
            let since = w.started.map { ", running since \(stamp($0))" } ?? ""
            out.append("  waiting: \(who) queued for a \(w.lockType?.lowercased() ?? "") lock on \(w.waitsOn)\(since)")
        }
        if v.chain.count > 1 {
            out.append("  chain:")
            for (i, c) in v.chain.enumerated() {
                var line = "    \(String(repeating: "  ", count: i))\(i == 0 ? "" : "└ ")\(c.path) (\(c.exists ? c.format : "missing"))"
                if !c.opened { line += " [not opened by this open]" }
                let hs = c.holders.map { h in
                    "\(h.lock) by pid \(h.pid) (\(h.vm.map { "VM \($0)" } ?? h.command))" + (h.via.map { " via \($0)" } ?? "")
                }
                if !hs.isEmpty { line += " — held " + hs.joined(separator: ", ") }
                if let p = c.problem { line += " — \(p)" }
                out.append(line)
            }
        }
        for f in v.facts {
            out.append("  \(f.proven ? "proven" : "inferred"): \(f.statement)")
        }
        return out
    }

    /// `why --host`'s lines after the verdict's: the hosts in view, then the image's holders
    /// on each (`ClusterWhy.holders`), each blocker with a remedy on its host.
    public static func clusterLines(image: String, hosts: [ClusterHost], seen: [ClusterWhy.Seen], storage: String?) -> [String] {
        var out: [String] = []
        let failed = hosts.filter { !$0.reached }
        let reached = hosts.filter(\.reached).map(\.label)
        let ssh = Dictionary(hosts.map { ($0.label, $0.name) }, uniquingKeysWith: { a, _ in a })
        out.append("  cluster: \(hosts.count) host\(hosts.count == 1 ? "" : "s") in view (\(ClusterText.line(reached.joined(separator: ", "))))"
                   + (failed.isEmpty ? "" : "; not seen: " + ClusterText.line(failed.map(\.name).joined(separator: ", ")))
                   + (storage.map { "; shared storage \($0)" } ?? "; a local file: only this host's holders count"))
        // Another host's names are its own (hostile) text: bounded here, escaped by the printer.
        for s in seen {
            var h = s.holder
            h.command = ClusterText.line(h.command)
            h.vm = h.vm.map(ClusterText.line)
            let host = ClusterText.line(h.host ?? "?")
            let dest = ClusterText.line(ssh[h.host ?? "?"] ?? host)
            if s.blocks {
                out.append("  blocked by \(ClusterWhy.name(h)) on \(host) (\(h.scheme.rawValue), \(h.modeSummary))")
                if let r = ClusterWhy.staleRemedy(h, image: image, storage: storage) {
                    out.append("          remedy: \(r)")
                    continue
                }
                out.append("          remedy: on \(host): " + (h.vm.map { "shut down VM \($0) or detach the disk" } ?? "stop \(h.command) (pid \(h.pid)) when it is done")
                           + (dest == "." ? "" : "; `ssh \(dest) locksmith why \(image)` there"))
            } else {
                out.append("  also held by \(ClusterWhy.name(h)) on \(host) (\(h.scheme.rawValue), \(h.modeSummary)): does not block this open")
            }
        }
        if seen.isEmpty { out.append("  no holder on any host in view") }
        return out
    }

    private static func name(_ b: Blocker) -> String {
        guard let pid = b.pid else { return "an unseen holder" }
        if let vm = b.vm { return "VM \(vm) (pid \(pid))" }
        if b.command == nil && (b.scheme == .gluster || b.host != nil) { return "pid \(pid)" + (b.host.map { " on host \($0)" } ?? "") }
        return "\(b.command ?? "?") (pid \(pid))" + (b.host.map { " on host \($0)" } ?? "")
    }

    private static func describe(_ b: Blocker) -> String {
        var parts: [String] = []
        if let pid = b.pid {
            parts.append("pid \(pid)" + (b.command.map { " \($0)" } ?? (b.scheme == .gluster || b.host != nil ? "" : " ?"))
                         + (b.host.map { " on host \($0)" } ?? ""))
            if let vm = b.vm { parts.append("VM \(vm)") }
            if let u = b.user { parts.append("user \(u)") }
            if let s = b.started { parts.append("since \(stamp(s))") }
            if let m = b.openMode { parts.append("open \(m.rawValue)" + (b.fd.map { " (fd \($0))" } ?? "")) }
        } else {
            parts.append("holder not visible")
        }
        parts.append("\(b.scheme.rawValue) scheme, holds \(b.lock) on \(b.holds)" + (b.via.map { " via overlay \($0)" } ?? ""))
        let what = b.scheme == .qemu ? "conflicting permissions" : "conflicting lock"
        parts.append("\(what): \(b.conflict.joined(separator: ", "))")
        if b.proven { parts.append("proven") }
        return parts.joined(separator: "; ")
    }

    private static func stamp(_ d: Date) -> String {
        d.formatted(.iso8601)
    }
}
