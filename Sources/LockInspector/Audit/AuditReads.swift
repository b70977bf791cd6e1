// The audit's few facts beyond the snapshot, read through the system layer
// (Sources/ImageLock/System): stat/lstat, statfs, readlink, /proc/PID/status, the
// scheduler's per-task view, and a user's groups. Nothing is opened but /proc files; no
// link is followed where `follow` is false.
import FoundationEssentials
import ImageLock
#if canImport(Glibc)
import Glibc
#endif

enum AuditReads {
    /// stat (or lstat) plus statfs of the file's filesystem.
    static func facts(_ path: String, follow: Bool) -> Result<AuditFileFacts, Errno> {
        follow ? Sys.stat(path).map { facts(path, $0, follow: true) } : Sys.lstat(path).map { facts(path, $0, follow: false) }
    }

    private static func facts(_ path: String, _ st: FileStatus, follow: Bool) -> AuditFileFacts {
        var f = AuditFileFacts(kind: st.kind, mode: st.permissions, uid: st.uid, gid: st.gid, links: st.links)
        if st.kind == .symlink {
            f.linkTarget = Sys.readlink(path)
        } else if follow {
            f.sharedFilesystem = sharedFilesystem(path)
        }
        return f
    }

    /// A lock-dir entry's facts from what the scan's lstat said of it (`LockFileEntry.mode`...,
    /// with `InspectorOptions.lockFileStatus`); nil when the scan did not stat it.
    static func facts(of e: LockFileEntry) -> AuditFileFacts? {
        guard let mode = e.mode, let uid = e.uid, let gid = e.gid, let links = e.links else { return nil }
        let kind = FileKind(mode: mode_t(mode))
        var f = AuditFileFacts(kind: kind, mode: mode & 0o7777, uid: uid, gid: gid, links: links)
        if kind == .symlink { f.linkTarget = Sys.readlink(e.path) }
        return f
    }

    /// `facts(path, follow: true)` of each image, in order: the stats on every core (but those
    /// `known` has, the audit's scan's: `ImageStatuses`), and one statfs per mount (the mount
    /// a path ends on is one filesystem, whose f_type statfs tells; its first image's path is
    /// asked), not one per image. Without the kernel's mount id (before Linux 5.8), a statfs
    /// per image.
    static func imageFacts(_ paths: [String], known: [PathKey: ImageStatuses.Status] = [:]) -> [Result<AuditFileFacts, Errno>] {
        let stats = Parallel.chunks(paths.count, chunk: 2048) { range in
            range.map { known[PathKey(paths[$0])] ?? Sys.statWithMount(paths[$0]) }
        }
        var magicByMount: [UInt64: UInt32] = [:]
        func magic(_ path: String, mount: UInt64?) -> UInt32? {
            if let m = mount, let known = magicByMount[m] { return known }
            guard case .success(let magic) = Sys.filesystemMagic(path) else { return nil }
            if let m = mount { magicByMount[m] = magic }
            return magic
        }
        return zip(paths, stats).map { path, r in
            r.map { st, mount in
                var f = AuditFileFacts(kind: st.kind, mode: st.permissions, uid: st.uid, gid: st.gid, links: st.links)
                if st.kind == .symlink {
                    f.linkTarget = Sys.readlink(path)
                } else {
                    f.sharedFilesystem = magic(path, mount: mount).flatMap(sharedFilesystem(magic:))
                }
                return f
            }
        }
    }

    /// The shared filesystem `path` is on, by statfs f_type (linux/magic.h); nil when local
    /// or unknown.
    static func sharedFilesystem(_ path: String) -> String? {
        guard case .success(let magic) = Sys.filesystemMagic(path) else { return nil }
        return sharedFilesystem(magic: magic)
    }

    static func sharedFilesystem(magic: UInt32) -> String? {
        SharedFilesystem.of(magic: magic)?.name
    }

    /// The fields of /proc/PID/status the audit reads.
    struct ProcStatus {
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
        var ppid: Int32
    }

    /// Effective uid and gid, supplementary groups and parent of a process; nil when gone.
    static func status(pid: Int32, procRoot: String) -> ProcStatus? {
        guard let text = ProcFS.read("\(procRoot)/\(pid)/status") else { return nil }
        var s = ProcStatus(uid: 0, gid: 0, groups: [], ppid: 0)
        var sawUid = false
        func ids(_ line: Substring, dropping n: Int) -> [Substring] {
            line.dropFirst(n).split(whereSeparator: { $0 == " " || $0 == "\t" })
        }
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Uid:") {
                let v = ids(line, dropping: 4)
                if v.count > 1, let u = UInt32(v[1]) { s.uid = u; sawUid = true }
            } else if line.hasPrefix("Gid:") {
                let v = ids(line, dropping: 4)
                if v.count > 1, let g = UInt32(v[1]) { s.gid = g }
            } else if line.hasPrefix("Groups:") {
                s.groups = ids(line, dropping: 7).compactMap { UInt32($0) }
            } else if line.hasPrefix("PPid:") {
                s.ppid = ids(line, dropping: 5).first.flatMap { Int32($0) } ?? 0
            }
        }
        return sawUid ? s : nil
    }

    /// How long a process blocked on a lock has been waiting: the time since its waiting
    /// thread last ran. The kernel keeps no "waiting since"; `se.exec_start` in
    /// /proc/PID/task/TID/sched (milliseconds of the scheduler clock, CONFIG_SCHED_DEBUG)
    /// is when the thread last ran, and the reader's own `se.exec_start` is "now" on that
    /// clock. The waiting thread is the one whose wchan is a lock wait; with one thread,
    /// that thread. nil when the kernel does not tell.
    /// The per-CPU task clocks drift apart (IRQ and steal time are left out per CPU), so
    /// "now" is read on the CPU the thread last ran on (/proc/.../stat field 39).
    static func secondsBlocked(pid: Int32, procRoot: String) -> Double? {
        let taskDir = "\(procRoot)/\(pid)/task"
        guard case .success(let tasks) = Sys.entries(taskDir) else { return nil }
        var best: Double?
        for t in tasks {
            let wchan = ProcFS.read("\(taskDir)/\(t.name)/wchan") ?? ""
            let waitsOnLock = wchan.contains("lock") && !wchan.contains("futex")
            guard waitsOnLock || tasks.count == 1,
                  let start = execStart(ProcFS.read("\(taskDir)/\(t.name)/sched")) else { continue }
            let cpu = ProcFS.read("\(taskDir)/\(t.name)/stat").flatMap(lastCPU)
            guard let mine = ownExecStart(onCPU: cpu, procRoot: procRoot) else { continue }
            let seconds = max(0, (mine - start) / 1000)
            best = max(best ?? 0, seconds)
        }
        return best
    }

    /// The reader's own `se.exec_start`, read while running on `cpu` when it can be.
    static func ownExecStart(onCPU cpu: Int32?, procRoot: String) -> Double? {
        Sys.onCPU(cpu) { execStart(ProcFS.read(procRoot + "/thread-self/sched")) }
    }

    /// Field 39 (processor: the CPU it last ran on) of /proc/PID/stat.
    static func lastCPU(_ stat: String) -> Int32? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 36 ? Int32(fields[36]) : nil
    }

    static func execStart(_ sched: String?) -> Double? {
        guard let text = sched else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("se.exec_start") {
            if let colon = line.firstIndex(of: ":") {
                return Double(line[line.index(after: colon)...].trimmingBlanks)
            }
        }
        return nil
    }

    /// The primary and supplementary groups of a user.
    static func groups(ofUser uid: UInt32) -> [UInt32] { Sys.groups(ofUser: uid) }
}
