import FoundationEssentials
import ImageLock

/// The reports of `audit --json`, `watch --json` (one line per event) and `try --json`, each
/// in the envelope (`beginReport`), payload keys sorted, built from the one writer of each
/// concept (`ModelJSON.swift`). (`list --json`: `SnapshotJSON`; `why --json`: `VerdictJSON`.)
public enum ReportJSON {
    /// `audit --json`: the findings, their counts per severity, `fail_on`, what `--fix` did
    /// (null without it), what could not be looked at, and the hosts of a cluster view
    /// (left out otherwise). Dated by the snapshot.
    public static func audit(_ audited: AuditedSnapshot, failOn: Severity, fixes: [StaleFix]?, hosts: [ClusterHost]?,
                             host: String) -> [UInt8] {
        var w = JSONWriter(capacity: 4096 + audited.findings.count * 512)
        write(audit: audited, failOn: failOn, fixes: fixes, hosts: hosts, host: host, to: &w)
        return w.bytes
    }

    /// The same, handed to `sink` in pieces as it is made (as `SnapshotJSON.render(_:sink:)`):
    /// `audit --json` writes each piece as it comes, never holding the whole report (9 MB
    /// with 10k unmapped lock files).
    public static func audit(_ audited: AuditedSnapshot, failOn: Severity, fixes: [StaleFix]?, hosts: [ClusterHost]?,
                             host: String, sink: @escaping (UnsafeRawBufferPointer) -> Void) {
        var w = JSONWriter(capacity: 1 << 16, sink: sink)
        write(audit: audited, failOn: failOn, fixes: fixes, hosts: hosts, host: host, to: &w)
        w.finish()
    }

    static func write(audit audited: AuditedSnapshot, failOn: Severity, fixes: [StaleFix]?, hosts: [ClusterHost]?,
                      host: String, to w: inout JSONWriter) {
        let s = audited.snapshot, findings = audited.findings
        var counts: [Severity: Int] = [:]
        for f in findings { counts[f.severity, default: 0] += 1 }
        w.beginReport(host: host, generated: s.generated)
        w.key("counts")
        w.beginObject()
        for sev in Severity.allCases.sorted(by: { $0.rawValue < $1.rawValue }) {
            w.key(sev.staticName)
            w.int(counts[sev] ?? 0)
        }
        w.endObject()
        w.field("fail_on", failOn.rawValue)
        w.key("findings")
        w.beginArray()
        // In chunks on every core (15k findings with 10k unmapped lock files), joined in order.
        SnapshotJSON.elements(findings.count, into: &w) { i, w, dates in w.finding(findings[i], dates: &dates) }
        w.endArray()
        w.key("fixes")
        if let fixes {
            w.beginArray()
            for f in fixes {
                w.beginObject()
                w.field("outcome", f.outcome)
                w.field("path", f.path)
                w.field("removed", f.removed)
                w.endObject()
            }
            w.endArray()
        } else {
            w.null()
        }
        if let hosts { w.field("hosts", hosts) { w, h in w.clusterHost(h) } }
        w.field("unseen", s.unseen) { w, u in w.unseen(u) }
        w.endObject()
    }

    /// One `watch --json` line (without its newline), dated by the event.
    public static func watchEvent(_ e: WatchEvent, host: String) -> [UInt8] {
        var w = JSONWriter(capacity: 1024)
        var dates = DateText()
        w.beginReport(host: host, generated: e.time)
        w.field("event", e.kind.rawValue)
        w.key("finding")
        if let f = e.finding { w.finding(f, dates: &dates) } else { w.null() }
        w.key("holder")
        if let h = e.holder { w.holder(h, dates: &dates) } else { w.null() }
        w.field("image", e.image)
        w.field("image_id", e.imageID)
        w.key("previous")
        if let h = e.previous { w.holder(h, dates: &dates) } else { w.null() }
        w.endObject()
        return w.bytes
    }

    /// `try --json`: the lock asked for, whether it could be taken, QEMU's message and the
    /// holders with their kernel lock rows; for a gluster image also the holders on the
    /// volume and why they could not be named further (`note`).
    public static func tryResult(_ r: ProbeResult, note: String?, host: String, generated: Date) -> [UInt8] {
        var w = JSONWriter(capacity: 2048)
        w.beginReport(host: host, generated: generated)
        w.field("acquired", r.acquired)
        w.field("flavor", r.flavor?.rawValue)
        if r.scheme == .gluster {
            w.field("gluster_holders", r.contention?.glusterHolders ?? []) { w, h in
                w.beginObject()
                w.field("client_pid", h.clientPID)
                w.field("end", h.range.end)
                w.field("host", h.host)
                w.field("owner", h.owner?.text)
                w.field("owner_hex", h.owner?.hex)
                w.field("pid", h.pid)
                w.field("source", h.source.rawValue)
                w.field("start", h.range.start)
                w.field("type", h.type.rawValue)
                w.endObject()
            }
            w.field("gluster_note", note)
        }
        w.field("holders", r.contention?.holders ?? []) { w, h in
            w.beginObject()
            w.field("command", h.command)
            w.field("fd", h.fd)
            w.key("lock")
            w.kernelLock(h.lock)
            w.field("pid", h.pid)
            w.endObject()
        }
        w.field("image", r.image)
        w.pathBytes("image_bytes", r.image)
        w.field("lock_file", r.lockFile)
        w.pathBytes("lock_file_bytes", r.lockFile)
        w.key("lock_file_exists")
        if r.lockFile == nil { w.null() } else { w.bool(r.lockFileExists) }
        w.field("mode", r.mode.rawValue)
        w.field("qemu_message", r.contention?.qemuConflicts.first?.message)
        w.field("scheme", r.scheme.rawValue)
        w.endObject()
        return w.bytes
    }
}

extension Severity {
    /// The raw value as a JSON key.
    var staticName: StaticString {
        switch self {
        case .info: return "info"
        case .warning: return "warning"
        case .critical: return "critical"
        }
    }
}
