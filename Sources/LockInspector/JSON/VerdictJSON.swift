import FoundationEssentials
import ImageLock

// `why --json`: the verdict's fields in sorted order, snake_case; optional fields are written
// as null rather than left out, so scripts see every key.

extension Verdict {
    /// QEMU's text and hint line, as QEMU prints them (two lines), or nil.
    public var qemuText: String? {
        qemuMessage.map { m in qemuHint.map { m + "\n" + $0 } ?? m }
    }
}

public enum VerdictJSON {
    /// What `why --host --json` adds after the verdict's fields: the image's storage identity,
    /// the hosts in view and the image's holders on each (`ClusterWhy.holders`).
    public struct Cluster: Sendable {
        public var storage: String?
        public var hosts: [ClusterHost]
        public var holders: [ClusterWhy.Seen]

        public init(storage: String?, hosts: [ClusterHost], holders: [ClusterWhy.Seen]) {
            (self.storage, self.hosts, self.holders) = (storage, hosts, holders)
        }
    }

    /// The report: the envelope and the verdict's fields; with `cluster`, a `cluster` object last.
    public static func render(_ v: Verdict, host: String, generated: Date, cluster: Cluster? = nil) -> [UInt8] {
        var w = JSONWriter(capacity: 4096)
        var dates = DateText()
        w.beginReport(host: host, generated: generated)
        w.field("blockers", v.blockers) { w, b in w.blocker(b, dates: &dates) }
        w.field("chain", v.chain) { w, c in w.chainEntry(c) }
        w.field("facts", v.facts) { w, f in
            w.beginObject()
            w.field("proven", f.proven)
            w.field("statement", f.statement)
            w.endObject()
        }
        w.field("image", v.image)
        w.pathBytes("image_bytes", v.image)
        w.field("mode", v.intent.rawValue)
        w.field("named", v.imageAsGiven)
        w.field("opens", v.opens)
        w.field("outcome", v.outcome.rawValue)
        w.field("proven", v.proven)
        w.field("qemu_failures", v.qemuFailures) { w, q in w.qemuFailure(q) }
        w.field("qemu_message", v.qemuText)
        w.field("reasons", v.reasons) { w, r in
            w.beginObject()
            w.field("blocks", r.blocks)
            w.field("kind", r.kind.rawValue)
            w.field("message", r.message)
            w.field("path", r.path)
            w.field("remedy", r.remedy)
            w.endObject()
        }
        w.field("waiters", v.waiters) { w, x in
            w.beginObject()
            w.field("command", x.command)
            w.field("lock_type", x.lockType)
            w.field("pid", x.pid)
            w.field("started", x.started, dates: &dates)
            w.field("waits_on", x.waitsOn)
            w.endObject()
        }
        if let c = cluster {
            w.key("cluster")
            w.beginObject()
            w.field("holders", c.holders) { w, s in
                w.beginObject()
                w.field("blocks", s.blocks)
                w.field("command", s.holder.command)
                w.field("host", s.holder.host)
                // A Gluster holder checked on its host (`GlusterStaleness`): only then.
                if let l = s.holder.liveness {
                    w.field("liveness", l.word)
                    w.field("liveness_reason", l.reason)
                }
                w.field("mode", s.holder.modeSummary)
                w.field("pid", s.holder.pid)
                w.field("scheme", s.holder.scheme.rawValue)
                w.field("vm", s.holder.vm)
                w.endObject()
            }
            w.field("hosts", c.hosts) { w, h in w.clusterHost(h) }
            w.field("storage", c.storage)
            w.endObject()
        }
        w.endObject()
        return w.bytes
    }
}

extension JSONWriter {
    /// A process (or unseen holder) in the way of the open.
    mutating func blocker(_ b: Blocker, dates: inout DateText) {
        beginObject()
        field("args", b.args)
        field("command", b.command)
        field("conflict", b.conflict)
        field("fd", b.fd)
        field("holds", b.holds)
        field("host", b.host)
        field("lock", b.lock)
        field("open_mode", b.openMode?.rawValue)
        field("pid", b.pid)
        field("proven", b.proven)
        field("remedy", b.remedy)
        field("scheme", b.scheme.rawValue)
        field("started", b.started, dates: &dates)
        field("uid", b.uid)
        field("user", b.user)
        field("via", b.via)
        field("vm", b.vm)
        endObject()
    }

    /// One of QEMU's lock checks that fails, in QEMU's order.
    mutating func qemuFailure(_ q: QemuFailure) {
        beginObject()
        field("byte", q.byte)
        field("depth", q.depth)
        field("hint", q.hint)
        field("holders", q.holders) { w, pid in w.int(pid) }
        field("image", q.image)
        field("message", q.message)
        field("name", q.name)
        endObject()
    }

    /// A member of the backing chain and who holds it.
    mutating func chainEntry(_ c: ChainEntry) {
        beginObject()
        field("backing_name", c.backingName)
        field("exists", c.exists)
        field("format", c.format)
        field("holders", c.holders) { w, h in
            w.beginObject()
            w.field("command", h.command)
            w.field("lock", h.lock)
            w.field("pid", h.pid)
            w.field("via", h.via)
            w.field("vm", h.vm)
            w.endObject()
        }
        field("name", c.name)
        field("opened", c.opened)
        field("path", c.path)
        field("problem", c.problem)
        endObject()
    }
}
