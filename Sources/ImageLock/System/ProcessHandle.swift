import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A process by pidfd (pidfd_open(2)): it names that one process for as long as it is open,
/// even after the process ended and its pid was given to another, so a signal sent
/// through it can reach no other process.
public final class ProcessHandle: @unchecked Sendable {
    public let pid: Int32
    private let fd: Int32

    private init(pid: Int32, fd: Int32) {
        self.pid = pid
        self.fd = fd
    }

    /// A pidfd of the process that has `pid` now (ESRCH: none). The caller must then make
    /// sure it is the process it means (a child not yet waited for; the same start time).
    /// The corresponding system call is `pidfd_open`.
    public static func open(pid: Int32) -> Result<ProcessHandle, Errno> {
        Sys.retrying { clinux_pidfd_open(pid) }.map { ProcessHandle(pid: pid, fd: $0) }
    }

    /// Sends `signal` to the process (ESRCH: it has ended). The corresponding system call
    /// is `pidfd_send_signal`.
    public func signal(_ signal: Int32) -> Result<Void, Errno> {
        Sys.retrying { clinux_pidfd_send_signal(fd, signal) }.map { _ in () }
    }

    deinit { Sys.close(fd) }
}

