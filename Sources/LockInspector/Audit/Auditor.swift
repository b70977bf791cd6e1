import FoundationEssentials
import ImageLock

/// Runs the audit on a snapshot: gathers the few facts the rules need, then applies them.
public struct Auditor: Sendable {
    /// The lock dirs the snapshot was taken with (their modes are judged too).
    public var lockDirectories: [String]
    /// `blocked-waiter` fires for waits at least this long (seconds).
    public var waitThreshold: Double
    public var procRoot: String

    public init(lockDirectories: [String] = InspectorOptions.defaultLockDirectories, waitThreshold: Double = 30,
                procRoot: String = "/proc") {
        self.lockDirectories = LockDirectories.resolve(lockDirectories)
        self.waitThreshold = waitThreshold
        self.procRoot = procRoot
    }

    public init(_ options: InspectorOptions, waitThreshold: Double = 30) {
        self.init(lockDirectories: options.lockDirectories, waitThreshold: waitThreshold, procRoot: options.procRoot)
    }

    /// The findings on `snapshot`, most severe first.
    public func findings(_ snapshot: Snapshot, now: Date = Date()) -> [Finding] {
        let facts = AuditFacts.gather(for: snapshot, lockDirectories: lockDirectories, waitThreshold: waitThreshold,
                                      procRoot: procRoot, now: now)
        return AuditRules.all(snapshot, facts)
    }

    /// A snapshot taken as the audit needs it (with the writers of image files, which its
    /// rules judge) and its findings beside it: what `audit`, `watch` and the TUI show.
    /// `prefetched`: the kernel's lock table being read already (`Inspector.prefetchKernelTable`).
    public static func snapshot(_ options: InspectorOptions, waitThreshold: Double = 30,
                                prefetched: KernelTablePrefetch? = nil) throws -> AuditedSnapshot {
        var t = SnapshotTimings()
        return try audited(options, waitThreshold: waitThreshold, prefetched: prefetched, timings: &t).audited
    }

    /// The same, with the scan's timings (`list --audit --timing`).
    public static func snapshot(_ options: InspectorOptions, waitThreshold: Double = 30, prefetched: KernelTablePrefetch? = nil,
                                timings: inout SnapshotTimings) throws -> AuditedSnapshot {
        try audited(options, waitThreshold: waitThreshold, prefetched: prefetched, timings: &timings).audited
    }

    /// The same, with the facts the rules judged (how long each waiter has waited, file
    /// modes): what `metrics` reports beyond the findings.
    public static func audited(_ options: InspectorOptions, waitThreshold: Double = 30) throws
        -> (audited: AuditedSnapshot, facts: AuditFacts) {
        var t = SnapshotTimings()
        return try audited(options, waitThreshold: waitThreshold, prefetched: nil, timings: &t)
    }

    static func audited(_ options: InspectorOptions, waitThreshold: Double, prefetched: KernelTablePrefetch?,
                        timings t: inout SnapshotTimings) throws -> (audited: AuditedSnapshot, facts: AuditFacts) {
        var o = options
        o.findWriters = true
        o.lockFileStatus = true
        let (s, imageStatuses) = try Inspector(o).scan(timings: &t, prefetched: prefetched)
        let auditor = Auditor(o, waitThreshold: waitThreshold)
        let facts = AuditFacts.gather(for: s, lockDirectories: auditor.lockDirectories, waitThreshold: waitThreshold,
                                      procRoot: auditor.procRoot, now: Date(), imageStatuses: imageStatuses?.wait())
        return (AuditedSnapshot(s, findings: AuditRules.all(s, facts)), facts)
    }
}
