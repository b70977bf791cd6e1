#if canImport(Glibc)
import Glibc
#endif

/// Runs a command as a child and waits for it, passing on SIGINT, SIGTERM and SIGHUP.
/// The signals are blocked in locksmith and collected with sigtimedwait, so no handler
/// runs in signal context; the child starts with a clean mask and default dispositions.
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
    /// The corresponding C functions are `posix_spawnp`, `sigtimedwait` and `waitpid`.
    static func runForwardingSignals(_ argv: [String]) throws -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for s in forwarded + [SIGCHLD] { sigaddset(&set, s) }
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &set, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in forwarded + [SIGCHLD, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], nil, &attr, cargs, environ)
        if rc != 0 { throw SpawnError(command: argv[0], errno: rc) }

        var timeout = timespec(tv_sec: 0, tv_nsec: 200_000_000)
        while true {
            var status: Int32 = 0
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid {
                if status & 0x7f == 0 { return (status >> 8) & 0xff }  // WIFEXITED
                return 128 + (status & 0x7f)  // WTERMSIG
            }
            if w < 0 && errno != EINTR { return 127 }
            var info = siginfo_t()
            let sig = sigtimedwait(&set, &info, &timeout)
            if sig > 0 && forwarded.contains(sig) {
                kill(pid, sig)
            }
        }
    }
}
