import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// What `audit --fix` did with one stale lock file.
public struct StaleFix: Sendable, Equatable {
    public var path: String
    public var removed: Bool
    public var outcome: String

    public init(path: String, removed: Bool, outcome: String) {
        (self.path, self.removed, self.outcome) = (path, removed, outcome)
    }
}

extension Auditor {
    /// The findings `fixes` did not settle: all but the stale lock files every one of whose
    /// files was removed (what `audit --fail-on` judges after `--fix`).
    public static func remaining(_ findings: [Finding], after fixes: [StaleFix]) -> [Finding] {
        let removed = Set(fixes.filter(\.removed).map(\.path))
        return findings.filter { !($0.rule == .staleLockFile && $0.files.allSatisfy(removed.contains)) }
    }

    /// Removes each stale lock file through the core. Each lock dir is opened once
    /// (`OpenedDirectory`: a walk that follows no link another user could plant) and
    /// every check, lock and unlink happens relative to it, on the file the scan saw
    /// (same device and inode): a directory on the path swapped for a link to another
    /// lock dir cannot redirect the removal to that dir's held files.
    public static func fixStale(_ findings: [Finding], lockFiles: [LockFileEntry], policy: LockFlavorPolicy) -> [StaleFix] {
        let seen = Dictionary(lockFiles.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var dirs: [String: Result<OpenedDirectory, Errno>] = [:]
        var out: [StaleFix] = []
        for f in findings where f.rule == .staleLockFile {
            for path in f.files {
                let (dir, name) = ImageLocker.directoryAndName(path)
                if dirs[dir] == nil { dirs[dir] = OpenedDirectory.open(dir) }
                let opened: OpenedDirectory
                switch dirs[dir]! {
                case .success(let d): opened = d
                case .failure(let e) where e.code == ELOOP:
                    out.append(StaleFix(path: path, removed: false, outcome: "kept: the path to \(dir) goes through a "
                                       + "symbolic link that root does not own in a dir only root may write"))
                    continue
                case .failure(let e):
                    out.append(StaleFix(path: path, removed: false, outcome: "kept: cannot open \(dir): \(e)"))
                    continue
                }
                let expected = seen[path].flatMap { e in e.device.map { (device: $0, inode: e.inode) } }
                let locker = ImageLocker(lockDirectory: dir, flavorPolicy: policy)
                do {
                    let r = try locker.removeStaleLockFile(named: name, in: opened, expecting: expected)
                    out.append(StaleFix(path: path, removed: r == .removed, outcome: r.description))
                } catch let e as ImageLockError {
                    out.append(StaleFix(path: path, removed: false, outcome: "kept: " + e.description))
                } catch {
                    out.append(StaleFix(path: path, removed: false, outcome: "kept: \(error)"))
                }
            }
        }
        return out
    }
}
