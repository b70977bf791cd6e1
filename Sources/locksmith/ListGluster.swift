import ArgumentParser
import LockInspector

/// `list --gluster`: a volume asked for by name that could not be scanned at all (no
/// glusterd, no such volume, no answer within --timeout, no such --gluster-path) makes
/// `list` fail with exit status 2, after printing what it could see, with one line per
/// volume on stderr. Smaller gaps (an unreadable directory, a statedump that failed) are
/// only counted, as for the local scan.
func failIfGlusterVolumesUnscanned(_ snapshot: Snapshot) throws {
    let failed = GlusterScan.failedVolumes(in: snapshot)
    guard !failed.isEmpty else { return }
    for f in failed { complain(f.why) }
    throw ExitStatus.couldNotCheck
}
