import Dispatch
import ImageLock
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Work spread over the cores. The /proc walk is bound by syscalls (a statx per fd, an
/// fdinfo read per locked fd), which run in parallel in the kernel: two cores nearly halve it.
enum Parallel {
    /// Splits `count` items into chunks of `chunk`, runs `work` on each chunk on Dispatch's
    /// threads (the caller's included) and returns the results in item order.
    ///
    /// Dispatch's threads are kept off the caller's CPU (`CallerCPU`).
    static func chunks<R>(_ count: Int, chunk: Int, _ work: @Sendable (Range<Int>) -> [R]) -> [R] {
        let n = (count + chunk - 1) / chunk
        if n <= 1 { return count == 0 ? [] : work(0..<count) }
        let slots = Slots<[R]>(count: n)
        let caller = CallerCPU()
        DispatchQueue.concurrentPerform(iterations: n) { i in
            caller.spread()
            slots.set(i, work(i * chunk..<min(count, (i + 1) * chunk)))
        }
        return slots.joined()
    }

    /// The CPU the calling thread of `chunks` was last seen on, which Dispatch's threads are
    /// kept off (`Sys.keepOff`) from their next chunk on, and after the call: the kernel
    /// here (2 vCPUs, KVM) wakes a thread on its waker's CPU when the other one is idle, and
    /// lets the two share that CPU for 3-12 ms at a time with the other idle (traced with
    /// sched events: a worker woken by `concurrentPerform`, or by the malloc arena's lock,
    /// moved from the idle CPU to the caller's and waited there; half of the holders' fdinfo
    /// reads at 10k ran so). Kept off after the call too: the next call's first wake-up
    /// finds the caller where it was. A caller that moves is followed at the next chunk.
    final class CallerCPU: Sendable {
        private let thread = pthread_self()
        private let cpu = Atomic<Int32>(Sys.currentCPU())

        /// On the caller's thread, notes its CPU; on another thread, keeps it off that CPU.
        func spread() {
            if pthread_equal(pthread_self(), thread) != 0 {
                cpu.store(Sys.currentCPU(), ordering: .relaxed)
            } else {
                let c = cpu.load(ordering: .relaxed)
                Sys.keepOff(cpu: c >= 0 ? c : nil)
            }
        }
    }

    /// Frees `value` on another thread when it holds `entries` or more (the last reference to
    /// big tables is dropped there, so their hundred thousand deallocations are not in the
    /// caller's way); smaller ones here, at once: Dispatch's first use of that queue starts a
    /// thread (~0.1 ms of the caller's time; a quiet host's tables free in microseconds).
    static func release<T: Sendable>(_ value: consuming T, entries: Int) {
        guard entries >= offThreadFrom else { return }
        let box = Box(value)
        DispatchQueue.global(qos: .utility).async { box.value = nil }
    }

    /// How many entries a table needs before its freeing, or ordering, is worth a thread.
    static let offThreadFrom = 4096

    final class Box<T>: @unchecked Sendable {
        var value: T?
        init(_ value: consuming T) { self.value = value }
    }

    /// One result slot per chunk, each written by exactly one thread before concurrentPerform
    /// returns, and read only after.
    final class Slots<T>: @unchecked Sendable {
        private let buffer: UnsafeMutableBufferPointer<T?>

        init(count: Int) {
            buffer = .allocate(capacity: count)
            buffer.initialize(repeating: nil)
        }

        func set(_ i: Int, _ value: T) { buffer[i] = value }

        func joined<E>() -> [E] where T == [E] {
            var out: [E] = []
            for case let part? in buffer { out += part }
            return out
        }

        deinit {
            buffer.deinitialize()
            buffer.deallocate()
        }
    }
}

/// A value made on first use, by whichever thread asks first (the others wait for it), then
/// shared: what rules running on every core need only when one of them finds something, an
/// index most scans never look anything up in.
final class MadeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = Lock()
    private var value: T?

    /// The value, made by `make` if this is the first call.
    func get(_ make: () -> T) -> T {
        lock.withLock {
            if value == nil { value = make() }
            return value!
        }
    }
}

/// Work on a thread of its own, started at once (the kernel's lock table, the lock dirs):
/// `wait()` returns its result.
final class ThreadWork<T: Sendable>: @unchecked Sendable {
    private let group = DispatchGroup()
    private var result: T?

    /// `elsewhere`: the thread starts on another CPU than the caller's (`Sys.startThread`).
    init(elsewhere: Bool = false, _ work: @escaping @Sendable () -> T) {
        group.enter()
        Sys.startThread(stackSize: 1 << 20, elsewhere: elsewhere) { [self] in
            result = work()
            group.leave()
        }
    }

    /// Whether the result is there (`wait()` would not block).
    var isDone: Bool { group.wait(timeout: .now()) == .success }

    /// The result, handed over (not kept here, so the caller's copy is unique and can be
    /// changed in place); call once.
    func wait() -> T {
        group.wait()
        return result.take()!
    }
}
