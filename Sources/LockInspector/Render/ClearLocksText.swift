import FoundationEssentials
import ImageLock

/// `clear-locks`' text: the review of a path's granted locks (each holder judged on its
/// host, with its statedump records), the refusal, the warning before clearing and the
/// outcome. Another host's text is bounded (`ClusterText`); the printer escapes every line.
public enum ClearLocksText {
    /// No granted lock on this node's bricks (and the bricks elsewhere, not checked).
    public static func nothingGranted(_ url: GlusterURL, bricksNotHere: [String]) -> String {
        var line = "\(url): no granted locks on this node's bricks; nothing to clear"
        if !bricksNotHere.isEmpty {
            line += " (bricks on other nodes not checked: \(bricksNotHere.joined(separator: ", ")))"
        }
        return line
    }

    /// The `granted` locks by holder: a count, then each holder and its records.
    public static func review(_ url: GlusterURL, granted: Int, review: ClearLocksReview) -> [String] {
        let holders = review.holders
        var out = ["\(url): \(granted) granted lock\(granted == 1 ? "" : "s") of \(holders.count) holder\(holders.count == 1 ? "" : "s"):"]
        for h in holders {
            out.append("  \(describe(h))")
            for r in h.records { out.append("    \(describe(r))") }
        }
        return out
    }

    /// Why nothing is cleared without `--force-live`.
    public static func refusal(standing: Int) -> String {
        "Nothing cleared: \(standing) holder\(standing == 1 ? " is" : "s are") not proven stale; "
            + "a live holder would go on as if it still held its lock. Stop it, or pass --force-live."
    }

    /// What clearing will do: the `waiting` requests granted in turn, and whether only dead
    /// locks go (`forced`: some holder is not proven stale).
    public static func beforeClearing(waiting: Int, forced: Bool) -> [String] {
        var out: [String] = []
        if waiting > 0 {
            out.append("  (\(waiting) waiting lock request\(waiting == 1 ? "" : "s") will then be granted in turn)")
        }
        out.append(forced ? "--force-live: the holders are not told; a live holder goes on as if it still held its lock."
                   : "Every holder is proven stale: clearing drops only dead locks.")
        return out
    }

    /// What `gluster volume clear-locks` did.
    public static func result(_ url: GlusterURL, _ r: GlusterClearLocksResult) -> String {
        if r.grantedCleared == 0 {
            return "\(url): no locks cleared (released meanwhile?); gluster said: \(r.output.replacingScalars("\n", with: "; "))"
        }
        return "\(url): cleared \(r.grantedCleared) granted lock\(r.grantedCleared == 1 ? "" : "s")"
    }

    /// `locksmith processes`' line of a process: "4711 S qemu-io user root VM web01 gluster vol".
    public static func line(_ p: HostProcess) -> String {
        let d = p.details
        var line = "\(d.pid) \(p.state) \(d.command) user \(d.user ?? d.uid.map(String.init) ?? "?")"
        if let vm = d.vm { line += " VM \(vm)" }
        let volumes = Array(Set(p.volumesOpen + p.volumesNamed)).sorted()
        if !volumes.isEmpty { line += " gluster \(volumes.joined(separator: ","))" }
        return line
    }

    /// "proven stale: pid 102 on host h2 (python3): host h2 has no process 102".
    public static func describe(_ h: ClearLocksReview.Holder) -> String {
        let who = (h.pid.map { "pid \($0)" } ?? "a process") + (h.host.map { " on host \(ClusterText.line($0))" } ?? "")
            + (h.process.map { p in
                " (" + ([ClusterText.line(p.details.command)] + (p.details.vm.map { ["VM \(ClusterText.line($0))"] } ?? [])
                        + (p.details.user.map { ["user \(ClusterText.line($0))"] } ?? [])).joined(separator: ", ") + ")"
            } ?? "")
        switch h.liveness {
        case .live: return "live: \(who)"
        case .provenStale(let why): return "proven stale: \(who): \(ClusterText.line(why))"
        case .possiblyStale(let why): return "possibly stale: \(who): \(ClusterText.line(why))"
        }
    }

    /// "WRITE lock on bytes 0-EOF: pid 123 on host h1 (lk-owner h1:123, client pid 123, granted at …)".
    public static func describe(_ r: GlusterLockRecord) -> String {
        let end = r.range.end.map(String.init) ?? "EOF"
        var s = "\(r.type.rawValue) lock on bytes \(r.range.start)-\(end): "
        s += r.holderPID.map { "pid \($0)" } ?? "a process"
        if let h = r.host { s += " on host \(h)" }
        var extra: [String] = []
        if let o = r.owner { extra.append("lk-owner \(o)") }
        if let c = r.clientPID, c != r.holderPID { extra.append("client pid \(c)") }
        if let t = r.since { extra.append("\(r.state == .active ? "granted" : "waiting since") \(t)") }
        if !extra.isEmpty { s += " (" + extra.joined(separator: ", ") + ")" }
        return s
    }
}
