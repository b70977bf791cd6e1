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
                reported free and is not created. With --scheme qemu the byte locks a \
                read-write (--exclusive) or read-only (--shared) QEMU would take are \
                taken and checked as QEMU checks them, and QEMU's own message is shown.

                Examples:
                  locksmith try vm1.qcow2
                  locksmith try --scheme qemu --shared vm1.qcow2 --json
                """)

        @Argument(help: ArgumentHelp("The disk image.", valueName: "image"))
        var image: String

        @Flag var mode: ModeFlag = .exclusive

        @Option(help: ArgumentHelp("Lock scheme: lockfile or qemu.", valueName: "scheme"))
        var scheme: TryScheme = .lockfile

        @OptionGroup var lockDir: LockDirOption

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        enum TryScheme: String, ExpressibleByArgument, CaseIterable {
            case lockfile, qemu
            var scheme: LockScheme { self == .qemu ? .qemu : .lockfile }
        }

        func run() throws {
            let result = try reportingErrors {
                try lockDir.locker().probe(image, scheme: scheme.scheme, mode: mode.mode)
            }
            if json {
                try JSONOutput.write(TryReport(result))
            } else {
                printHuman(result)
            }
            if !result.acquired { throw Status.held }
        }

        private func printHuman(_ r: ProbeResult) {
            let what = "\(r.mode == .exclusive ? "an exclusive" : "a shared") lock (\(r.scheme.rawValue) scheme)"
            guard let c = r.contention else {
                var line = "\(r.image): free: \(what) can be taken"
                if let lf = r.lockFile {
                    line += r.lockFileExists ? " [lock file \(lf)]" : " [lock file \(lf) does not exist; not created]"
                }
                print(line)
                return
            }
            print("\(r.image): held: \(what) cannot be taken")
            if let first = c.qemuConflicts.first {
                print("  QEMU would say: \(first.message)")
                print("                  \(QemuConflict.hint(image: r.image))")
            }
            if let lf = r.lockFile { print("  lock file: \(lf)") }
            if c.holders.isEmpty {
                let pids = c.blocking.compactMap(\.pid)
                if pids.isEmpty {
                    print("  holder: not visible from here (an OFD lock of a process whose fds cannot be read)")
                } else {
                    for p in pids { print("  holder: pid \(p)") }
                }
            }
            for h in c.holders { print("  holder: \(describe(h))") }
        }
    }
}

/// `try --json`.
struct TryReport: Encodable {
    var image: String
    var scheme: String
    var mode: String
    var acquired: Bool
    var lockFile: String?
    var lockFileExists: Bool?
    var flavor: String?
    var qemuMessage: String?
    var holders: [HolderJSON]

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

    init(_ r: ProbeResult) {
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
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(image, forKey: .image)
        try c.encode(scheme, forKey: .scheme)
        try c.encode(mode, forKey: .mode)
        try c.encode(acquired, forKey: .acquired)
        try c.encode(lockFile, forKey: .lockFile)
        try c.encode(lockFileExists, forKey: .lockFileExists)
        try c.encode(flavor, forKey: .flavor)
        try c.encode(qemuMessage, forKey: .qemuMessage)
        try c.encode(holders, forKey: .holders)
    }

    enum CodingKeys: String, CodingKey {
        case image, scheme, mode, acquired, lockFile, lockFileExists, flavor, qemuMessage, holders
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
        type = l.kind
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
