import ArgumentParser
import ImageLock

extension Locksmith {
    struct Try: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "try",
            abstract: "Take an image's lock and release it at once; name the holders if it is taken.",
            discussion: """
                Exit 0: the lock could be taken (and was released). Exit 1: someone holds a \
                conflicting lock; each holder is named with pid and command. Exit 2: could \
                not check (missing image, unusable lock file, ...).

                With --scheme lockfile (the default) a lock file that does not exist is \
                reported free and is not created; a lock dir that is world-writable \
                without the sticky bit gets a one-line warning (--strict: exit 2). With --scheme qemu the byte locks a \
                read-write (--exclusive) or read-only (--shared) QEMU would take are \
                taken and checked as QEMU checks them, and QEMU's own message is shown.

                An image named gluster://HOST[:PORT]/VOLUME/PATH is tested on the volume \
                through libgfapi (F_GETLK; nothing is taken): the holder's pid is what \
                it put in its lock request. When the lock is held and this node is a \
                Gluster server (the gluster CLI can reach glusterd), a brick statedump \
                also names the holder's host, lk-owner and client pid \
                (--no-statedump skips it). --timeout bounds each step against the server.

                Examples:
                  locksmith try vm1.qcow2
                  locksmith try --scheme qemu --shared vm1.qcow2 --json
                  locksmith try gluster://gl1/vmstore/vm1.qcow2
                """)

        @Argument(help: ArgumentHelp("The disk image.", valueName: "image"))
        var image: String

        @Flag var mode: ModeFlag = .exclusive

        @Option(help: ArgumentHelp("Lock scheme: lockfile, qemu or gluster (implied by a gluster:// image).",
                                   valueName: "scheme"))
        var scheme: TryScheme = .lockfile

        @OptionGroup var lockDir: LockDirOption

        @OptionGroup var gluster: GlusterOptions

        @Flag(help: "For a held gluster image: do not take a brick statedump to name the holder's host.")
        var noStatedump = false

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        @Flag(help: "Refuse (exit 2) a lock dir that is world-writable without the sticky bit, instead of warning.")
        var strict = false

        enum TryScheme: String, ExpressibleByArgument, CaseIterable {
            case lockfile, qemu, gluster
            var scheme: LockScheme {
                switch self {
                case .lockfile: return .lockfile
                case .qemu: return .qemu
                case .gluster: return .gluster
                }
            }
        }

        func run() throws {
            let locker = lockDir.locker(glusterTimeout: gluster.timeout)
            try checkLockDirectory(locker, image: image, scheme: scheme.scheme, strict: strict)
            var result = try reportingErrors {
                try locker.probe(image, scheme: scheme.scheme, mode: mode.mode)
            }
            var note: String?
            if result.scheme == .gluster, let c = result.contention, !noStatedump {
                (result.contention, note) = nameGlusterHolders(c, image: result.image, mode: result.mode, cli: gluster.cli)
            }
            if json {
                try JSONOutput.write(TryReport(result, note: note))
            } else {
                printHuman(result, note: note)
            }
            if !result.acquired { throw Status.held }
        }

        private func printHuman(_ r: ProbeResult, note: String?) {
            let what = "\(r.mode == .exclusive ? "an exclusive" : "a shared") lock (\(r.scheme.rawValue) scheme)"
            guard let c = r.contention else {
                var line = "\(r.image): free: \(what) can be taken"
                if let lf = r.lockFile {
                    line += r.lockFileExists ? " [lock file \(lf)]" : " [lock file \(lf) does not exist; not created]"
                }
                say(line)
                return
            }
            say("\(r.image): held: \(what) cannot be taken")
            if let first = c.qemuConflicts.first {
                say("  QEMU would say: \(first.message)")
                say("                  \(QemuConflict.hint(image: r.image))")
            }
            if let lf = r.lockFile { say("  lock file: \(lf)") }
            if r.scheme == .gluster {
                if c.glusterHolders.isEmpty { say("  holder: not known (F_GETLK did not say)") }
                for h in c.glusterHolders { say("  holder: \(describe(h))") }
                if let n = note { say("  (\(n))") }
                return
            }
            if c.holders.isEmpty {
                let pids = c.blocking.compactMap(\.pid)
                if pids.isEmpty, let fs = SharedFilesystem.of(path: r.image) {
                    say("  holder: not visible in this host's lock table (\(fs.name) keeps its locks on the server; `locksmith why` names the holder where it can)")
                } else if pids.isEmpty {
                    say("  holder: not visible from here (an OFD lock of a process whose fds cannot be read)")
                } else {
                    for p in pids { say("  holder: pid \(p)") }
                }
            }
            for h in c.holders { say("  holder: \(describe(h))") }
        }
    }
}

/// `try --json`.
struct TryReport: Encodable {
    /// Carrier strings (`PathBytes`): written with `image_bytes` / `lock_file_bytes` when
    /// they are not UTF-8 (`encodePath`).
    var image: String
    var scheme: String
    var mode: String
    var acquired: Bool
    var lockFile: String?
    var lockFileExists: Bool?
    var flavor: String?
    var qemuMessage: String?
    var holders: [HolderJSON]
    /// gluster scheme only: the holders on the volume, and why they could not be named further.
    var glusterHolders: [GlusterHolderJSON]?
    var glusterNote: String?

    struct GlusterHolderJSON: Encodable {
        var pid: Int32?
        var host: String?
        var type: String
        var start: Int64
        var end: Int64?
        var owner: String?
        var ownerHex: String?
        var clientPid: Int32?
        var source: String

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(pid, forKey: .pid)
            try c.encode(host, forKey: .host)
            try c.encode(type, forKey: .type)
            try c.encode(start, forKey: .start)
            try c.encode(end, forKey: .end)
            try c.encode(owner, forKey: .owner)
            try c.encode(ownerHex, forKey: .ownerHex)
            try c.encode(clientPid, forKey: .clientPid)
            try c.encode(source, forKey: .source)
        }
        enum CodingKeys: String, CodingKey { case pid, host, type, start, end, owner, ownerHex, clientPid, source }
    }

    struct HolderJSON: Encodable {
        var pid: Int32
        var command: String
        var fd: Int32?
        var lock: LockJSON

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(pid, forKey: .pid)
            try c.encode(command, forKey: .command)
            try c.encode(fd, forKey: .fd)
            try c.encode(lock, forKey: .lock)
        }
        enum CodingKeys: String, CodingKey { case pid, command, fd, lock }
    }

    init(_ r: ProbeResult, note: String? = nil) {
        image = r.image
        scheme = r.scheme.rawValue
        mode = r.mode.rawValue
        acquired = r.acquired
        lockFile = r.lockFile
        lockFileExists = r.lockFile == nil ? nil : r.lockFileExists
        flavor = r.flavor?.rawValue
        qemuMessage = r.contention?.qemuConflicts.first?.message
        holders = (r.contention?.holders ?? []).map {
            HolderJSON(pid: $0.pid, command: $0.command, fd: $0.fd, lock: LockJSON($0.lock))
        }
        if r.scheme == .gluster {
            glusterHolders = (r.contention?.glusterHolders ?? []).map {
                GlusterHolderJSON(pid: $0.pid, host: $0.host, type: $0.type.rawValue, start: $0.range.start,
                                  end: $0.range.end, owner: $0.owner?.text, ownerHex: $0.owner?.hex,
                                  clientPid: $0.clientPID, source: $0.source.rawValue)
            }
            glusterNote = note
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodePath(image, forKey: .image, bytesKey: .imageBytes)
        try c.encode(scheme, forKey: .scheme)
        try c.encode(mode, forKey: .mode)
        try c.encode(acquired, forKey: .acquired)
        try c.encodePath(lockFile, forKey: .lockFile, bytesKey: .lockFileBytes)
        try c.encode(lockFileExists, forKey: .lockFileExists)
        try c.encode(flavor, forKey: .flavor)
        try c.encode(qemuMessage, forKey: .qemuMessage)
        try c.encode(holders, forKey: .holders)
        if let g = glusterHolders {
            try c.encode(g, forKey: .glusterHolders)
            try c.encode(glusterNote, forKey: .glusterNote)
        }
    }

    enum CodingKeys: String, CodingKey {
        case image, imageBytes, scheme, mode, acquired, lockFile, lockFileBytes, lockFileExists, flavor, qemuMessage, holders
        case glusterHolders, glusterNote
    }
}

/// A kernel lock row in JSON: `start`/`end` as /proc/locks prints them (end inclusive, null for EOF).
struct LockJSON: Encodable {
    var type: String
    var mode: String
    var start: Int64
    var end: Int64?
    var dev: String?
    var inode: UInt64?
    var pid: Int32?
    var blockedBy: Int?

    init(_ l: KernelLock) {
        type = l.kind.rawValue
        mode = l.type
        start = l.start
        end = l.end
        dev = l.device?.description
        inode = l.inode
        pid = l.pid ?? -1
        blockedBy = l.blockedBy
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(mode, forKey: .mode)
        try c.encode(start, forKey: .start)
        try c.encode(end, forKey: .end)
        try c.encode(dev, forKey: .dev)
        try c.encode(inode, forKey: .inode)
        try c.encode(pid, forKey: .pid)
        try c.encode(blockedBy, forKey: .blockedBy)
    }
    enum CodingKeys: String, CodingKey { case type, mode, start, end, dev, inode, pid, blockedBy }
}
