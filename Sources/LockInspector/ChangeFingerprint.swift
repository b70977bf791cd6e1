import Foundation
import ImageLock

/// A cheap summary of what a snapshot depends on most: the kernel's lock table and the
/// lock dirs' entries. Equal fingerprints mean no lock was taken, released or queued and
/// no lock file came or went, so a live view (the TUI) can skip a full scan. Processes
/// that open an image without locking it change nothing here: a live view still rescans
/// fully every so often.
public struct ChangeFingerprint: Equatable, Sendable {
    private var table: Int
    private var directories: [String]

    /// One read of /proc/locks and one stat per lock dir.
    public static func read(_ options: InspectorOptions) -> ChangeFingerprint {
        var h = Hasher()
        if let bytes = ProcFS.readBytes(options.procRoot + "/locks") {
            h.combine(bytes.count)
            bytes.withUnsafeBytes { h.combine(bytes: $0) }
        } else {
            h.combine(-1)
        }
        let dirs = options.lockDirectories.map { dir -> String in
            var st = stat()
            guard stat(dir, &st) == 0 else { return "\(dir) errno \(errno)" }
            // An entry added, removed or renamed changes the directory's mtime and ctime.
            return "\(dir) \(st.st_ino) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        }
        return ChangeFingerprint(table: h.finalize(), directories: dirs)
    }
}

/// The last full snapshot and its fingerprint: a live view asks `reusable` first.
public final class SnapshotCache: @unchecked Sendable {
    private let lock = NSLock()
    private var last: (snapshot: AuditedSnapshot, fingerprint: ChangeFingerprint, taken: Double)?
    /// A full scan at least this often, whatever the fingerprint says.
    public let maxAge: Double

    public init(maxAge: Double = 30) {
        self.maxAge = maxAge
    }

    /// The last snapshot when nothing it depends on changed and it is young enough.
    public func reusable(_ fingerprint: ChangeFingerprint) -> PolledSnapshot? {
        lock.lock()
        defer { lock.unlock() }
        guard let l = last, l.fingerprint == fingerprint, monotonicSeconds() - l.taken < maxAge else { return nil }
        return PolledSnapshot(l.snapshot, isRepeat: true, refreshed: Date())
    }

    public func store(_ snapshot: AuditedSnapshot, _ fingerprint: ChangeFingerprint) {
        lock.lock()
        last = (snapshot, fingerprint, monotonicSeconds())
        lock.unlock()
    }

    /// The next `reusable` misses (a refresh the user asked for).
    public func invalidate() {
        lock.lock()
        last = nil
        lock.unlock()
    }

    private func monotonicSeconds() -> Double { Sys.monotonicSeconds() }
}
