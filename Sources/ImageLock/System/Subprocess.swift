#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn with what a child of locksmith should start with, whatever locksmith
/// blocked or ignored: an empty signal mask and default dispositions for the signals
/// locksmith itself waits for (INT, TERM, HUP, CHLD) and for PIPE.
public enum CleanSpawn {
    /// Spawns `argv` (argv[0] as a path, or looked up on PATH with `searchPath`); returns
    /// posix_spawn's result (0 or an errno). The corresponding C function is `posix_spawn`.
    public static func spawn(_ pid: inout pid_t, _ argv: [String], fileActions: UnsafeMutablePointer<posix_spawn_file_actions_t>?,
                             searchPath: Bool) -> Int32 {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        // Each argument's exact bytes (carrier strings, `PathBytes`).
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { PathBytes.withCString($0) { strdup($0) } }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        return searchPath ? posix_spawnp(&pid, cargs[0]!, fileActions, &attr, cargs, environ)
            : posix_spawn(&pid, cargs[0]!, fileActions, &attr, cargs, environ)
    }
}

/// Runs a helper program (the `gluster` CLI, the ssh client of the cluster view) to its end
/// and captures what it printed, killing it when it runs past a deadline or prints more than
/// it may. stdin is /dev/null.
public enum Subprocess {
    struct Output: Sendable {
        /// The exit status, 128+N when signal N ended it, 127 when it could not be run.
        var status: Int32
        var stdout: String
        var stderr: String
        var timedOut: Bool
    }

    /// The path of `name` on PATH or in /usr/sbin, /sbin (where Debian puts `gluster`).
    static func find(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
            let p = dir + "/" + name
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    static func run(_ argv: [String], timeout: Double) -> Output {
        let r = capture(argv, timeout: timeout, maxOutput: Int.max, maxErrors: Int.max)
        return Output(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self),
                      stderr: String(decoding: r.stderr, as: UTF8.self), timedOut: r.timedOut)
    }

    /// What `capture` got: bytes as they came.
    public struct Captured: Sendable {
        /// The exit status, 128+N when signal N ended it, 127 when it could not be run.
        public var status: Int32
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var timedOut: Bool
        /// It printed more than `maxOutput` bytes on stdout and was killed.
        public var overflowed: Bool
        /// Why it could not be started (posix_spawn's error), when it could not.
        public var spawnError: String?
    }

    /// Runs `argv` (argv[0] a path, or looked up on PATH when it has no slash) with stdin
    /// /dev/null, killing it (SIGKILL) after `timeout` seconds or once stdout passes
    /// `maxOutput` bytes; stderr beyond `maxErrors` bytes is read and dropped.
    /// The corresponding C functions are `posix_spawn`, `poll` and `waitpid`.
    public static func capture(_ argv: [String], timeout: Double, maxOutput: Int, maxErrors: Int) -> Captured {
        func failed(_ why: String) -> Captured {
            Captured(status: 127, stdout: [], stderr: [], timedOut: false, overflowed: false, spawnError: why)
        }
        // Close-on-exec pipes (dup2 clears the flag on the child's 1 and 2).
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0 else { return failed("pipe failed") }
        guard pipe(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            return failed("pipe failed")
        }
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var pid: pid_t = 0
        let rc = CleanSpawn.spawn(&pid, argv, fileActions: &actions, searchPath: !argv[0].contains("/"))
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            return failed(String(cString: strerror(rc)))
        }

        var out: [UInt8] = [], err: [UInt8] = []
        var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0),
                   pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        let deadline = Sys.monotonicSeconds() + timeout
        var timedOut = false, overflowed = false
        var buf = [UInt8](repeating: 0, count: 65536)
        reading: while fds.contains(where: { $0.fd >= 0 }) {
            let left = deadline - Sys.monotonicSeconds()
            if left <= 0 {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000) + 1)
            if n < 0 && errno != EINTR { break }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let got = read(fds[i].fd, &buf, buf.count)
                if got > 0 {
                    if i == 0 {
                        guard out.count + got <= maxOutput else {
                            overflowed = true
                            kill(pid, SIGKILL)
                            break reading
                        }
                        out += buf[0..<got]
                    } else if err.count < maxErrors {
                        err += buf[0..<min(got, maxErrors - err.count)]
                    }
                } else if got == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(fds[i].fd)
                    fds[i].fd = -1
                }
            }
        }
        for f in fds where f.fd >= 0 { close(f.fd) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Captured(status: code, stdout: out, stderr: err, timedOut: timedOut, overflowed: overflowed, spawnError: nil)
    }
}
