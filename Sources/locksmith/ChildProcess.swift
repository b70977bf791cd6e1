import ImageLock
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command as a child and waits for it, passing on SIGINT, SIGTERM and SIGHUP.
/// The signals are blocked in locksmith and collected with sigtimedwait, so no handler
/// runs in signal context; the child starts with a clean mask and default dispositions.
/// They are passed on through a pidfd of the child, opened as soon as it is spawned.
enum ChildProcess {
    struct SpawnError: Error, CustomStringConvertible {
        var command: String
        var errno: Int32
        var description: String { "cannot run \(command): \(String(cString: strerror(errno)))" }
        /// As shells do: 127 not found, 126 found but not runnable.
        var exitStatus: Int32 { errno == ENOENT ? 127 : 126 }
    }

    static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Returns the child's exit status, or 128+N if signal N ended it.
    /// The corresponding C functions are `posix_spawnp` and `waitpid` (signals: `SignalGate`).
    static func runForwardingSignals(_ argv: [String]) throws -> Int32 {
        let signals = SignalGate(signals: forwarded + [SIGCHLD])
        defer { signals.restore() }
        // Started with SIGCHLD ignored (a parent's SIG_IGN is inherited across exec), the
        // kernel would reap the child itself and waitpid would fail with ECHILD, losing its
        // status: take the default disposition back (blocked, it is still only waited for).
        var dfl = sigaction()
        dfl.__sigaction_handler.sa_handler = SIG_DFL
        sigemptyset(&dfl.sa_mask)
        sigaction(SIGCHLD, &dfl, nil)

        var pid: pid_t = 0
        let rc = CleanSpawn.spawn(&pid, argv, fileActions: nil, searchPath: true)
        if rc != 0 { throw SpawnError(command: argv[0], errno: rc) }
        // Not waited for yet, the child keeps its pid: this pidfd names it. Where the kernel
        // has no pidfd (before 5.3) the unreaped pid is as safe to signal.
        let child = try? ProcessHandle.open(pid: pid).get()

        while true {
            var status: Int32 = 0
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid {
                if status & 0x7f == 0 { return (status >> 8) & 0xff }  // WIFEXITED
                return 128 + (status & 0x7f)  // WTERMSIG
            }
            if w < 0 && errno != EINTR { return 127 }
            if let sig = signals.next(waiting: 0.2), forwarded.contains(sig) {
                if let child { _ = child.signal(sig) } else { kill(pid, sig) }
            }
        }
    }
}
