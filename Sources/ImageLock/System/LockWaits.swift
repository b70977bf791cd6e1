// The tasks asleep in a blocking lock call, from /proc/PID/task/TID/syscall (proc(5)): while
// a task sleeps in a system call the file gives the call's number and its six arguments, in
// hex; "running" when it runs, "-1 SP PC" when it is blocked outside a call. A queued lock
// request is a task asleep in fcntl(fd, F_SETLKW or F_OFD_SETLKW, ...) or flock(fd, op)
// without LOCK_NB: the waiter /proc/locks lists as a `->` row, told without the table
// (whose first read after idle waits for an RCU grace period). The file is readable only
// with ptrace access to the task (root, or its owner).
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A task asleep in a blocking lock call, and the file it waits through.
package struct LockWait: Equatable, Sendable {
    package var pid: Int32
    package var tid: Int32
    package var fd: Int32
    /// The inode of the file the fd refers to; nil when the fd could not be looked at.
    package var inode: UInt64?

    /// The fd a `syscall` file's line shows a task waiting for a lock through, or nil when the
    /// task is not in a blocking lock call. `nr` and the arguments are this architecture's.
    package static func waitingFD(syscallLine line: some Collection<UInt8>) -> Int32? {
        var fields: [UInt64] = []
        var negative = false
        var value: UInt64 = 0, digits = 0, hex = false
        var i = line.startIndex
        var wellFormed = true
        func flush() {
            // The number in decimal, each argument in hex with its 0x.
            if digits > 0 || hex {
                if fields.isEmpty == hex || (hex && digits == 0) { wellFormed = false }
                fields.append(value)
            }
            (value, digits, hex) = (0, 0, false)
        }
        while i != line.endIndex && fields.count < 3 {
            let c = line[i]
            switch c {
            case UInt8(ascii: " "), UInt8(ascii: "\n"):
                flush()
            case UInt8(ascii: "-") where fields.isEmpty && digits == 0:
                negative = true
            case UInt8(ascii: "x") where digits == 1 && value == 0 && !fields.isEmpty:
                (hex, digits) = (true, 0)
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let (v, o1) = value.multipliedReportingOverflow(by: hex ? 16 : 10)
                let (w, o2) = v.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
                if o1 || o2 { return nil }
                (value, digits) = (w, digits + 1)
            case UInt8(ascii: "a")...UInt8(ascii: "f") where hex:
                let (v, o1) = value.multipliedReportingOverflow(by: 16)
                let (w, o2) = v.addingReportingOverflow(UInt64(c - UInt8(ascii: "a") + 10))
                if o1 || o2 { return nil }
                (value, digits) = (w, digits + 1)
            default:
                return nil  // "running", or not this format
            }
            i = line.index(after: i)
        }
        flush()
        guard wellFormed, !negative, fields.count >= 3, fields[1] <= UInt64(Int32.max) else { return nil }
        let (nr, fd, arg) = (Int(fields[0]), Int32(fields[1]), fields[2])
        if nr == clinux_SYS_fcntl {
            // F_SETLKW; F_SETLKW64 (14) is the same call where 32-bit processes make it.
            return arg == UInt64(F_SETLKW) || arg == 14 || arg == UInt64(clinux_F_OFD_SETLKW) ? fd : nil
        }
        if nr == clinux_SYS_flock {
            let op = Int32(truncatingIfNeeded: arg)
            return op & LOCK_NB == 0 && op & (LOCK_SH | LOCK_EX) != 0 ? fd : nil
        }
        return nil
    }
}

extension Sys {
    /// The tasks of `pid` asleep in a blocking lock call (`LockWait.waitingFD`), each with
    /// the inode of the file it waits through (statx of its /proc/PID/task/TID/fd entry,
    /// followed only inside /proc). A task that ended meanwhile is left out; a task whose
    /// file cannot be read (EACCES without ptrace access) is the error, as is a process
    /// whose task list cannot be read (ENOENT, ESRCH: it ended).
    package static func lockWaits(procRoot: String, pid: Int32) -> Result<[LockWait], Errno> {
        let taskDir = "\(procRoot)/\(pid)/task"
        let tids: [Int32]
        switch entries(taskDir) {
        case .success(let e): tids = e.compactMap { Int32($0.name) }
        case .failure(let e): return .failure(e)
        }
        var out: [LockWait] = []
        for tid in tids {
            let line: [UInt8]
            switch open("\(taskDir)/\(tid)/syscall", O_RDONLY | O_CLOEXEC).flatMap({ fd in
                defer { close(fd) }
                return read(fd, count: 256, at: 0)
            }) {
            case .success(let l): line = l
            case .failure(let e) where e.code == ENOENT || e.code == ESRCH: continue
            case .failure(let e): return .failure(e)
            }
            guard let fd = LockWait.waitingFD(syscallLine: line) else { continue }
            var target = clinux_fd_target()
            let found = PathBytes.withCString("\(taskDir)/\(tid)/fd/\(fd)") { clinux_fd_target(AT_FDCWD, $0, &target) } == 0
            out.append(LockWait(pid: pid, tid: tid, fd: fd, inode: found ? target.inode : nil))
        }
        return .success(out)
    }
}
