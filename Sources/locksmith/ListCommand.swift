import ArgumentParser
import Foundation
import ImageLock
import LockInspector

extension Locksmith {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every image lock on this host, grouped by image, with the exact holders.",
            discussion: """
                One pass over /proc/locks, every process's open files (/proc/PID/fd and \
                fdinfo), the lock dirs and the candidate images. Each holder is named by \
                pid and fd, also for OFD locks (which /proc/locks shows with pid -1): two \
                processes holding the same read locks are two holders. Schemes: lockfile \
                (.qemu-<sha1>.lock in the lock dirs, held or stale), qemu (QEMU's byte \
                locks 100-104/200-204 inside the image, decoded into permissions held and \
                not shared), virtlockd (byte 0 of the image, or lease files).

                A lock file's image is found by hashing candidate paths (files open by any \
                process, --images dirs, libvirt domain XML, file= in QEMU's arguments), \
                else from the realpath written inside it, trusted only if its SHA-1 matches \
                the name. An image that cannot be found is shown as <unknown> with its lock file.

                What could not be looked at (another user's processes when not root, an \
                unreadable lock dir) is counted on stderr and listed under "unseen" in JSON. \
                Exit status: 0, also when nothing is locked; 2 when /proc cannot be read.

                Examples:
                  locksmith list
                  locksmith list -o +fd,open,held,unshared,lockfile
                  locksmith list --json --lock-dir /var/tmp --images /var/lib/libvirt/images
                """)

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        @Option(name: .short, help: ArgumentHelp(
            "Columns to show, comma-separated; a leading + adds them to the defaults (see --list-columns).",
            valueName: "columns"))
        var output: String?

        @Flag(help: "List the columns -o accepts, and exit.")
        var listColumns = false

        @Flag(name: .customLong("no-headings"), help: "Leave out the header line.")
        var noHeadings = false

        @Option(name: .customLong("lock-dir"), help: ArgumentHelp(
            "A directory of lock files (repeatable; default /var/tmp).", valueName: "dir"))
        var lockDirectories: [String] = []

        @Option(name: .customLong("images"), help: ArgumentHelp(
            "A directory of images, to name the images of lock files (repeatable).", valueName: "dir"))
        var imageDirectories: [String] = []

        @Option(name: .customLong("proc"), help: ArgumentHelp(
            "Read this directory instead of /proc (a copy or a test fixture).", valueName: "dir"))
        var procRoot: String = "/proc"

        @Flag(help: .hidden)
        var timing = false

        func validate() throws {
            if let o = output, case .failure(let e) = Column.parse(o) { throw ValidationError(e.description) }
        }

        var options: InspectorOptions {
            InspectorOptions(procRoot: procRoot,
                             lockDirectories: lockDirectories.isEmpty ? InspectorOptions.defaultLockDirectories : lockDirectories,
                             imageDirectories: imageDirectories)
        }

        func run() throws {
            if listColumns {
                for c in Column.allCases {
                    print(c.header.padding(toLength: 10, withPad: " ", startingAt: 0) + c.help)
                }
                return
            }
            let snapshot: Snapshot
            do {
                var t = SnapshotTimings()
                snapshot = try Inspector(options).snapshot(timings: &t)
                if timing {
                    func ms(_ s: Double) -> String { String(format: "%.1f ms", s * 1000) }
                    complain("timing: total \(ms(t.total)) = /proc/locks \(ms(t.kernelLocks)), lock dirs \(ms(t.lockDirectories)), "
                             + "processes \(ms(t.processes)), mapping \(ms(t.mapping)); \(t.fds) fds, "
                             + "\(t.fdinfoReads) fdinfo reads, \(t.contentReads) lock-file reads")
                }
            } catch let e as InspectorError {
                complain(e.description)
                throw Status.couldNotCheck
            }
            if json {
                var out = ListJSON.render(snapshot)
                out.append(UInt8(ascii: "\n"))
                FileHandle.standardOutput.write(Data(out))
                return
            }
            let columns = try output.map { try Column.parse($0).get() } ?? Column.defaults
            FileHandle.standardOutput.write(Data(Table.render(LockRow.rows(of: snapshot), columns: columns,
                                                              headings: !noHeadings).utf8))
            if !snapshot.unseen.isEmpty {
                complain("note: \(snapshot.unseen.count) thing(s) could not be looked at"
                         + (geteuid() == 0 ? "" : " (run as root to see every holder)")
                         + "; `locksmith list --json` lists them under \"unseen\"")
            }
        }
    }
}

/// The lock table as text: one line per row, columns as wide as their widest cell
/// (the last one unpadded), numbers right-aligned.
enum Table {
    static func render(_ rows: [LockRow], columns: [Column], headings: Bool = true, now: Date = Date()) -> String {
        var lines: [[String]] = headings ? [columns.map(\.header)] : []
        lines += rows.map { r in columns.map { $0.cell(r, now: now) } }
        guard !lines.isEmpty else { return "" }
        var widths = columns.map { _ in 0 }
        for l in lines { for (i, cell) in l.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for l in lines {
            var parts: [String] = []
            for (i, cell) in l.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let last = i == l.count - 1
                parts.append(columns[i].rightAligned ? pad + cell : (last ? cell : cell + pad))
            }
            out += parts.joined(separator: " ") + "\n"
        }
        return out
    }
}

// MARK: - JSON

/// `list --json`: the images, every lock file found, and what could not be looked at.
/// Written by hand (JSONWriter): Foundation's JSONEncoder took ~0.4 s for 10k lock files.
/// Keys are sorted, snake_case, and every field is present (null when unknown), as
/// JSONOutput writes other reports; the man page documents them.
enum ListJSON {
    static func render(_ s: Snapshot) -> [UInt8] {
        var w = JSONWriter(capacity: 4096 + s.lockFiles.count * 400 + s.images.count * 600)
        var dates = DateText()
        w.beginObject()
        w.key("schema")
        w.int(1)
        w.key("host")
        w.string(JSONOutput.host)
        w.key("generated")
        w.string(dates.text(s.generated))
        w.key("images")
        w.beginArray()
        for image in s.images { write(image, to: &w, dates: &dates) }
        w.endArray()
        w.key("lock_files")
        w.beginArray()
        for e in s.lockFiles { write(e, to: &w) }
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
        w.endObject()
        return w.bytes
    }

    static func write(_ image: ImageLocks, to w: inout JSONWriter, dates: inout DateText) {
        w.beginObject()
        w.key("dev")
        w.string(image.device?.description)
        w.key("holders")
        w.beginArray()
        for h in image.holders { write(h, to: &w, dates: &dates) }
        w.endArray()
        w.key("inode")
        w.int(image.inode)
        w.key("lock_files")
        w.strings(image.lockFiles)
        w.key("locks")
        w.beginArray()
        for l in image.locks { write(l, to: &w) }
        w.endArray()
        w.key("path")
        w.string(image.path)
        w.key("schemes")
        w.beginArray()
        for sc in image.schemes { w.string(sc.rawValue) }
        w.endArray()
        w.key("waiters")
        w.beginArray()
        for h in image.waiters { write(h, to: &w, dates: &dates) }
        w.endArray()
        w.endObject()
    }

    static func write(_ h: Holder, to w: inout JSONWriter, dates: inout DateText) {
        w.beginObject()
        w.key("args")
        w.strings(h.args)
        w.key("command")
        w.string(h.command)
        w.key("fd")
        w.int(h.fd)
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
        w.key("uid")
        w.int(h.uid)
        w.key("user")
        w.string(h.user ?? h.uid.map(String.init))
        w.key("vm")
        w.string(h.vm)
        w.endObject()
    }

    /// A kernel lock row: `start`/`end` as /proc/locks prints them (end inclusive, null for EOF).
    static func write(_ l: KernelLock, to w: inout JSONWriter) {
        w.beginObject()
        w.key("blocked_by")
        w.int(l.blockedBy)
        w.key("dev")
        w.string(l.device?.description)
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
        w.string(l.kind)
        w.endObject()
    }

    static func write(_ e: LockFileEntry, to w: inout JSONWriter) {
        w.beginObject()
        w.key("dev")
        w.string(e.device?.description)
        w.key("held")
        w.bool(e.held)
        w.key("image")
        w.string(e.image)
        w.key("inode")
        w.int(e.inode)
        w.key("kind")
        w.string(e.kind.rawValue)
        w.key("mapped_by")
        w.string(e.mappedBy)
        w.key("path")
        w.string(e.path)
        w.endObject()
    }

    /// ISO 8601 text of a date, as JSONOutput writes it, made once per distinct date
    /// (thousands of holders share a few start times).
    struct DateText {
        var cache: [Date: String] = [:]
        mutating func text(_ d: Date) -> String {
            if let t = cache[d] { return t }
            let t = d.formatted(.iso8601)
            cache[d] = t
            return t
        }
    }
}
