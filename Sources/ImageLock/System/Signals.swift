#if canImport(Glibc)
import Glibc
#endif

/// Signals taken synchronously: blocked in the calling thread (and so in every thread it
/// starts afterwards, which inherit the mask), then collected with sigtimedwait. No handler
/// ever runs in signal context. Used by the TUI's loop, `watch` (its interval timer too) and
/// `hold`'s wait for its child. The corresponding C functions are `pthread_sigmask` and
/// `sigtimedwait`.
package final class SignalGate {
    private var set = sigset_t()
    private var old = sigset_t()
    private var restored = false

    /// Blocks `signals` until `restore()`.
    package init(signals: [Int32]) {
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, &old)
    }

    /// A blocked signal that arrived (it is consumed), after waiting at most `seconds`
    /// (0: only a look); nil when none came in that time.
    package func next(waiting seconds: Double = 0) -> Int32? {
        let whole = seconds.rounded(.down)
        var timeout = timespec(tv_sec: Int(whole), tv_nsec: Int((seconds - whole) * 1e9))
        var info = siginfo_t()
        let s = sigtimedwait(&set, &info, &timeout)
        return s > 0 ? s : nil
    }

    /// The mask as it was before; once.
    package func restore() {
        guard !restored else { return }
        restored = true
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }
}
