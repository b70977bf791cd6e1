import ImageLock

/// `try`'s result as text: the command prints it (`lines`), the TUI's detail pane shows the
/// same facts under the image it names already (`parts`); `hold`'s line when the lock is taken (`busy`).
public enum TryText {
    /// "IMAGE: held: an exclusive lock (qemu scheme) cannot be taken", then the facts, indented.
    /// `note`: why a gluster holder could not be named further. `filesystem`: the name of
    /// the shared filesystem a path is on (asked only when no holder is visible).
    public static func lines(_ r: ProbeResult, note: String? = nil,
                             filesystem: (String) -> String? = { SharedFilesystem.of(path: $0)?.name }) -> [String] {
        let p = parts(r, note: note, filesystem: filesystem)
        return ["\(r.image): \(p.headline)"] + p.details.map { "  " + $0 }
    }

    /// The headline without the image ("free: ..." / "held: ...") and the facts under it.
    public static func parts(_ r: ProbeResult, note: String? = nil,
                             filesystem: (String) -> String? = { SharedFilesystem.of(path: $0)?.name })
        -> (headline: String, details: [String]) {
        let what = "\(r.mode == .exclusive ? "an exclusive" : "a shared") lock (\(r.scheme.rawValue) scheme)"
        guard let c = r.contention else {
            var line = "free: \(what) can be taken"
            if let lf = r.lockFile {
                line += r.lockFileExists ? " [lock file \(lf)]" : " [lock file \(lf) does not exist; not created]"
            }
            return (line, [])
        }
        var out: [String] = []
        if let first = c.qemuConflicts.first {
            out.append("QEMU would say: \(first.message)")
            out.append("                \(QemuConflict.hint(image: r.image))")
        }
        if let lf = r.lockFile { out.append("lock file: \(lf)") }
        if r.scheme == .gluster {
            if c.glusterHolders.isEmpty { out.append("holder: not known (F_GETLK did not say)") }
            for h in c.glusterHolders { out.append("holder: \(describe(h))") }
            if let n = note { out.append("(\(n))") }
            return ("held: \(what) cannot be taken", out)
        }
        if c.holders.isEmpty {
            let pids = c.blocking.compactMap(\.pid)
            if pids.isEmpty, let fs = filesystem(r.image) {
                out.append("holder: not visible in this host's lock table (\(fs) keeps its locks on the server; `locksmith why` names the holder where it can)")
            } else if pids.isEmpty {
                out.append("holder: not visible from here (an OFD lock of a process whose fds cannot be read)")
            } else {
                for p in pids { out.append("holder: pid \(p)") }
            }
        }
        for h in c.holders { out.append("holder: \(describe(h))") }
        return ("held: \(what) cannot be taken", out)
    }

    /// `hold`'s one line when the lock is taken: "IMAGE is locked (QEMU would say: ...) by pid
    /// 123 (qemu-io)", and how long it waited (`--wait`).
    public static func busy(_ image: String, _ c: Contention, waited: Double?) -> String {
        var msg = "\(image) is locked"
        if let q = c.qemuConflicts.first { msg += " (QEMU would say: \(q.message))" }
        if !c.glusterHolders.isEmpty {
            msg += " by " + c.glusterHolders.map { h in
                (h.pid.map { "pid \($0)" } ?? "a process") + (h.host.map { " on \($0)" } ?? "")
            }.joined(separator: ", ")
        } else if c.holders.isEmpty {
            let pids = c.blocking.compactMap(\.pid)
            msg += pids.isEmpty ? " by a process that cannot be seen from here" : " by pid " + pids.map(String.init).joined(separator: ", ")
        } else {
            msg += " by " + c.holders.map { "pid \($0.pid) (\($0.command))" }.joined(separator: ", ")
        }
        if let w = waited { msg += " after waiting \(w) s" }
        return msg
    }

    /// "pid 123 on host h1 holds a WRITE lock on bytes 0-EOF (lk-owner h1:123)".
    public static func describe(_ h: GlusterLockHolder) -> String {
        var s = h.pid.map { "pid \($0)" } ?? "a process"
        s += h.host.map { " on host \($0)" } ?? ""
        let end = h.range.end.map(String.init) ?? "EOF"
        s += " holds a \(h.type.rawValue) lock on bytes \(h.range.start)-\(end)"
        var extra: [String] = []
        if let o = h.owner { extra.append("lk-owner \(o)") }
        if let c = h.clientPID, c != h.pid { extra.append("client pid \(c)") }
        if !extra.isEmpty { s += " (" + extra.joined(separator: ", ") + ")" }
        return s
    }

    /// "pid 123 (qemu-nbd) holds a READ OFD lock on bytes 100-100 through fd 5".
    public static func describe(_ h: LockHolder) -> String {
        var s = "pid \(h.pid) (\(h.command))"
        let l = h.lock
        let end = l.end.map(String.init) ?? "EOF"
        s += " holds a \(l.type) \(l.isOFD ? "OFD" : l.kind.description) lock on bytes \(l.start)-\(end)"
        if let fd = h.fd { s += " through fd \(fd)" }
        return s
    }
}
