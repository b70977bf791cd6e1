// Threads, locks and condition variables on pthreads: what Foundation's Thread, NSLock and
// NSCondition wrap, without Foundation (the binary links FoundationEssentials only).
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A mutual-exclusion lock (pthread_mutex_t, as NSLock); not recursive.
package final class Lock: @unchecked Sendable {
    fileprivate let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() { mutex = pinned(pthread_mutex_t()) { pthread_mutex_init($0, nil) } }
    deinit { unpin(mutex, pthread_mutex_destroy) }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    package func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A lock with a condition variable (as NSCondition): `wait()` is called with the lock held.
package final class Condition: @unchecked Sendable {
    private let lockHandle = Lock()
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    package init() { cond = pinned(pthread_cond_t()) { pthread_cond_init($0, nil) } }
    deinit { unpin(cond, pthread_cond_destroy) }

    package func lock() { lockHandle.lock() }
    package func unlock() { lockHandle.unlock() }
    package func wait() { pthread_cond_wait(cond, lockHandle.mutex) }
    package func signal() { pthread_cond_signal(cond) }
}

/// A pthread object at a fixed address (one a Swift property does not promise), set up by `setUp`.
private func pinned<T>(_ value: T, _ setUp: (UnsafeMutablePointer<T>) -> Int32) -> UnsafeMutablePointer<T> {
    let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
    p.initialize(to: value)
    _ = setUp(p)
    return p
}

private func unpin<T>(_ p: UnsafeMutablePointer<T>, _ tearDown: (UnsafeMutablePointer<T>) -> Int32) {
    _ = tearDown(p)
    p.deallocate()
}

extension Sys {
    /// Runs `body` on a new detached thread (as Foundation's `Thread { }.start()`), with a
    /// stack of `stackSize` bytes when given and the thread named `name` when given (as `ps`
    /// and /proc/PID/task/TID/comm show it; at most 15 bytes). When no thread can be had,
    /// `body` runs here, unless `runHereIfNone` is false (a body that never returns); says
    /// whether a thread runs it. `elsewhere`: the thread starts on another CPU than the
    /// caller's (else it often waits for the caller to sleep), then may run on any.
    @discardableResult
    package static func startThread(name: String? = nil, stackSize: Int? = nil, runHereIfNone: Bool = true,
                                     elsewhere: Bool = false, _ body: @escaping @Sendable () -> Void) -> Bool {
        final class Start: @unchecked Sendable {
            let name: String?
            let allowed: cpu_set_t?
            let body: @Sendable () -> Void
            init(name: String?, allowed: cpu_set_t?, body: @escaping @Sendable () -> Void) {
                (self.name, self.allowed, self.body) = (name, allowed, body)
            }
        }
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize { pthread_attr_setstacksize(&attr, stackSize) }
        var allowed = cpu_set_t()
        let moved = elsewhere && clinux_attr_start_off_current_cpu(&attr, &allowed) == 1
        let ctx = Unmanaged.passRetained(Start(name: name, allowed: moved ? allowed : nil, body: body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attr, { raw in
            let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            if let name = start.name { clinux_name_thread(String(decoding: name.utf8.prefix(15), as: UTF8.self)) }
            if var allowed = start.allowed { _ = clinux_set_affinity(&allowed) }
            start.body()
            return nil
        }, ctx)
        if rc != 0 {
            Unmanaged<Start>.fromOpaque(ctx).release()
            if runHereIfNone { body() }
            return false
        }
        return true
    }
}
