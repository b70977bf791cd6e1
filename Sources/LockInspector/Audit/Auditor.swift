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
    public static func snapshot(_ options: InspectorOptions, waitThreshold: Double = 30) throws -> AuditedSnapshot {
        try audited(options, waitThreshold: waitThreshold).audited
    }

    /// The same, with the facts the rules judged (how long each waiter has waited, file
    /// modes): what `metrics` reports beyond the findings.
    public static func audited(_ options: InspectorOptions, waitThreshold: Double = 30) throws
        -> (audited: AuditedSnapshot, facts: AuditFacts) {
        var o = options
        o.findWriters = true
        o.lockFileStatus = true
        var t = SnapshotTimings()
        let (s, imageStatuses) = try Inspector(o).scan(timings: &t)
        let auditor = Auditor(o, waitThreshold: waitThreshold)
        let facts = AuditFacts.gather(for: s, lockDirectories: auditor.lockDirectories, waitThreshold: waitThreshold,
                                      procRoot: auditor.procRoot, now: Date(), imageStatuses: imageStatuses?.wait())
        return (AuditedSnapshot(s, findings: AuditRules.all(s, facts)), facts)
    }
}
