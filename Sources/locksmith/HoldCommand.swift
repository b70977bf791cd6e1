import ArgumentParser
import ImageLock
import LockInspector

extension Locksmith {
    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "hold",
            abstract: "Run a command while holding an image's lock.",
            discussion: """
                Takes the lock, runs the command with the lock held, and releases it when \
                the command ends. The lock's fd is close-on-exec: the command does not \
                inherit it. SIGINT, SIGTERM and SIGHUP are passed on to the command. \
                locksmith exits with the command's status (128+N if a signal N ended it).

                If the lock is held by someone else, the command is not run: exit 1 naming \
                the holder(s), or, with --wait, retry for up to that many seconds first.
                With --scheme lockfile the lock file is created (mode 0644, containing the \
                image's realpath) if it does not exist, and left in place afterwards.
                --scheme off takes no lock at all (QEMU's lock-image=off).
                A lock dir that is world-writable without the sticky bit gets a warning \
                (any user can delete the held lock file, and a second exclusive holder \
                then runs at the same time); --strict refuses it (exit 2).

                An image named gluster://HOST[:PORT]/VOLUME/PATH is locked on the volume \
                through libgfapi (whole-file F_WRLCK or F_RDLCK, l_pid = locksmith's pid, \
                lk-owner <hostname>:<pid>), on a connection of its own. --timeout bounds \
                each step against the server, including the release: a server that died \
                or hangs does not keep locksmith from exiting.

                Examples:
                  locksmith hold vm1.qcow2 -- qemu-img check vm1.qcow2
                  locksmith hold --shared --wait 30 base.qcow2 -- cp base.qcow2 /backup/
                  locksmith hold --scheme qemu vm1.qcow2 -- sleep 600
                  locksmith hold gluster://gl1/vmstore/vm1.qcow2 -- sleep 600
                """)

        @Argument(help: ArgumentHelp("The disk image.", valueName: "image"))
        var image: String

        @Flag var mode: ModeFlag = .exclusive

        @Option(help: ArgumentHelp("Lock scheme: lockfile, qemu, gluster (implied by a gluster:// image) or off.",
                                   valueName: "scheme"))
        var scheme: SchemeChoice = .lockfile

        @Option(help: ArgumentHelp("Wait up to this many seconds for the lock instead of failing at once.",
                                   valueName: "secs"))
        var wait: Double?

        @OptionGroup var lockDir: LockDirOption

        @OptionGroup var gluster: GlusterOptions

        @Flag(help: "Refuse (exit 2) a lock dir that is world-writable without the sticky bit, instead of warning.")
        var strict = false

        @Argument(parsing: .postTerminator, help: ArgumentHelp(
            "The command to run, after `--`.", valueName: "command"))
        var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else {
                throw ValidationError("Missing the command to run: locksmith hold IMAGE -- COMMAND [ARG...]")
            }
            if let w = wait, !(w >= 0 && w.isFinite) {
                throw ValidationError("--wait takes a number of seconds >= 0")
            }
        }

        func run() throws {
            let lockScheme = scheme.lockScheme
            let lockMode: LockMode = scheme == .off ? .off : mode.mode
            let locker = lockDir.locker(glusterTimeout: gluster.timeout)
            if lockMode != .off { try checkLockDirectory(locker, image: image, scheme: lockScheme, strict: strict) }
            let outcome = try reportingErrors {
                try locker.acquire(image, scheme: lockScheme, mode: lockMode, wait: wait)
            }
            switch outcome {
            case .busy(let c):
                complain(TryText.busy(image, c, waited: wait))
                throw ExitStatus.held
            case .acquired(let held):
                let status: Int32
                do {
                    status = try ChildProcess.runForwardingSignals(command)
                } catch let e as ChildProcess.SpawnError {
                    held.release()
                    complain(e.description)
                    throw ExitCode(e.exitStatus)
                }
                held.release()
                throw ExitCode(status)
            }
        }
    }
}
