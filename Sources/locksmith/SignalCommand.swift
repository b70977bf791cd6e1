import ArgumentParser
import FoundationEssentials
import ImageLock
import LockInspector

extension Locksmith {
    struct Signal: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "signal",
            abstract: "Signal a lock holder on this host, only if it is still the one named (what the TUI's K runs over ssh).",
            usage: "locksmith signal --pid <pid> --started <time> --scheme <scheme> [--fd <fd>] [--signal <name>] "
                + "[--lock-dir <dir> ...] [--images <dir> ...] [--] <image>",
            discussion: """
                Scans this host (its lock dirs and image dirs as for `list`), finds the holder of \
                IMAGE with this pid, scheme, start time (ISO 8601, whole seconds, as \
                `list --json` prints it) and fd, and sends it the signal through a pidfd, \
                after checking its start time (field 22 of /proc/PID/stat) and its lock \
                before and after pidfd_open, as K does for a local holder. Anything else is \
                refused with one line saying why. A cluster view's TUI (--host/--hosts) runs \
                `locksmith signal` on the holder's host over ssh for K on a remote holder. \
                A gluster-scheme holder (named by a brick statedump) is not signalled this way.

                Exit status: 0 signalled, 1 not signalled (the holder is gone, changed or \
                holds the lock no more), 2 could not scan, 64 usage error.

                Example: locksmith signal --pid 4711 --started 2026-12-01T09:30:27Z --scheme qemu --fd 12 /var/lib/libvirt/images/web01.qcow2
                """)

        @Option(help: ArgumentHelp("The holder's pid.", valueName: "pid"))
        var pid: Int32

        @Option(help: ArgumentHelp("When it started, as list --json prints it (2026-12-01T09:30:27Z).", valueName: "time"))
        var started: String

        @Option(help: ArgumentHelp("The scheme of its lock: lockfile, qemu, gluster, virtlockd.", valueName: "scheme"))
        var scheme: String

        @Option(help: ArgumentHelp("The fd through which it holds the lock.", valueName: "fd"))
        var fd: Int32?

        @Option(help: ArgumentHelp("TERM (default), INT, HUP or KILL.", valueName: "name"))
        var signal = "TERM"

        @OptionGroup var directories: ScanDirectoryOptions

        @Argument(help: ArgumentHelp("The image it holds, as list names it.", valueName: "image"))
        var image: String

        func validate() throws {
            guard pid > 0 else { throw ValidationError("--pid takes a process id > 0") }
            guard (try? Date(started, strategy: .iso8601)) != nil else { throw ValidationError("--started takes an ISO 8601 time (2026-12-01T09:30:27Z)") }
            guard LockScheme(rawValue: scheme) != nil else { throw ValidationError("--scheme takes lockfile, qemu, gluster or virtlockd") }
            guard RemoteSignal.signals[signal] != nil else { throw ValidationError("--signal takes TERM, INT, HUP or KILL") }
            if let fd, fd < 0 { throw ValidationError("--fd takes an fd number >= 0") }
            guard !image.isEmpty else { throw ValidationError("name the image") }
            guard scheme != "gluster" else { throw ValidationError("a gluster-scheme holder is not signalled by locksmith signal") }
        }

        func run() throws {
            let outcome: HolderSignal.Outcome
            do {
                let scan = ScanRequest(lockDirectories: directories.lockDirectories, imageDirectories: directories.imageDirectories)
                outcome = try RemoteSignal.send(RemoteSignal.signals[signal]!, named: "SIG" + signal, pid: pid, started: started,
                                                scheme: LockScheme(rawValue: scheme)!, fd: fd, image: image, scanning: scan)
            } catch {
                complain("\(error)")
                throw ExitStatus.couldNotCheck
            }
            say(outcome.line)
            if case .refused = outcome { throw ExitStatus.held }
        }
    }
}
