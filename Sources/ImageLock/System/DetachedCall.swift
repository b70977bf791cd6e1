#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking calls that may never return (libgfapi's glfs_init blocks forever against a
/// peer that accepts TCP but never answers) on a detached thread of their own, and waits
/// for them only up to a deadline. A call that misses it runs on unobserved; when it ends,
/// its result goes to `abandoned` (so that a late connection or lock can be undone), and
/// nobody waits for it at process exit.
enum DetachedCall {
    private final class Box<T>: DetachedWork, @unchecked Sendable {
        var mutex = pthread_mutex_t()
        var cond = pthread_cond_t()
        var result: T?
        var gaveUp = false
        let body: () -> T
        let abandoned: (T) -> Void

        init(body: @escaping () -> T, abandoned: @escaping (T) -> Void) {
            self.body = body
            self.abandoned = abandoned
            pthread_mutex_init(&mutex, nil)
            var attr = pthread_condattr_t()
            pthread_condattr_init(&attr)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
            pthread_cond_init(&cond, &attr)
            pthread_condattr_destroy(&attr)
        }

        deinit {
            pthread_cond_destroy(&cond)
            pthread_mutex_destroy(&mutex)
        }

        func work() {
            let r = body()
            pthread_mutex_lock(&mutex)
            let late = gaveUp
            if !late { result = r }
            pthread_cond_signal(&cond)
            pthread_mutex_unlock(&mutex)
            if late { abandoned(r) }
        }
    }

    /// Runs `body` on a detached thread and returns at once; nobody waits for it.
    static func detach(_ body: @escaping () -> Void) {
        _ = run(seconds: 0, body)
    }

    /// The result of `body`, or nil when it did not finish within `seconds`.
    /// The corresponding C functions are `pthread_create` and `pthread_cond_timedwait`.
    static func run<T>(seconds: Double, _ body: @escaping () -> T,
                       abandoned: @escaping (T) -> Void = { _ in }) -> T? {
        let box = Box(body: body, abandoned: abandoned)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        defer { pthread_attr_destroy(&attr) }
        var thread = pthread_t()
        let ctx = Unmanaged.passRetained(box as AnyObject).toOpaque()
        let rc = pthread_create(&thread, &attr, { raw in
            let obj = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue()
            (obj as! any DetachedWork).work()
            return nil
        }, ctx)
        if rc != 0 {
            Unmanaged<AnyObject>.fromOpaque(ctx).release()
            return body()  // no thread to be had: do it here, without a deadline
        }
        var deadline = Sys.monotonic(after: seconds)
        pthread_mutex_lock(&box.mutex)
        while box.result == nil {
            if pthread_cond_timedwait(&box.cond, &box.mutex, &deadline) == ETIMEDOUT && box.result == nil {
                box.gaveUp = true
                break
            }
        }
        let r = box.result
        pthread_mutex_unlock(&box.mutex)
        return r
    }
}

private protocol DetachedWork: AnyObject { func work() }
