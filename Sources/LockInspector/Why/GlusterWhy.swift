import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// `why gluster://HOST[:PORT]/VOLUME/PATH`: would a whole-file lock of the gluster scheme
/// (F_WRLCK for --write, F_RDLCK for --read-only, through glfs_posix_lock) be granted, who
/// holds what stands in the way (pid, and host when it can be known), and what to do.
///
/// The answer comes from F_GETLK on the volume through the core's probe (nothing is taken),
/// so it is proven, not inferred. F_GETLK names one holder and only its l_pid; a brick
/// statedump (on a server node; skipped with `--no-statedump`) names every holder with its host,
/// including holders that are not locksmith (fcntl users on FUSE mounts).
/// QEMU's own gluster driver (block/gluster.c) takes no image locks: this is about the
/// gluster scheme's users, not about QEMU's byte locks.
public enum GlusterWhy {
    /// What the verdict rests on (gathered by `gather`, judged by `verdict`).
    public struct Input: Sendable, Equatable {
        public enum Probe: Sendable, Equatable {
            /// The lock would be granted.
            case free
            /// Refused; who holds the conflicting locks (F_GETLK's one, or a statedump's all).
            case held([GlusterLockHolder])
            /// Could not probe.
            case failed(ImageLockError)
        }

        /// The image as the caller named it (`why`'s argument).
        public var imageAsGiven: String
        public var intent: OpenIntent
        public var probe: Probe
        /// Whether the holders come from a statedump (hosts known).
        public var fromStatedump: Bool
        /// Why holders could not be named further (no server node, statedump failed...).
        public var namingNote: String?
        /// This host's name: holders on it are local processes.
        public var localHost: String
        /// /proc details of holders on this host, by pid.
        public var local: [Int32: ProcessDetails]

        public init(imageAsGiven: String, intent: OpenIntent, probe: Probe, fromStatedump: Bool = false, namingNote: String? = nil,
                    localHost: String, local: [Int32: ProcessDetails] = [:]) {
            self.imageAsGiven = imageAsGiven
            self.intent = intent
            self.probe = probe
            self.fromStatedump = fromStatedump
            self.namingNote = namingNote
            self.localHost = localHost
            self.local = local
        }

        /// The URL's canonical spelling, or the name as given when it does not parse.
        var image: String { (try? GlusterURL(parsing: imageAsGiven))?.description ?? imageAsGiven }
    }

    /// Probes the image (F_GETLK through `locker`, bounded by its gluster timeout) and, with
    /// `statedump` and a lock in the way, names the holders from a brick statedump via `cli`
    /// (on a server node; elsewhere the note says why not).
    public static func gather(imageAsGiven: String, intent: OpenIntent, statedump: Bool, locker: ImageLocker, cli: GlusterCLI,
                              procRoot: String = "/proc") -> Input {
        let host = Sys.hostName
        let mode = intent.lockMode
        var input = Input(imageAsGiven: imageAsGiven, intent: intent, probe: .free, localHost: host)
        do {
            let r = try locker.probe(imageAsGiven, scheme: .gluster, mode: mode)
            guard var c = r.contention else { return input }
            if statedump {
                let naming = GlusterHolderNaming.name(c, image: r.image, mode: mode, cli: cli)
                c = naming.contention
                input.namingNote = naming.note
                input.fromStatedump = c.glusterHolders.contains { $0.source == .statedump }
            }
            input.probe = .held(c.glusterHolders)
            input.local = GlusterHolderNaming.localDetails(c.glusterHolders, localHost: host, procRoot: procRoot)
        } catch let e as ImageLockError {
            input.probe = .failed(e)
        } catch {
            input.probe = .failed(.unsupported("\(error)"))
        }
        return input
    }

    /// The verdict, in the shape of every other `why`. No system calls.
    public static func verdict(_ input: Input) -> Verdict {
        let image = input.image
        let want: LockType = input.intent == .write ? .write : .read
        let lockName = want == .write ? "whole-file WRITE lock (F_WRLCK)" : "whole-file READ lock (F_RDLCK)"
        var reasons: [Reason] = []
        var blockers: [Blocker] = []
        var facts: [Fact] = []
        var exists = true
        switch input.probe {
        case .free:
            facts.append(Fact(statement: "F_GETLK through glfs_posix_lock: a \(lockName) on \(image) would be granted", proven: true))
        case .held(let holders):
            facts.append(Fact(statement: "F_GETLK through glfs_posix_lock: a \(lockName) on \(image) would be refused", proven: true))
            if input.fromStatedump {
                facts.append(Fact(statement: "a brick statedump names \(holders.count) holder\(holders.count == 1 ? "" : "s") with \(holders.count == 1 ? "its" : "their") host", proven: true))
            } else if let note = input.namingNote {
                facts.append(Fact(statement: "holders' hosts not named: \(note)", proven: false))
            }
            let shown = holders.isEmpty ? [GlusterLockHolder(type: .write, range: .wholeFile, pid: nil, source: .getlk)] : holders
            for h in shown { blockers.append(blocker(h, image: image, input: input)) }
        case .failed(let e):
            switch e {
            case .imageMissing:
                exists = false
                reasons.append(Reason(kind: .imageMissing, path: image, message: "\(image): no such file on the volume",
                                      remedy: "check the path: the disk may have been moved, renamed or deleted", blocks: true))
            case .notAnImage(_, let kind):
                reasons.append(Reason(kind: .notADisk, path: image,
                                      message: "\(image) is a \(kind.rawValue), not a disk image (a regular file)",
                                      remedy: "name the disk image file itself", blocks: true))
            case .glusterUnreachable(_, let volume, let errno) where errno == ENOENT:
                reasons.append(Reason(kind: .cannotInspect, path: image, message: e.description,
                                      remedy: "check the volume name: `gluster volume list` on a server lists them (is \(volume) started?)",
                                      blocks: false))
            case .glusterTimedOut, .glusterUnreachable:
                reasons.append(Reason(kind: .cannotInspect, path: image, message: e.description,
                                      remedy: "check that glusterd and the volume's bricks are up and reachable from here (`gluster volume status` on a server)",
                                      blocks: false))
            default:
                reasons.append(Reason(kind: .cannotInspect, path: image, message: e.description,
                                      remedy: "name the image as gluster://HOST[:PORT]/VOLUME/PATH, on a build with Gluster support",
                                      blocks: false))
            }
        }
        let outcome: Verdict.Outcome =
            !blockers.isEmpty || reasons.contains(where: \.blocks) ? .fails : reasons.isEmpty ? .opens : .unknown
        let chain = ChainEntry(path: image, name: input.imageAsGiven, backingName: nil, format: "unknown", exists: exists, problem: nil,
                               holders: blockers.compactMap { b in
                                   b.pid.map { ChainEntry.ChainHolder(pid: $0, command: b.command ?? "?", vm: b.vm, lock: b.lock, via: nil) }
                               },
                               opened: true)
        return Verdict(image: image, imageAsGiven: input.imageAsGiven, intent: input.intent, outcome: outcome, qemuMessage: nil, qemuHint: nil,
                       qemuFailures: [], blockers: blockers, reasons: reasons, chain: [chain], waiters: [], facts: facts)
    }

    static func blocker(_ h: GlusterLockHolder, image: String, input: Input) -> Blocker {
        let d = h.pid.flatMap { input.local[$0] }
        let onHere = h.host != nil && h.host == input.localHost
        let who = h.pid.map { "pid \($0)" + (d.map { " (\($0.command))" } ?? "") } ?? "the holder"
        let clear = "if its host is down or cut off from the servers, `locksmith clear-locks \(image)` on a server node drops the lock"
        let remedy: String
        if onHere {
            remedy = "stop \(who) on this host, or wait for it to finish"
        } else if let host = h.host {
            remedy = "stop \(who) on host \(host), or wait for it; \(clear)"
        } else if input.fromStatedump || h.source == .statedump {
            remedy = "stop \(who) on the host that holds it, or wait for it; \(clear)"
        } else {
            remedy = "stop \(who) on the host that holds it (F_GETLK tells only the pid: `locksmith why \(image)` on a server node names the host); \(clear)"
        }
        let conflict = h.type == .write ? "exclusive" : "shared"
        return Blocker(pid: h.pid.flatMap { $0 > 0 ? $0 : nil }, command: d?.command, args: d?.args ?? [], vm: d?.vm,
                       user: d?.user, started: d?.started, fd: nil, openMode: nil, scheme: .gluster, holds: image, via: nil,
                       lock: h.type == .write ? "write" : "read", conflict: [conflict], remedy: remedy, proven: true,
                       host: h.host)
    }
}

/// Naming the holders of a busy gluster lock beyond F_GETLK's pid: from a brick statedump
/// (server nodes only), and from /proc for holders on this host.
public enum GlusterHolderNaming {
    /// The holders of locks that conflict with one of `type` on `image`, from a statedump
    /// taken through `cli`; the contention unchanged, and why, when that cannot be done.
    public static func name(_ c: Contention, image: String, type: LockType, cli: GlusterCLI)
        -> (contention: Contention, note: String?) {
        guard let url = try? GlusterURL(parsing: image) else { return (c, nil) }
        guard cli.isUsable else {
            return (c, "host unknown: naming it needs a statedump, which needs the gluster CLI and glusterd on this node (a server of the volume)")
        }
        do {
            let dump = try cli.statedump(volume: url.volume)
            let conflicting = GlusterLockHolder.conflicting(in: dump.records, path: url.path, type: type)
            guard !conflicting.isEmpty else {
                let missing = dump.bricksNotHere.isEmpty ? "" : " (bricks on other nodes: \(dump.bricksNotHere.joined(separator: ", ")))"
                return (c, "the statedump shows no holder on this node's bricks\(missing)")
            }
            var out = c
            out.glusterHolders = conflicting
            return (out, nil)
        } catch {
            return (c, "host unknown: statedump failed: \(error)")
        }
    }

    /// The same for a lock of `mode` (an exclusive lock is refused by any holder, a shared
    /// one by writers).
    public static func name(_ c: Contention, image: String, mode: LockMode, cli: GlusterCLI)
        -> (contention: Contention, note: String?) {
        name(c, image: image, type: mode == .exclusive ? .write : .read, cli: cli)
    }

    /// `try`'s result with, for a busy gluster lock, its holders named from a statedump
    /// (`name`), and why not when they cannot be.
    public static func naming(_ result: ProbeResult, cli: GlusterCLI) -> (result: ProbeResult, note: String?) {
        guard result.scheme == .gluster, let c = result.contention else { return (result, nil) }
        var out = result
        let note: String?
        (out.contention, note) = name(c, image: result.image, mode: result.mode, cli: cli)
        return (out, note)
    }

    /// /proc details of the holders whose host is this one (a FUSE mount's user here, or a
    /// locksmith on this host), by pid.
    public static func localDetails(_ holders: [GlusterLockHolder], localHost: String, procRoot: String = "/proc")
        -> [Int32: ProcessDetails] {
        var users: [UInt32: String?] = [:]
        var out: [Int32: ProcessDetails] = [:]
        let boot = ProcessDetails.bootTime(procRoot: procRoot)
        for h in holders where h.host == localHost {
            guard let pid = h.pid, pid > 0, out[pid] == nil,
                  let d = ProcessDetails.read(pid: pid, procRoot: procRoot, bootTime: boot, users: &users) else { continue }
            out[pid] = d
        }
        return out
    }
}
