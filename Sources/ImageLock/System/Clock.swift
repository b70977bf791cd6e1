// Clocks, CPUs, the heap and the user database: the monotonic clock every timing and deadline
// uses, the kernel's clock tick, CPU pinning, malloc's arenas, and user and group names
// (getpwuid_r, getgrouplist).
import CLinux
#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// Seconds on CLOCK_MONOTONIC (never set back; for durations and deadlines).
    /// Hands freed heap pages back to the system. A scan allocates on several threads, each
    /// with its own malloc arena; what it frees stays in those arenas (counted in the RSS)
    /// until trimmed (glibc's malloc_trim).
    package static func trimHeap() {
        clinux_trim_heap()
    }

    package static func monotonicSeconds() -> Double {
        let ts = monotonic(after: 0)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The CLOCK_MONOTONIC time `seconds` from now, as pthread_cond_timedwait takes it
    /// (on a condition variable set to that clock).
    package static func monotonic(after seconds: Double) -> timespec {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        guard seconds > 0 else { return ts }
        let whole = seconds.rounded(.down)
        ts.tv_sec += Int(whole)
        ts.tv_nsec += Int((seconds - whole) * 1e9)
        if ts.tv_nsec >= 1_000_000_000 {
            ts.tv_sec += 1
            ts.tv_nsec -= 1_000_000_000
        }
        return ts
    }

    /// `body` run while the calling thread is pinned to `cpu` when it can be (else where it
    /// is): the scheduler's per-CPU task clocks drift apart, so times from two CPUs'
    /// /proc/.../sched compare only when read on the same CPU. The corresponding C
    /// functions are `sched_getaffinity` and `sched_setaffinity`.
    package static func onCPU<T>(_ cpu: Int32?, _ body: () -> T) -> T {
        var saved = cpu_set_t()
        let pinned = cpu.map { clinux_pin_to_cpu($0, &saved) == 0 } ?? false
        defer { if pinned { clinux_restore_affinity(&saved) } }
        return body()
    }

    /// The CPU the calling thread runs on, or -1. The corresponding C function is `sched_getcpu`.
    package static func currentCPU() -> Int32 { clinux_current_cpu() }

    /// Keeps the calling thread off `cpu` from now on (nil: lets it run on any CPU it was
    /// allowed before), moving it at once if it is there; nothing when no other CPU is
    /// allowed. An affinity someone else set on the thread meanwhile (`taskset -p`) is kept
    /// as the CPUs it may run on. Nothing is asked of the kernel when `cpu` is the one it is
    /// kept off already. The corresponding C functions are `sched_getaffinity` and
    /// `sched_setaffinity`.
    package static func keepOff(cpu: Int32?) { _ = clinux_keep_off_cpu(cpu ?? -1) }

    /// One malloc arena for every thread of the process, to be set before its threads start.
    /// glibc gives each thread that allocates an arena of its own (up to 8 per core), and
    /// what one thread frees stays in its arena, unused by the others: a scan that builds its
    /// tables on several threads then holds their freed memory as well (a list of 100k lock
    /// files peaked at ~190 MiB instead of ~150). The corresponding C function is `mallopt`.
    package static func useOneHeapArena() {
        clinux_limit_heap_arenas(1)
    }

    /// Heap blocks of `bytes` or more get pages of their own, handed back to the system as
    /// soon as they are freed, whatever was freed before. glibc starts so (at 128 KiB) but
    /// raises the threshold to the biggest block freed so far (up to 32 MiB): after a scan
    /// has freed its tables, the next scan's big tables are carved out of the heap, whose
    /// pages stay with the process until it is trimmed. For a live view that takes a new
    /// snapshot beside the one it shows (the TUI's rescan at 10k unmapped lock files peaked
    /// at 64.7 MiB RSS, 50.3 with the threshold fixed). The corresponding C function is
    /// `mallopt` (`M_MMAP_THRESHOLD`).
    package static func mapBigHeapBlocks(atLeast bytes: Int) {
        clinux_map_big_heap_blocks(Int32(clamping: bytes))
    }

    /// The kernel's clock ticks per second (the unit of /proc/PID/stat's times).
    package static var clockTicks: Int { max(1, sysconf(Int32(_SC_CLK_TCK))) }

    /// The user name of a uid on this host, or nil. The corresponding C function is `getpwuid_r`.
    package static func userName(_ uid: UInt32) -> String? {
        withPasswd(uid) { pw in pw.pw_name.map { String(cString: $0) } }
    }

    /// The primary and supplementary groups of a user. The corresponding C functions are
    /// `getpwuid_r` and `getgrouplist`.
    package static func groups(ofUser uid: UInt32) -> [UInt32] {
        withPasswd(uid) { pw -> [UInt32]? in
            guard let name = pw.pw_name else { return nil }
            var count: Int32 = 64
            var groups = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(name, pw.pw_gid, &groups, &count) < 0 {
                groups = [gid_t](repeating: 0, count: Int(count))
                guard getgrouplist(name, pw.pw_gid, &groups, &count) >= 0 else { return [pw.pw_gid] }
            }
            return Array(groups.prefix(Int(count)))
        } ?? []
    }

    private static func withPasswd<T>(_ uid: UInt32, _ body: (passwd) -> T?) -> T? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buf = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pw, &buf, buf.count, &result) == 0, result != nil else { return nil }
        return body(pw)
    }
}
