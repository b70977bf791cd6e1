import Foundation
import ImageLock

/// `list --json`: the images, every lock file found, and what could not be looked at.
/// Written by hand (JSONWriter): Foundation's JSONEncoder took ~0.4 s for 10k lock files.
/// Keys are sorted, snake_case, and every field is present (null when unknown), as the
/// CLI's JSONEncoder writes other reports; the man page documents them.
public enum SnapshotJSON {
    /// What the object may carry beyond the scan: the version of locksmith that made it,
    /// the audit's findings and the writers they rest on (`list --audit`, what `audit
    /// --host` asks each host for), and the hosts of a cluster view.
    public struct Extras: Sendable {
        public var version: String?
        public var findings = false
        public var hosts: [ClusterHost]?
        public init(version: String? = nil, findings: Bool = false, hosts: [ClusterHost]? = nil) {
            self.version = version
            self.findings = findings
            self.hosts = hosts
        }
    }

    /// The whole object; `host` is the envelope's host name (the snapshot's own, unless the
    /// caller knows better).
    public static func render(_ s: Snapshot, host: String? = nil, extras: Extras = Extras()) -> [UInt8] {
        var w = JSONWriter(capacity: 4096 + s.lockFiles.count * 400 + s.images.count * 600)
        write(s, host: host, extras: extras, to: &w)
        return w.bytes
    }

    /// The same, handed to `sink` in pieces as it is made (the long arrays in the chunks
    /// rendered on every core, in order): `list --json` writes each piece as it comes,
    /// never holding the whole report (7 MB at 10k lock files).
    public static func render(_ s: Snapshot, host: String? = nil, extras: Extras = Extras(),
                              sink: @escaping (UnsafeRawBufferPointer) -> Void) {
        var w = JSONWriter(capacity: 1 << 16, sink: sink)
        write(s, host: host, extras: extras, to: &w)
        w.finish()
    }

    static func write(_ s: Snapshot, host: String?, extras: Extras, to w: inout JSONWriter) {
        var dates = DateText()
        w.beginObject()
        w.key("schema")
        w.int(1)
        w.key("host")
        w.string(host ?? s.host)
        w.key("generated")
        w.string(dates.text(s.generated))
        if let v = extras.version {
            w.key("version")
            w.string(v)
        }
        if extras.findings {
            w.key("findings")
            w.beginArray()
            for f in s.findings { write(finding: f, to: &w, dates: &dates) }
            w.endArray()
        }
        if let hosts = extras.hosts {
            w.key("hosts")
            w.beginArray()
            for h in hosts { write(host: h, to: &w) }
            w.endArray()
        }
        // The two long arrays are rendered in chunks on every core, then joined in order.
        w.key("images")
        w.beginArray()
        let images = s.images, lockFiles = s.lockFiles
        // Each element read where it is (a pointer): a copy would retain its dozen references.
        elements(images.count, into: &w) { i, w, dates in
            images.withUnsafeBufferPointer { write(image: $0.baseAddress! + i, to: &w, dates: &dates) }
        }
        w.endArray()
        w.key("lock_files")
        w.beginArray()
        elements(lockFiles.count, into: &w) { i, w, _ in lockFiles.withUnsafeBufferPointer { write(lockFile: $0.baseAddress! + i, to: &w) } }
        w.endArray()
        w.key("unseen")
        w.beginArray()
        for u in s.unseen {
            w.beginObject()
            w.key("what")
            w.string(u.what)
            w.key("why")
            w.string(u.why)
            w.endObject()
        }
        w.endArray()
        if extras.findings {
            w.key("writers")
            w.beginArray()
            for x in s.writers { write(writer: x, to: &w, dates: &dates) }
            w.endArray()
        }
        w.endObject()
    }

    /// `list`'s elements as JSON, comma-separated, in chunks rendered in parallel, into `w`,
    /// in waves of one chunk per core, each handed to `w` before the next is made: a
    /// streaming writer holds a chunk buffer per core, reused, not 70 MB at 100k.
    /// (By index: the caller's closure reads its array in place, no element is copied.)
    static func elements(_ count: Int, into w: inout JSONWriter,
                         _ write: @escaping @Sendable (Int, inout JSONWriter, inout DateText) -> Void) {
        guard count > 0 else { return }
        // Up to 4096 elements a chunk, in as many chunks as make full waves.
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let chunks = ((count + 4095) / 4096 + cores - 1) / cores * cores
        let chunk = max(1, (count + chunks - 1) / chunks)
        let buffers = (0..<min(cores, (count + chunk - 1) / chunk)).map { _ in ByteBuffer(capacity: chunk * 768) }
        for start in stride(from: 0, to: count, by: chunk * cores) {
            let end = min(count, start + chunk * cores)
            let used = Parallel.chunks(end - start, chunk: chunk) { range -> [ByteBuffer] in
                let buffer = buffers[range.lowerBound / chunk]
                var w = JSONWriter.elements(into: buffer)
                var dates = DateText()
                for i in range { write(start + i, &w, &dates) }
                return [buffer]
            }
            w.elements(used)
        }
    }

    static func write(image p: UnsafePointer<ImageLocks>, to w: inout JSONWriter, dates: inout DateText) {
        w.beginObject()
        w.key("dev")
        w.device(p.pointee.device)
        w.key("holders")
        w.beginArray()
        for i in p.pointee.holders.indices { write(p.pointee.holders[i], to: &w, dates: &dates) }
        w.endArray()
        w.key("host")
        w.string(p.pointee.host)
        w.key("inode")
        w.int(p.pointee.inode)
        w.key("lock_files")
        w.strings(p.pointee.lockFiles)
        w.pathsBytes("lock_files_bytes", p.pointee.lockFiles)
        w.key("locks")
        w.beginArray()
        for i in p.pointee.locks.indices { write(p.pointee.locks[i], to: &w) }
        w.endArray()
        w.key("path")
        w.string(p.pointee.path)
        w.pathBytes("path_bytes", p.pointee.path)
        w.key("schemes")
        w.beginArray()
        for sc in p.pointee.schemes { w.string(sc.rawValue) }
        w.endArray()
        w.key("storage")
        w.string(p.pointee.storage)
        w.key("waiters")
        w.beginArray()
        for i in p.pointee.waiters.indices { write(p.pointee.waiters[i], to: &w, dates: &dates) }
        w.endArray()
        w.endObject()
    }

    static func write(_ h: borrowing Holder, to w: inout JSONWriter, dates: inout DateText) {
        w.beginObject()
        w.key("args")
        w.strings(h.args)
        w.key("command")
        w.string(h.command)
        // The VM's disk target (`vda`) from libvirt's domain XML, else null.
        w.key("disk_target")
        w.string(h.diskTarget)
        w.key("fd")
        w.int(h.fd)
        // The holder's host: known for gluster holders named by a statedump, else null.
        w.key("host")
        w.string(h.host)
        // A Gluster holder checked against its host's processes (a cluster view): only then.
        if let l = h.liveness {
            w.key("liveness")
            w.string(l.word)
            w.key("liveness_reason")
            w.string(l.reason)
        }
        w.key("mode")
        w.string(h.modeSummary)
        w.key("open_mode")
        w.string(h.openMode?.rawValue)
        w.key("pid")
        w.int(h.pid)
        w.key("qemu")
        if let q = h.qemu {
            w.beginObject()
            w.key("held")
            w.strings(q.held.sorted().map(\.name))
            w.key("unshared")
            w.strings(q.unshared.sorted().map(\.name))
            w.endObject()
        } else {
            w.null()
        }
        w.key("scheme")
        w.string(h.scheme.rawValue)
        w.key("started")
        w.string(h.started.map { dates.text($0) })
        // What a brick statedump said of a Gluster holder it named: only then.
        if let n = h.statedump {
            w.key("statedump")
            w.beginObject()
            w.key("client_pid")
            w.int(n.clientPID)
            w.key("granted")
            w.string(n.granted.map { dates.text($0) })
            w.key("locksmith_owner")
            w.bool(n.locksmithOwner)
            w.endObject()
        }
        w.key("uid")
        w.int(h.uid)
        w.key("user")
        w.string(h.user ?? h.uid.map(String.init))
        w.key("vm")
        w.string(h.vm)
        w.key("vm_uuid")
        w.string(h.vmUUID)
        w.endObject()
    }

    /// A kernel lock row: `start`/`end` as /proc/locks prints them (end inclusive, null for EOF).
    static func write(_ l: borrowing KernelLock, to w: inout JSONWriter) {
        w.beginObject()
        w.key("blocked_by")
        w.int(l.blockedBy)
        w.key("dev")
        w.device(l.device)
        w.key("end")
        w.int(l.end)
        w.key("inode")
        w.int(l.inode)
        w.key("mode")
        w.string(l.type)
        w.key("pid")
        w.int(l.pid ?? -1)
        w.key("start")
        w.int(l.start)
        w.key("type")
        w.string(l.kind.rawValue)
        w.endObject()
    }

    static func write(lockFile p: UnsafePointer<LockFileEntry>, to w: inout JSONWriter) {
        w.beginObject()
        w.key("dev")
        w.device(p.pointee.device)
        w.key("held")
        w.bool(p.pointee.held)
        w.key("host")
        w.string(p.pointee.host)
        w.key("image")
        w.string(p.pointee.image)
        w.pathBytes("image_bytes", p.pointee.image)
        w.key("inode")
        w.int(p.pointee.inode)
        w.key("kind")
        w.string(p.pointee.kind.rawValue)
        w.key("mapped_by")
        w.string(p.pointee.mappedBy)
        w.key("path")
        w.string(p.pointee.path)
        w.pathBytes("path_bytes", p.pointee.path)
        w.endObject()
    }

    /// A host of a cluster view.
    static func write(host h: ClusterHost, to w: inout JSONWriter) {
        w.beginObject()
        w.key("error")
        w.string(h.error)
        w.key("hostname")
        w.string(h.hostname)
        w.key("name")
        w.string(h.name)
        w.key("reached")
        w.bool(h.reached)
        w.key("took_ms")
        w.int(h.tookMs)
        w.key("version")
        w.string(h.version)
        w.endObject()
    }

    /// A finding, as `audit --json` writes it, with its host.
    static func write(finding f: Finding, to w: inout JSONWriter, dates: inout DateText) {
        w.beginObject()
        w.key("evidence")
        w.string(f.evidence)
        w.key("files")
        w.strings(f.files)
        w.key("holders")
        w.beginArray()
        for p in f.holders {
            w.beginObject()
            w.key("args")
            w.strings(p.args)
            w.key("command")
            w.string(p.command)
            w.key("fd")
            w.int(p.fd)
            w.key("host")
            w.string(p.host)
            w.key("mode")
            w.string(p.mode)
            w.key("open_mode")
            w.string(p.openMode?.rawValue)
            w.key("pid")
            w.int(p.pid)
            w.key("role")
            w.string(p.role.rawValue)
            w.key("scheme")
            w.string(p.scheme?.rawValue)
            w.key("started")
            w.string(p.started.map { dates.text($0) })
            w.key("uid")
            w.int(p.uid)
            w.key("user")
            w.string(p.user ?? p.uid.map(String.init))
            w.key("vm")
            w.string(p.vm)
            w.key("waited_seconds")
            if let s = p.waitedSeconds { w.double((s * 10).rounded() / 10) } else { w.null() }
            w.endObject()
        }
        w.endArray()
        w.key("host")
        w.string(f.host)
        w.key("image")
        w.string(f.image)
        w.key("remedy")
        w.string(f.remedy)
        w.key("rule")
        w.string(f.rule.rawValue)
        w.key("severity")
        w.string(f.severity.rawValue)
        w.endObject()
    }

    /// A process with a candidate image open for writing (the facts of the writer rules).
    static func write(writer x: ImageWriter, to w: inout JSONWriter, dates: inout DateText) {
        w.beginObject()
        w.key("args")
        w.strings(x.args)
        w.key("command")
        w.string(x.command)
        w.key("dev")
        w.device(x.device)
        w.key("fd")
        w.int(x.fd)
        w.key("host")
        w.string(x.host)
        w.key("inode")
        w.int(x.inode)
        w.key("open_mode")
        w.string(x.openMode.rawValue)
        w.key("path")
        w.string(x.path)
        w.key("pid")
        w.int(x.pid)
        w.key("started")
        w.string(x.started.map { dates.text($0) })
        w.key("storage")
        w.string(x.storage)
        w.key("uid")
        w.int(x.uid)
        w.key("user")
        w.string(x.user ?? x.uid.map(String.init))
        w.key("vm")
        w.string(x.vm)
        w.endObject()
    }

    /// ISO 8601 text of a date, as JSONOutput writes it, made once per distinct date
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

    /// `d.formatted(.iso8601)`'s text (`2026-12-01T09:30:27Z`: UTC, whole seconds, cut not
    /// rounded) without FormatStyle, whose first use costs a short run ~0.3 ms (perf, `list
    /// --json` on a quiet host).
    public static func iso8601(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var tmv = tm()
        guard gmtime_r(&t, &tmv) != nil, tmv.tm_year + 1900 >= 0, tmv.tm_year + 1900 <= 9999 else {
            return d.formatted(.iso8601)
        }
        var out = [UInt8]()
        out.reserveCapacity(20)
        func digits(_ v: Int32, _ n: Int) {
            var div: Int32 = 1
            for _ in 1..<n { div *= 10 }
            while div > 0 {
                out.append(UInt8(ascii: "0") + UInt8(v / div % 10))
                div /= 10
            }
        }
        digits(tmv.tm_year + 1900, 4); out.append(UInt8(ascii: "-"))
        digits(tmv.tm_mon + 1, 2); out.append(UInt8(ascii: "-"))
        digits(tmv.tm_mday, 2); out.append(UInt8(ascii: "T"))
        digits(tmv.tm_hour, 2); out.append(UInt8(ascii: ":"))
        digits(tmv.tm_min, 2); out.append(UInt8(ascii: ":"))
        digits(tmv.tm_sec, 2); out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }
}
