import ArgumentParser
import FoundationEssentials
import LockInspector

extension Locksmith {
    struct Processes: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "processes",
            abstract: "Describe processes by pid, as a cluster view asks each host about Gluster lock holders.",
            discussion: """
                For each PID that names a process on this host: its command, user, start \
                time, state, VM, and the Gluster volumes it uses (files open on a \
                fuse.glusterfs mount; volumes its arguments name as gluster://HOST/VOLUME \
                or --volfile-id). A pid with no process is left out. Only /proc is read. \
                A cluster view (`list`, `why`, `clear-locks` with --host/--hosts) runs \
                `locksmith processes --json PID...` on the host a brick statedump names for \
                a Gluster lock, to tell a live holder from a stale lock.

                Exit status: 0 (also when no pid names a process), 64 usage error.

                Example: locksmith processes --json 4711 4712
                """)

        @Argument(help: ArgumentHelp("The pids (1 to 4194304; at most 4096).", valueName: "pid"))
        var pids: [Int32] = []

        @Flag(help: "Print JSON (docs/schema/processes.json).")
        var json = false

        func validate() throws {
            guard !pids.isEmpty else { throw ValidationError("name at least one pid") }
            guard pids.count <= 4096 else { throw ValidationError("at most 4096 pids") }
            for p in pids where p < 1 || p > 4_194_304 { throw ValidationError("not a pid: \(p)") }
        }

        func run() throws {
            let found = HostProcesses.read(pids: pids)
            if json {
                writeStandardOutput(ProcessesJSON.render(host: JSONOutput.host, version: LocksmithVersion.current,
                                                         processes: found))
                return
            }
            for p in found { say(ClearLocksText.line(p)) }
        }
    }
}
