// The one engine that names the processes behind kernel locks, over one lock identity
// (`KernelLock.Identity`): a /proc/locks row and an fdinfo `lock:` line are the same lock
// when their identities are equal. A classic POSIX or flock row names its process; an OFD
// row's pid is -1, and its holder is the open file whose fdinfo lists it. fdinfo is read
// only for the fds on a locked inode (statx of the fd entry, `Sys.openFiles`), never for
// every fd on the host.
//
// Two ways through it:
// - a targeted search, for one lock (try, hold): `LockHolderFinder.attribute`;
// - the inspector's fd pass, for every lock (list, audit, the TUI) and for one image's
//   (why, a focused scan), which uses the same fd reads (`Sys.openFiles`, `ProcessFDReader`)
//   and identity.
#if canImport(Glibc)
import Glibc
#endif

package enum HolderSearch {
    /// The fds of `pid` with the file each refers to: statx on the live /proc, fdinfo's
    /// `ino:` in a copy or fixture (then parsed once, in `OpenFD.info`).
    package static func openFiles(procRoot: String, pid: Int32, live: Bool, buffer: inout [UInt8],
                                  into out: inout [OpenFD]) -> Errno? {
        live ? Sys.openFiles(procRoot: procRoot, pid: pid, into: &out)
            : Sys.openFilesFromFDInfo(procRoot: procRoot, pid: pid, buffer: &buffer, into: &out)
    }

    /// Every fd of every process that lists one of `wanted` (OFD rows) in its fdinfo, in pid
    /// order and fd order: `body(pid, fd, wanted lock)` for each match. Only the fds on the
    /// rows' inodes have their fdinfo read; when that leaves a row unmatched (a filesystem
    /// whose st_ino differs from the kernel's lock inode, a /proc copy), every fdinfo is
    /// read, as the kernel's own lists are the ground truth.
    package static func ofdHolders(of wanted: [KernelLock], procRoot: String,
                                   _ body: (_ pid: Int32, _ fd: Int32, _ lock: KernelLock) -> Void) {
        let inodes = Set(wanted.compactMap { $0.inode })
        let byIdentity = Dictionary(grouping: wanted.indices, by: { wanted[$0].identity })
        let pids = ProcFS.pids(procRoot: procRoot)
        let live = Sys.isLiveProc(procRoot)
        func pass(everyFD: Bool, _ body: (Int32, Int32, KernelLock) -> Void) -> Set<Int> {
            var matched = Set<Int>()
            var reader = ProcessFDReader(procRoot: procRoot)
            defer { reader.close() }
            var buffer = [UInt8](repeating: 0, count: 16384)
            for pid in pids {
                var fds: [OpenFD] = []
                if everyFD {
                    guard let names = ProcFS.list("\(procRoot)/\(pid)/fdinfo") else { continue }
                    for name in names {
                        guard let fd = Int32(name), let text = ProcFS.read("\(procRoot)/\(pid)/fdinfo/\(name)"),
                              let info = FDInfo(text: Substring(text)) else { continue }
                        fds.append(OpenFD(pid: pid, fd: fd, inode: info.inode ?? 0, device: nil, kind: nil, info: info))
                    }
                } else {
                    _ = openFiles(procRoot: procRoot, pid: pid, live: live, buffer: &buffer, into: &fds)
                }
                for f in fds {
                    let info: FDInfo
                    if everyFD {
                        guard let i = f.info, !i.locks.isEmpty else { continue }
                        if let ino = i.inode, !inodes.contains(ino) { continue }
                        info = i
                    } else {
                        guard inodes.contains(f.inode), let i = f.info ?? reader.info(pid: f.pid, fd: f.fd) else { continue }
                        info = i
                    }
                    for held in info.locks {
                        for i in byIdentity[held.identity] ?? [] {
                            matched.insert(i)
                            body(pid, f.fd, wanted[i])
                        }
                    }
                }
            }
            return matched
        }
        var found: [(Int32, Int32, KernelLock)] = []
        let matched = pass(everyFD: false) { found.append(($0, $1, $2)) }
        if matched.count < wanted.count {
            _ = pass(everyFD: true, body)
            return
        }
        for (pid, fd, lock) in found { body(pid, fd, lock) }
    }
}
