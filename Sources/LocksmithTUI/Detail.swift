import FoundationEssentials
import ImageLock
import LockInspector

/// A piece of a line with its role.
public struct Span: Equatable, Sendable {
    public var text: String
    public var role: Role
    public init(_ text: String, _ role: Role = .plain) {
        self.text = text
        self.role = role
    }
}

public typealias StyledLine = [Span]

/// The detail pane's text for one image: every holder and waiter, decoded QEMU
/// permissions, the kernel's lock rows, the lock files, and the results of `w`, `o`, `t`.
public enum DetailText {
    public static func lines(for image: ImageLocks, selectedHolder: Holder?, results: ImageResults?,
                             whyAvailable: Bool, now: Date) -> [StyledLine] {
        var out: [StyledLine] = []
        func field(_ name: String, _ value: String, _ role: Role = .plain) {
            out.append([Span(pad(name, 10), .dim), Span(value, role)])
        }
        field("image", image.path ?? "<unknown> (\(image.id))")
        var where_ = image.schemes.map(\.rawValue).joined(separator: ", ")
        if let d = image.device, let i = image.inode { where_ += "   dev \(d) inode \(i)" }
        field("schemes", where_.isEmpty ? "-" : where_)
        for lf in image.lockFiles { field("lock file", lf) }

        out.append([Span("holders (\(image.holders.count))", .columnHeader)])
        if image.holders.isEmpty { out.append([Span("  none", .dim)]) }
        for h in image.holders { out += holderLines(h, selected: h == selectedHolder, waiting: false, now: now) }
        if !image.waiters.isEmpty {
            out.append([Span("waiting (\(image.waiters.count))", .columnHeader)])
            for h in image.waiters { out += holderLines(h, selected: h == selectedHolder, waiting: true, now: now) }
        }
        let r = results ?? ImageResults()
        out += result("why --write", r.whyWrite, hint: whyAvailable ? "press w" : "not available")
        out += result("why --ro", r.whyReadOnly, hint: whyAvailable ? "press o" : "not available")
        out += result("test", r.test, hint: "press t")
        if image.schemes.contains(.gluster) {
            out.append([Span(pad("clear-locks", 13), .dim), Span("press C (on a server node; asks first)", .dim)])
        }
        if !image.locks.isEmpty {
            out.append([Span("kernel locks", .columnHeader)])
            for l in image.locks { out.append([Span("  " + lockRow(l), l.isWaiter ? .wait : .plain)]) }
        }
        return out
    }

    static func holderLines(_ h: Holder, selected: Bool, waiting: Bool, now: Date) -> [StyledLine] {
        var first: StyledLine = [Span(selected ? "> " : "  ", .dim), Span("pid \(h.pid) ", .plain), Span(h.command, .plain)]
        let mode = waiting ? "wait" : h.modeSummary
        first.append(Span(" " + mode, role(forMode: mode)))
        if let vm = h.vm { first.append(Span("  VM \(vm)" + (h.diskTarget.map { " disk \($0)" } ?? ""))) }
        if let u = h.process.userText { first.append(Span("  user \(u)")) }
        if let fd = h.fd { first.append(Span("  fd \(fd)", .dim)) }
        if let m = h.openMode { first.append(Span(" (\(m.rawValue))", .dim)) }
        if let s = h.started { first.append(Span("  up \(Column.age(from: s, to: now))", .dim)) }
        if let host = h.host { first.append(Span("  on \(host)")) }
        first.append(Span("  [\(h.scheme.rawValue)]", .dim))
        var out = [first]
        if let q = h.qemu {
            let held = q.held.sorted().map(\.name).joined(separator: ", ")
            let unshared = q.unshared.sorted().map(\.name).joined(separator: ", ")
            out.append([Span("      holds ", .dim), Span(held.isEmpty ? "-" : held),
                        Span("; does not share ", .dim), Span(unshared.isEmpty ? "-" : unshared)])
        }
        if !h.args.isEmpty {
            out.append([Span("      " + h.args.joined(separator: " "), .dim)])
        }
        return out
    }

    /// A kernel lock row as /proc/locks prints it, without the ID.
    public static func lockRow(_ l: KernelLock) -> String {
        var s = l.isWaiter ? "-> " : ""
        s += "\(l.kind) \(l.mode) \(l.type) \(l.pid.map(String.init) ?? "-1") "
        s += "\(l.device?.description ?? "<none>"):\(l.inode ?? 0) \(l.start) \(l.end.map(String.init) ?? "EOF")"
        if let b = l.blockedBy { s += "  (blocked by lock \(b))" }
        return s
    }

    static func result(_ name: String, _ lines: [String]?, hint: String) -> [StyledLine] {
        guard let lines, !lines.isEmpty else { return [[Span(pad(name, 13), .dim), Span(hint, .dim)]] }
        return lines.enumerated().map { i, l in
            [Span(pad(i == 0 ? name : "", 13), .dim), Span(l, verdictRole(l))]
        }
    }

    static func role(forMode mode: String) -> Role {
        switch mode {
        case "write", "rw": return .write
        case "read", "ro": return .read
        case "wait": return .wait
        default: return .dim
        }
    }

    /// Colours a verdict line by its first word (`free`, `held`, `blocked`, `error`...).
    static func verdictRole(_ line: String) -> Role {
        let l = line.lowercased()
        if l.hasPrefix("free") || l.hasPrefix("ok") || l.hasPrefix("would open") { return .ok }
        if l.hasPrefix("held") || l.hasPrefix("blocked") || l.hasPrefix("would not") || l.hasPrefix("failed")
            || l.hasPrefix("error") || l.contains("failed to get") { return .bad }
        return .plain
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
    }
}

/// Turns a test-acquire into detail-pane lines (what `locksmith try` prints).
public enum TestAcquireText {
    /// QEMU users lock bytes inside the image; everyone else uses the lock file.
    public static func scheme(for image: ImageLocks) -> LockScheme {
        image.holders.contains { $0.scheme == .qemu || $0.qemu != nil } || image.schemes.contains(.qemu) ? .qemu : .lockfile
    }

    /// `try`'s text (`TryText`) under the image the pane names already.
    public static func lines(_ r: ProbeResult) -> [String] {
        let p = TryText.parts(r)
        return [p.headline] + p.details
    }
}
