// Phase 1 of a focused scan (`why`) without the kernel's table: the focused files' rows
// from the fdinfo `lock:` lines of the fds on them (`FocusedLockSource.holdersFirst`).
// fdinfo lists each lock held through an fd in the kernel's own format, and its read takes
// no global lock; /proc/locks' first read after idle waits for an RCU grace period (5-15
// ms). What fdinfo cannot show sends the scan to the table: a queued request (only the
// table's `->` rows list it), a lease's breakers (they queue in open(2)), a process whose
// fds cannot be read, and a lock held through no fd in any process (an fd in flight in a
// unix socket, the kernel's NFS lock manager), which an F_GETLK probe of the file meets.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// Every process's fds and lock waits being read ahead of a focused scan
/// (`Inspector.prefetchOpenFiles`): `why` starts it before its arguments are parsed.
public final class OpenFilesPrefetch: Sendable {
    let procRoot: String
    let work: ThreadWork<Scan.OpenFilesRead>

    init(procRoot: String) {
        self.procRoot = procRoot
        work = ThreadWork(elsewhere: true) { Scan.readOpenFiles(pids: ProcFS.pids(procRoot: procRoot), procRoot: procRoot, lockWaits: true) }
    }
}

extension Scan {
    /// The focused files' rows as their holders' fdinfo lists them (after `listOpenFiles`
    /// of every process with `lockWaits`), or nil when the table is needed: see
    /// `FocusedLockSource.holdersFirst`.
    /// The fdinfo read of each fd on a focused file is kept with it (`OpenFD.info`): the
    /// holders' pass reads no file twice.
    mutating func holdersRows(_ fds: inout FDPass, files: LockFiles) -> Rows? {
        guard case .focused(let focus) = scope, fds.live, fds.hidden.isEmpty else { return nil }
        var out = Rows()
        let keys = focusedKeys(focus, files: files, into: &out)
        let inodes = Set(keys.map(\.inode))
        // A task queued on a focused file (or on an fd it no longer has: it may be one), or
        // a process with the file open whose tasks could not be looked at.
        if fds.lockWaits.contains(where: { $0.inode.map(inodes.contains) ?? true }) { return nil }
        if !fds.waitsUnread.isEmpty && fds.fds.contains(where: { inodes.contains($0.inode) && fds.waitsUnread.contains($0.pid) }) {
            return nil
        }
        // Each lock once, as the table lists it: a POSIX lock names its process (fdinfo
        // lists it under each of that process's fds on the file that took it); an OFD or
        // flock lock is its open file description's, listed under every fd that shares it
        // (dup, fork): two fds listing the same bytes are one lock when kcmp says they share
        // a description, two (two readers of one image) otherwise.
        var posix = Set<PosixLock>()
        var owners: [KernelLock.Identity: [(pid: Int32, fd: Int32)]] = [:]
        var reader = ProcessFDReader(procRoot: procRoot)
        defer { reader.close() }
        var count = 0
        for i in fds.fds.indices where inodes.contains(fds.fds[i].inode) {
            let f = fds.fds[i]
            guard let info = reader.info(pid: f.pid, fd: f.fd) else { continue }  // closed since
            fds.fds[i].info = info
            for var lock in info.locks {
                guard let k = lock.fileKey, keys.contains(k) else { continue }
                guard lock.kind == .posix || lock.kind == .ofd || lock.kind == .flock, !lock.isWaiter else { return nil }
                if lock.kind == .posix {
                    guard posix.insert(PosixLock(identity: lock.identity, pid: lock.pid)).inserted else { continue }
                } else {
                    let others = owners[lock.identity] ?? []
                    if others.contains(where: { Sys.sameOpenFile($0, (f.pid, f.fd)) == true }) { continue }
                    owners[lock.identity] = others + [(f.pid, f.fd)]
                }
                count += 1
                lock.id = count
                out.byFile[k, default: []].append(lock)
            }
        }
        // The locks a probe meets on the bytes the verdict rests on (an image's QEMU bytes
        // and byte 0; a lock file's whole-file lock, from byte 0) are all listed.
        for image in out.focusedImages {
            guard probesAgree(image.path, key: image.key, bytes: ImageLocker.probedBytes, rows: out.byFile) else { return nil }
        }
        for lf in files.lockFiles + files.leaseFiles where lf.kind == .regular {
            guard probesAgree(lf.path, key: FileKey(device: lf.device, inode: lf.inode), bytes: [0], rows: out.byFile) else {
                return nil
            }
        }
        return out
    }

    struct PosixLock: Hashable {
        var identity: KernelLock.Identity
        var pid: Int32?
    }

    /// Whether each lock an F_GETLK probe of `bytes` of `path` meets
    /// (`ImageLocker.probeLocksNow`) is one of the file's rows: same type and bytes, and a
    /// POSIX lock's pid or an OFD lock's none. False when the file cannot be probed, or is a
    /// block device (never opened: a device whose paths are all dead can hold an open
    /// forever; the table answers for it). Not
    /// asked of a shared filesystem (FUSE, NFS...): its answer includes other hosts' locks,
    /// which neither fdinfo nor the table lists (`why` asks it itself, with a timeout:
    /// `ServerLocks`), and a server that does not answer would hold the scan.
    func probesAgree(_ path: String, key: FileKey, bytes: [Int64], rows: [FileKey: [KernelLock]]) -> Bool {
        if SharedFilesystem.of(path: path) != nil { return true }
        guard let met = try? ImageLocker.probeLocksNow(path: path, bytes: bytes, expect: key.device.map { ($0, key.inode) },
                                                       blockDevices: false) else {
            return false
        }
        let own = rows[key] ?? []
        return met.allSatisfy { p in
            own.contains { r in
                r.isFcntlLock && r.lockType == p.type && r.start == p.range.start && r.end == p.range.end
                    && (p.pid.map { r.kind == .posix && r.pid == $0 } ?? (r.kind == .ofd))
            }
        }
    }
}
