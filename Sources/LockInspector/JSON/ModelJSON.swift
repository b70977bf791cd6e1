import FoundationEssentials
import ImageLock

// The one JSON writer of each concept of the model, used by every report that carries it
// (`list`, `why`, `try`, `audit`, `watch`): a holder, a kernel lock row, a finding and the
// processes in it, a writer, a host of a cluster view, an unseen place, and the envelope.
// Keys are snake_case and written in sorted order (as the reports promise); an unknown
// value is an explicit null (`field` with an optional writes one). A new field goes here,
// with the schema in docs/schema in the same commit.

extension JSONWriter {
    // MARK: Fields: a key and its value, null when the value is nil.

    public mutating func field(_ k: StaticString, _ v: String?) {
        key(k)
        string(v)
    }

    public mutating func field<T: BinaryInteger>(_ k: StaticString, _ v: T?) {
        key(k)
        int(v)
    }

    public mutating func field(_ k: StaticString, _ v: Bool) {
        key(k)
        bool(v)
    }

    public mutating func field(_ k: StaticString, _ v: [String]) {
        key(k)
        strings(v)
    }

    /// A date as ISO 8601 text (`2026-12-01T09:30:27Z`), or null.
    mutating func field(_ k: StaticString, _ d: Date?, dates: inout DateText) {
        key(k)
        string(d.map { dates.text($0) })
    }

    /// An array of `items`, each written by `element`.
    mutating func field<S: Sequence>(_ k: StaticString, _ items: S, _ element: (inout JSONWriter, S.Element) -> Void) {
        key(k)
        beginArray()
        for x in items { element(&self, x) }
        endArray()
    }

    // MARK: The envelope

    /// Opens a report: `{"schema":1,"host":…,"generated":…`; the caller writes the payload's
    /// fields (sorted) and closes it with `endObject()`.
    public mutating func beginReport(host: String, generated: Date) {
        beginObject()
        key("schema")
        int(1)
        field("host", host)
        field("generated", SnapshotJSON.iso8601(generated))
    }

    // MARK: The concepts

    /// A holder or waiter of an image (list's `holders`/`waiters`, watch's `holder`/`previous`).
    mutating func holder(_ h: borrowing Holder, dates: inout DateText) {
        beginObject()
        field("args", h.args)
        field("command", h.command)
        // The VM's disk target (`vda`) from libvirt's domain XML, else null.
        field("disk_target", h.diskTarget)
        field("fd", h.fd)
        // The holder's host: known for gluster holders named by a statedump and in a cluster view, else null.
        field("host", h.host)
        // A Gluster holder checked against its host's processes (a cluster view): only then.
        if let l = h.liveness {
            field("liveness", l.word)
            field("liveness_reason", l.reason)
        }
        field("mode", h.modeSummary)
        field("open_mode", h.openMode?.rawValue)
        field("pid", h.pid)
        key("qemu")
        if let q = h.qemu {
            beginObject()
            field("held", q.held.sorted().map(\.name))
            field("unshared", q.unshared.sorted().map(\.name))
            endObject()
        } else {
            null()
        }
        field("scheme", h.scheme.rawValue)
        field("started", h.started, dates: &dates)
        // What a brick statedump said of a Gluster holder it named: only then.
        if let n = h.statedump {
            key("statedump")
            beginObject()
            field("client_pid", n.clientPID)
            field("granted", n.granted, dates: &dates)
            field("locksmith_owner", n.locksmithOwner)
            endObject()
        }
        field("uid", h.uid)
        field("user", h.process.userText)
        field("vm", h.vm)
        field("vm_uuid", h.vmUUID)
        endObject()
    }

    /// A kernel lock row (list's `locks`, try's `holders[].lock`): `start`/`end` as
    /// /proc/locks prints them (end inclusive, null for EOF); an OFD lock's pid is -1.
    mutating func kernelLock(_ l: borrowing KernelLock) {
        beginObject()
        field("blocked_by", l.blockedBy)
        key("dev")
        device(l.device)
        field("end", l.end)
        field("inode", l.inode)
        field("mode", l.type)
        field("pid", l.pid ?? -1)
        field("start", l.start)
        field("type", l.kind.description)
        endObject()
    }

    /// An audit finding with the processes involved (audit's `findings`, list --audit's,
    /// watch's `finding`).
    mutating func finding(_ f: Finding, dates: inout DateText) {
        beginObject()
        field("evidence", f.evidence)
        field("files", f.files)
        field("holders", f.holders) { w, p in w.involved(p, dates: &dates) }
        field("host", f.host)
        field("image", f.image)
        field("remedy", f.remedy)
        field("rule", f.rule.rawValue)
        field("severity", f.severity.rawValue)
        endObject()
    }

    mutating func involved(_ p: InvolvedProcess, dates: inout DateText) {
        beginObject()
        field("args", p.args)
        field("command", p.command)
        field("fd", p.fd)
        field("host", p.host)
        field("mode", p.mode)
        field("open_mode", p.openMode?.rawValue)
        field("pid", p.pid)
        field("role", p.role.rawValue)
        field("scheme", p.scheme?.rawValue)
        field("started", p.started, dates: &dates)
        field("uid", p.uid)
        field("user", p.process.userText)
        field("vm", p.vm)
        key("waited_seconds")
        if let s = p.waitedSeconds { double((s * 10).rounded() / 10) } else { null() }
        endObject()
    }

    /// A process with a candidate image open for writing (the facts of the writer rules).
    mutating func writer(_ x: ImageWriter, dates: inout DateText) {
        beginObject()
        field("args", x.args)
        field("command", x.command)
        key("dev")
        device(x.device)
        field("fd", x.fd)
        field("host", x.host)
        field("inode", x.inode)
        field("open_mode", x.openMode.rawValue)
        field("path", x.path)
        field("pid", x.pid)
        field("started", x.started, dates: &dates)
        field("storage", x.storage)
        field("uid", x.uid)
        field("user", x.process.userText)
        field("vm", x.vm)
        endObject()
    }

    /// A host of a cluster view.
    mutating func clusterHost(_ h: ClusterHost) {
        beginObject()
        field("error", h.error)
        field("hostname", h.hostname)
        field("name", h.name)
        field("reached", h.reached)
        field("took_ms", h.tookMs)
        field("version", h.version)
        endObject()
    }

    /// Something that could not be looked at, and why.
    mutating func unseen(_ u: Unseen) {
        beginObject()
        field("what", u.what)
        field("why", u.why)
        endObject()
    }
}

/// ISO 8601 text of a date, as the reports write it, made once per distinct date
/// (thousands of holders share a few start times).
struct DateText {
    var cache: [Date: String] = [:]
    mutating func text(_ d: Date) -> String {
        if let t = cache[d] { return t }
        let t = SnapshotJSON.iso8601(d)
        cache[d] = t
        return t
    }
}
