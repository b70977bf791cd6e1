import FoundationEssentials
import ImageLock

/// Reads another host's `list --json` back into a `Snapshot` and its findings (`list --audit`). The text is hostile: it is
/// decoded strictly (schema 1; each field of the type the schema says, numbers in range,
/// known schemes, rules and permissions; unknown keys ignored, as the schema's additive
/// policy allows), and its strings are kept as data: whatever prints them escapes them.
/// Its size is bounded by the caller (`ClusterQuery.maxAnswer`).
public enum RemoteSnapshot {
    /// Why an answer was refused, in one line.
    public struct Rejected: Error, CustomStringConvertible {
        public var description: String
    }

    /// The snapshot with its findings (none unless the host was asked with `--audit`) and the
    /// locksmith version the answer names (nil when it names none).
    public static func parse(_ bytes: [UInt8]) throws -> (AuditedSnapshot, String?) {
        let data = Data(bytes)
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let envelope: Envelope
        do {
            envelope = try d.decode(Envelope.self, from: data)
        } catch {
            throw Rejected(description: "bad answer: not a locksmith list --json object (\(reason(error)))")
        }
        guard envelope.schema == 1 else {
            throw Rejected(description: "answers in JSON schema \(envelope.schema), not 1 (another locksmith version)")
        }
        let w: Wire
        do {
            w = try d.decode(Wire.self, from: data)
        } catch {
            throw Rejected(description: "bad answer: \(reason(error))")
        }
        do {
            return (try w.snapshot(), w.version)
        } catch let e as Rejected {
            throw Rejected(description: "bad answer: \(e.description)")
        }
    }

    /// A decoding error in a few words: where, and what was wrong.
    static func reason(_ error: Error) -> String {
        func path(_ p: [CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at \(ClusterText.line(path(c.codingPath)))"
        case DecodingError.keyNotFound(let k, let c):
            return "missing \(ClusterText.line(path(c.codingPath + [k])))"
        case DecodingError.dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not JSON" : "bad value at \(ClusterText.line(path(c.codingPath)))"
        default:
            return "not JSON"
        }
    }

    struct Envelope: Decodable {
        var schema: Int
    }

    struct Wire: Decodable {
        var host: String
        var generated: String?
        var version: String?
        var images: [Image]
        var lockFiles: [LockFile]
        var unseen: [WireUnseen]
        var findings: [WireFinding]?
        var writers: [Writer]?

        func snapshot() throws -> AuditedSnapshot {
            let s = Snapshot(host: host, generated: generated.flatMap(date) ?? Date(),
                             images: try images.map { try $0.model() }, lockFiles: try lockFiles.map { try $0.model() },
                             unseen: unseen.map { Unseen(what: $0.what, why: $0.why) },
                             writers: try (writers ?? []).map { try $0.model() })
            return AuditedSnapshot(s, findings: try (findings ?? []).map { try $0.model() })
        }
    }

    struct Image: Decodable {
        var dev: String?
        var holders: [WireHolder]
        var inode: UInt64?
        var lockFiles: [String]
        var locks: [Lock]
        var path: String?
        var schemes: [String]
        var storage: String?
        var waiters: [WireHolder]

        func model() throws -> ImageLocks {
            let device = try dev.map(deviceID)
            var img = ImageLocks(id: path ?? lockFiles.first ?? "\(dev ?? "-"):\(inode ?? 0)", path: path, device: device,
                                 inode: inode, schemes: try schemes.map(scheme), lockFiles: lockFiles,
                                 holders: try holders.map { try $0.model() }, waiters: try waiters.map { try $0.model() },
                                 locks: try locks.enumerated().map { try $0.element.model(id: $0.offset) })
            img.storage = storage
            return img
        }
    }

    struct WireHolder: Decodable {
        var args: [String]
        var command: String
        var fd: Int32?
        var host: String?
        var mode: String?
        var openMode: String?
        var pid: Int32
        var qemu: Perms?
        var scheme: String
        var started: String?
        var statedump: Statedump?
        var uid: UInt32?
        var user: String?
        var vm: String?

        struct Statedump: Decodable {
            var clientPid: Int32?
            var granted: String?
            var locksmithOwner: Bool
        }

        func model() throws -> Holder {
            let perms = try qemu.map { try QemuPermissions(held: Set($0.held.map(permission)), unshared: Set($0.unshared.map(permission))) }
            let type: LockType? = mode == "write" ? .write : mode == "read" ? .read
                : perms.map { $0.held.contains(.write) ? .write : .read }
            var h = Holder(pid: pid, command: command, args: args, user: user, uid: uid, started: started.flatMap(date),
                           fd: fd, openMode: try openMode.map(openModeOf), vm: vm, scheme: try RemoteSnapshot.scheme(self.scheme),
                           lockType: type, qemu: perms, host: host)
            h.statedump = statedump.map { StatedumpNaming(clientPID: $0.clientPid, locksmithOwner: $0.locksmithOwner,
                                                          granted: $0.granted.flatMap(date)) }
            return h
        }
    }

    struct Perms: Decodable {
        var held: [String]
        var unshared: [String]
    }

    struct Lock: Decodable {
        var blockedBy: Int?
        var dev: String?
        var end: Int64?
        var inode: UInt64?
        var mode: String
        var pid: Int32
        var start: Int64
        var type: String

        func model(id: Int) throws -> KernelLock {
            KernelLock(id: id, kind: KernelLock.Kind(rawValue: type), mode: "ADVISORY", type: mode, pid: pid < 0 ? nil : pid,
                       device: try dev.map(deviceID), inode: inode, start: start, end: end, blockedBy: blockedBy)
        }
    }

    struct LockFile: Decodable {
        var dev: String?
        var held: Bool
        var image: String?
        var inode: UInt64
        var kind: String
        var mappedBy: String?
        var path: String

        func model() throws -> LockFileEntry {
            guard let k = FileKind(rawValue: kind) else { throw Rejected(description: "unknown file kind") }
            return LockFileEntry(path: path, kind: k, device: try dev.map(deviceID), inode: inode, held: held,
                                 image: image, mappedBy: mappedBy)
        }
    }

    struct WireUnseen: Decodable {
        var what: String
        var why: String
    }

    struct Writer: Decodable {
        var args: [String]
        var command: String
        var dev: String?
        var fd: Int32
        var inode: UInt64?
        var openMode: String
        var path: String
        var pid: Int32
        var started: String?
        var storage: String?
        var uid: UInt32?
        var user: String?
        var vm: String?

        func model() throws -> ImageWriter {
            var w = ImageWriter(path: path, device: try dev.map(deviceID), inode: inode, pid: pid, fd: fd,
                                openMode: try openModeOf(openMode), command: command, args: args, user: user, uid: uid,
                                started: started.flatMap(date), vm: vm)
            w.storage = storage
            return w
        }
    }

    struct WireFinding: Decodable {
        var evidence: String
        var files: [String]
        var holders: [Involved]
        var image: String?
        var remedy: String
        var rule: String
        var severity: String

        func model() throws -> Finding {
            guard let r = AuditRule(rawValue: rule) else { throw Rejected(description: "unknown audit rule") }
            guard let s = Severity(rawValue: severity) else { throw Rejected(description: "unknown severity") }
            return Finding(rule: r, severity: s, image: image, holders: try holders.map { try $0.model() }, files: files,
                           evidence: evidence, remedy: remedy)
        }
    }

    struct Involved: Decodable {
        var args: [String]
        var command: String
        var fd: Int32?
        var mode: String?
        var openMode: String?
        var pid: Int32
        var role: String
        var scheme: String?
        var started: String?
        var uid: UInt32?
        var user: String?
        var vm: String?
        var waitedSeconds: Double?

        func model() throws -> InvolvedProcess {
            guard let r = InvolvedProcess.Role(rawValue: role) else { throw Rejected(description: "unknown role") }
            return InvolvedProcess(role: r, pid: pid, command: command, args: args, user: user, uid: uid,
                                   started: started.flatMap(date), fd: fd, openMode: try openMode.map(openModeOf), vm: vm,
                                   scheme: try scheme.map(RemoteSnapshot.scheme), mode: mode, waitedSeconds: waitedSeconds)
        }
    }

    static func deviceID(_ text: String) throws -> DeviceID {
        guard text.utf8.count <= 20, let d = DeviceID(Substring(text)) else { throw Rejected(description: "bad device") }
        return d
    }

    static func scheme(_ text: String) throws -> LockScheme {
        guard let s = LockScheme(rawValue: text) else { throw Rejected(description: "unknown lock scheme") }
        return s
    }

    static func permission(_ text: String) throws -> QemuPermission {
        guard let p = QemuPermission(name: text) else { throw Rejected(description: "unknown QEMU permission") }
        return p
    }

    static func openModeOf(_ text: String) throws -> OpenMode {
        guard let m = OpenMode(rawValue: text) else { throw Rejected(description: "unknown open mode") }
        return m
    }

    static func date(_ text: String) -> Date? {
        try? Date(text, strategy: .iso8601)
    }
}
