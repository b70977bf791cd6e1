import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

/// Signals a lock holder the scan found, and only that process: never by bare pid. Between
/// the scan and the signal the holder may have ended and its pid been given to another
/// process. So the pid must still name a process with the start time the scan recorded
/// (field 22 of /proc/PID/stat, ticks after boot: a pid and its start time name one
/// process), which must still hold the lock (through the same fd, as its fdinfo lists it;
/// a classic POSIX lock by its pid in /proc/locks). The signal then goes through a pidfd
/// opened after that check and checked again once open: the pidfd names the checked
/// process, whatever happens to the pid afterwards.
public enum HolderSignal {
    public enum Outcome: Sendable, Equatable {
        case sent(String)
        case refused(String)

        /// One line for the user.
        public var line: String {
            switch self {
            case .sent(let s), .refused(let s): return s
            }
        }
    }

    /// Sends `signal` (named `signalName` in the outcome) to `holder` if it is still the
    /// process the scan saw, holding the same lock. Reads the live /proc.
    public static func send(_ signal: Int32, named signalName: String, to holder: Holder) -> Outcome {
        let who = "pid \(holder.pid) (\(holder.command))"
        if let why = refusal(holder) { return .refused("Not signalled: \(who) \(why).") }
        let handle: ProcessHandle
        switch ProcessHandle.open(pid: holder.pid) {
        case .success(let h): handle = h
        case .failure(let e) where e.code == ESRCH: return .refused("Not signalled: \(who) has ended.")
        case .failure(let e): return .refused("Not signalled: \(who): pidfd_open: \(e).")
        }
        // The pidfd was opened after the check; the same check once more tells that it
        // names the checked process (not one that took the pid in between).
        if let why = refusal(holder) { return .refused("Not signalled: \(who) \(why).") }
        switch handle.signal(signal) {
        case .success: return .sent("Sent \(signalName) to \(who).")
        case .failure(let e) where e.code == ESRCH: return .refused("Not signalled: \(who) has ended.")
        case .failure(let e): return .refused("Could not signal \(who): \(e).")
        }
    }

    /// Why `holder` must not be signalled now (the rest of a sentence after "pid N (cmd)"),
    /// or nil when it is the process the scan saw and still holds the lock.
    /// A gluster holder (on this host: the TUI signals no other host's pid) holds its lock
    /// on the server, out of /proc's sight: only its identity is checked.
    static func refusal(_ holder: Holder, procRoot: String = "/proc") -> String? {
        guard holder.pid > 0 else { return "has no pid" }
        guard let ticks = holder.startTicks else { return "was seen without its start time: it cannot be told from a later process with its pid" }
        guard let stat = ProcFS.read("\(procRoot)/\(holder.pid)/stat") else { return "has ended" }
        guard ProcessDetails.startTicks(stat: stat) == ticks else {
            return "has ended: the pid now names another process (a different start time)"
        }
        if holder.scheme == .gluster { return nil }
        guard let device = holder.lockedDevice, let inode = holder.lockedInode else {
            return "was seen without the file it locks: its lock cannot be checked"
        }
        func isTheLock(_ l: KernelLock) -> Bool { !l.isWaiter && l.device == device && l.inode == inode }
        if let fd = holder.fd {
            var reader = ProcessFDReader(procRoot: procRoot)
            defer { reader.close() }
            guard let info = reader.info(pid: holder.pid, fd: fd) else { return "no longer has fd \(fd) open" }
            guard info.locks.contains(where: isTheLock) else { return "no longer holds the lock through fd \(fd)" }
        } else {
            guard ProcFS.locks(procRoot: procRoot).contains(where: { $0.pid == holder.pid && isTheLock($0) }) else {
                return "no longer holds the lock"
            }
        }
        return nil
    }
}
