// fcntl(2) record locks: the one builder of `struct flock` requests. Only the non-waiting
// commands are used (F_SETLK, F_OFD_SETLK, F_GETLK, F_OFD_GETLK).
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
