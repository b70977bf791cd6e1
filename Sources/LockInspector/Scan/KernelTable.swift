// Phase 1 of a scan (Scan.swift): the kernel's lock table, /proc/locks, read and parsed
// on a thread of its own while the other phases run.
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock


/// The kernel's lock table being read ahead of a snapshot (`Inspector.prefetchKernelTable`).
public final class KernelTablePrefetch: Sendable {
    let procRoot: String
    let reader: KernelTableReader

    init(procRoot: String) {
        self.procRoot = procRoot
        reader = KernelTableReader(path: procRoot + "/locks", early: true)
    }
}

/// Reads /proc/locks on its own thread.
final class KernelTableReader: Sendable {
    typealias Table = (locks: [KernelLock], malformed: [String])
    private let work: ThreadWork<Read>

    struct Read: @unchecked Sendable {
        var table: Table?
        var errno: Int32
        var seconds: Double
        /// Read by the executable before main (`Sys.takeEarlyRead`).
        var early = false
    }

    /// Reads and parses `path` on its own thread. `early`: take the read of `path` the
    /// executable started before main (`Sys.takeEarlyRead`), when there is one.
    init(path: String, early: Bool = false) {
        work = ThreadWork {
            if early, let read = Sys.takeEarlyRead(path) {
                let t0 = Sys.monotonicSeconds()
                guard let bytes = read.bytes else { return Read(table: nil, errno: read.errno, seconds: read.seconds, early: true) }
                return Read(table: KernelLock.parseTable(bytes), errno: 0, seconds: read.seconds + Sys.monotonicSeconds() - t0,
                            early: true)
            }
            let t0 = Sys.monotonicSeconds()
            guard let bytes = ProcFS.readBytes(path) else { return Read(table: nil, errno: errno, seconds: Sys.monotonicSeconds() - t0) }
            return Read(table: KernelLock.parseTable(bytes), errno: 0, seconds: Sys.monotonicSeconds() - t0)
        }
    }

    /// Whether the table has been read and parsed (`wait()` would not block).
    var isReady: Bool { work.isDone }

    /// The parsed table (nil when unreadable), the errno of the failure, the seconds spent,
    /// and whether it was read before main.
    func wait() -> (Table?, Int32, Double, Bool) {
        let r = work.wait()
        return (r.table, r.errno, r.seconds, r.early)
    }
}
