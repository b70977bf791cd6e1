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

                --gluster HOST[:PORT]/VOLUME (repeatable) also walks the volume through \
                libgfapi (from --gluster-path, 8 levels deep) and probes each image file \
                (every regular file with --all-files) with F_GETLK: a locked one is listed \
                as gluster://HOST/VOLUME/PATH with its holder's pid. --force takes one brick \
                statedump per volume (a server node) to name every holder with its host. \
                A volume that cannot be scanned at all is one line on stderr and exit 2, \
                after the rest is printed; --timeout bounds each step.

                Examples:
                  locksmith list
                  locksmith list -o +fd,open,held,unshared,lockfile
                  locksmith list --json --lock-dir /var/tmp --images /var/lib/libvirt/images
                  locksmith list --gluster gl1/vmstore --gluster-path /vms --force
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

        @OptionGroup var scan: ScanOptions

        @Flag(help: .hidden)
        var timing = false

        func validate() throws {
            if let o = output, case .failure(let e) = Column.parse(o) { throw ValidationError(e.description) }
        }

        var options: InspectorOptions { scan.inspectorOptions }

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
                print(try JSONOutput.render(ListReport(snapshot), generated: snapshot.generated))
                try failIfGlusterVolumesUnscanned(snapshot)  // gluster hook: exit 2
                return
            }
            let columns = try output.map { try Column.parse($0).get() } ?? Column.defaults(for: LockRow.rows(of: snapshot))
            FileHandle.standardOutput.write(Data(Table.render(LockRow.rows(of: snapshot), columns: columns,
                                                              headings: !noHeadings).utf8))
            try failIfGlusterVolumesUnscanned(snapshot)  // gluster hook: exit 2
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
struct ListReport: Encodable {
    var images: [ImageJSON]
    var lockFiles: [LockFileJSON]
    var unseen: [UnseenJSON]

    init(_ s: Snapshot) {
        images = s.images.map(ImageJSON.init)
        lockFiles = s.lockFiles.map(LockFileJSON.init)
        unseen = s.unseen.map { UnseenJSON(what: $0.what, why: $0.why) }
    }

    struct UnseenJSON: Encodable {
        var what: String
        var why: String
    }
}

struct ImageJSON: Encodable {
    var image: ImageLocks

    init(_ image: ImageLocks) { self.image = image }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(image.path, forKey: .path)
        try c.encode(image.device?.description, forKey: .dev)
        try c.encode(image.inode, forKey: .inode)
        try c.encode(image.schemes.map(\.rawValue), forKey: .schemes)
        try c.encode(image.lockFiles, forKey: .lockFiles)
        try c.encode(image.holders.map(HolderJSON.init), forKey: .holders)
        try c.encode(image.waiters.map(HolderJSON.init), forKey: .waiters)
        try c.encode(image.locks.map(LockJSON.init), forKey: .locks)
    }

    enum CodingKeys: String, CodingKey { case path, dev, inode, schemes, lockFiles, holders, waiters, locks }
}

struct HolderJSON: Encodable {
    var holder: Holder

    init(_ holder: Holder) { self.holder = holder }

    func encode(to encoder: Encoder) throws {
        let h = holder
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(h.pid, forKey: .pid)
        try c.encode(h.command, forKey: .command)
        try c.encode(h.args, forKey: .args)
        try c.encode(h.user ?? h.uid.map(String.init), forKey: .user)
        try c.encode(h.uid, forKey: .uid)
        try c.encode(h.started.map { $0.formatted(.iso8601) }, forKey: .started)
        try c.encode(h.fd, forKey: .fd)
        try c.encode(h.openMode?.rawValue, forKey: .openMode)
        try c.encode(h.vm, forKey: .vm)
        try c.encode(h.scheme.rawValue, forKey: .scheme)
        try c.encode(h.modeSummary, forKey: .mode)
        if let q = h.qemu {
            try c.encode(["held": q.held.sorted().map(\.name), "unshared": q.unshared.sorted().map(\.name)], forKey: .qemu)
        } else {
            try c.encodeNil(forKey: .qemu)
        }
        try encodeGlusterHost(h.host, to: encoder)  // gluster hook: "host"
    }

    enum CodingKeys: String, CodingKey { case pid, command, args, user, uid, started, fd, openMode, vm, scheme, mode, qemu }
}

struct LockFileJSON: Encodable {
    var entry: LockFileEntry

    init(_ entry: LockFileEntry) { self.entry = entry }

    func encode(to encoder: Encoder) throws {
        let e = entry
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(e.path, forKey: .path)
        try c.encode(e.kind.rawValue, forKey: .kind)
        try c.encode(e.device?.description, forKey: .dev)
        try c.encode(e.inode, forKey: .inode)
        try c.encode(e.held, forKey: .held)
        try c.encode(e.image, forKey: .image)
        try c.encode(e.mappedBy, forKey: .mappedBy)
    }

    enum CodingKeys: String, CodingKey { case path, kind, dev, inode, held, image, mappedBy }
}
