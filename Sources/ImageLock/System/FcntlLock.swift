// fcntl(2) record locks: the one builder of `struct flock` requests, and the one test for
// "is any byte of this file fcntl-locked". Only the non-waiting commands are used
// (F_SETLK, F_OFD_SETLK, F_GETLK, F_OFD_GETLK).
import CLinux
#if canImport(Glibc)
import Glibc
#endif

extension flock {
    /// A request for `type` (F_RDLCK, F_WRLCK, F_UNLCK) on `range` from the start of the
    /// file. `pid` must be 0 for OFD requests; libgfapi passes it on as the lock's l_pid.
    package init(type: Int16, range: ByteRange, pid: Int32 = 0) {
        self.init()
        l_type = type
        l_whence = Int16(SEEK_SET)
        l_start = off_t(range.start)
        l_len = off_t(range.length)
        l_pid = pid
    }
}

extension Sys {
    /// Whether anyone holds an fcntl lock (POSIX or OFD) on any byte of a regular file: an
    /// F_OFD_GETLK write-lock probe of the whole file (Linux fs/locks.c: works on an O_RDONLY
    /// fd; flock locks are invisible to it). Opened through `SafeOpen`: a regular file only,
    /// no final link followed, no blocking. False when it cannot be opened; true when the
    /// kernel cannot tell (look).
    package static func hasFcntlLock(_ path: String) -> Bool {
        guard case .success(let opened) = SafeOpen.open(path, flags: O_RDONLY, links: .notFinal, blockDevices: false) else {
            return false
        }
        defer { close(opened.fd) }
        var fl = flock(type: Int16(F_WRLCK), range: .wholeFile)
        guard case .success = fcntlLock(opened.fd, clinux_F_OFD_GETLK, &fl) else { return true }
        return fl.l_type != Int16(F_UNLCK)
    }
}
