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
    throw Status.couldNotCheck
}

private enum HostKey: String, CodingKey { case host }

/// `"host"` of a holder in `list --json`: the host of a gluster holder when it is known,
/// else null (a local holder, or a gluster holder seen through F_GETLK alone).
func encodeGlusterHost(_ host: String?, to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: HostKey.self)
    try c.encode(host, forKey: .host)
}
