// Phase 1 of a scan (Scan.swift): the kernel's lock table, /proc/locks, read on a thread of
// its own while the other phases run.
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

/// Reads /proc/locks on its own thread, or takes the read the executable started before main.
final class KernelTableReader: Sendable {
    typealias Table = (locks: [KernelLock], malformed: [String])
    private let source: Source

    private enum Source: Sendable {
        /// The executable's read of this path (`Sys.takeEarlyRead`), taken and parsed by `wait`.
        case early(String)
        case thread(ThreadWork<Read>)
    }

    struct Read: @unchecked Sendable {
        var table: Table?
        var errno: Int32
        var seconds: Double
        /// Read by the executable before main (`Sys.takeEarlyRead`).
        var early = false
    }

    /// Reads and parses `path` on its own thread. `early`: take the read of `path` the
    /// executable started before main (`Sys.takeEarlyRead`), when there is one; `wait`
    /// then takes and parses it on its caller's thread (its reader's end wakes the caller
    /// directly: a thread of ours between them would be one more wake-up, traced at 0.4-0.9
    /// ms between the table's arrival and the scan going on).
    init(path: String, early: Bool = false) {
        if early && Sys.earlyReadRunning(path) {
            source = .early(path)
        } else {
            source = .thread(ThreadWork { Self.read(path) })
        }
    }

    private static func read(_ path: String) -> Read {
        let t0 = Sys.monotonicSeconds()
        guard let bytes = ProcFS.readBytes(path) else { return Read(table: nil, errno: errno, seconds: Sys.monotonicSeconds() - t0) }
        return Read(table: KernelLock.parseTable(bytes), errno: 0, seconds: Sys.monotonicSeconds() - t0)
    }

    /// The parsed table (nil when unreadable), the errno of the failure, the seconds spent,
    /// and whether it was read before main. Call once.
    func wait() -> (Table?, Int32, Double, Bool) {
        let r: Read
        switch source {
        case .thread(let work):
            r = work.wait()
        case .early(let path):
            if let read = Sys.takeEarlyRead(path) {
                let t0 = Sys.monotonicSeconds()
                r = read.bytes.map { Read(table: KernelLock.parseTable($0), errno: 0, seconds: read.seconds + Sys.monotonicSeconds() - t0, early: true) }
                    ?? Read(table: nil, errno: read.errno, seconds: read.seconds, early: true)
            } else {
                r = Self.read(path)  // taken by someone else meanwhile: read it now
            }
        }
        return (r.table, r.errno, r.seconds, r.early)
    }
}
