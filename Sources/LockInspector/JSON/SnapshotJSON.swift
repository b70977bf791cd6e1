import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// `list --json`: the images, every lock file found, and what could not be looked at.
/// Written by hand (JSONWriter): Foundation's JSONEncoder took ~0.4 s for 10k lock files.
/// Keys are sorted, snake_case, and every field is present (null when unknown), as in every
/// report; each concept in it has its one writer (`ModelJSON.swift`); the man page documents them.
public enum SnapshotJSON {
    /// What the object may carry beyond the scan: the version of locksmith that made it,
    /// the audit's findings and the writers they rest on (`list --audit`, what `audit
    /// --host` asks each host for), and the hosts of a cluster view.
    public struct Extras: Sendable {
        public var version: String?
        /// The audit's findings (then the snapshot's writers too); nil: neither is written.
        public var findings: [Finding]?
        public var hosts: [ClusterHost]?
        public init(version: String? = nil, findings: [Finding]? = nil, hosts: [ClusterHost]? = nil) {
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
        w.beginReport(host: host ?? s.host, generated: s.generated)
        if let v = extras.version { w.field("version", v) }
        if let findings = extras.findings { w.field("findings", findings) { w, f in w.finding(f, dates: &dates) } }
        if let hosts = extras.hosts { w.field("hosts", hosts) { w, h in w.clusterHost(h) } }
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
        w.field("unseen", s.unseen) { w, u in w.unseen(u) }
        if extras.findings != nil { w.field("writers", s.writers) { w, x in w.writer(x, dates: &dates) } }
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
        for i in p.pointee.holders.indices { w.holder(p.pointee.holders[i], dates: &dates) }
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
        for i in p.pointee.locks.indices { w.kernelLock(p.pointee.locks[i]) }
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
        for i in p.pointee.waiters.indices { w.holder(p.pointee.waiters[i], dates: &dates) }
        w.endArray()
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
