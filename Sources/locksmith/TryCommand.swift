import ArgumentParser
import FoundationEssentials
import ImageLock
import LockInspector

extension Locksmith {
    struct Try: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "try",
            abstract: "Take an image's lock and release it at once; name the holders if it is taken.",
            discussion: """
                Exit 0: the lock could be taken (and was released). Exit 1: someone holds a \
                conflicting lock; each holder is named with pid and command. Exit 2: could \
                not check (missing image, unusable lock file, ...).

                With --scheme lockfile (the default) a lock file that does not exist is \
                reported free and is not created; a lock dir that is world-writable \
                without the sticky bit gets a one-line warning (--strict: exit 2). With --scheme qemu the byte locks a \
                read-write (--exclusive) or read-only (--shared) QEMU would take are \
                taken and checked as QEMU checks them, and QEMU's own message is shown.

                An image named gluster://HOST[:PORT]/VOLUME/PATH is tested on the volume \
                through libgfapi (F_GETLK; nothing is taken): the holder's pid is what \
                it put in its lock request. When the lock is held and this node is a \
                Gluster server (the gluster CLI can reach glusterd), a brick statedump \
                also names the holder's host, lk-owner and client pid \
                (--no-statedump skips it). --timeout bounds each step against the server.

                Examples:
                  locksmith try vm1.qcow2
                  locksmith try --scheme qemu --shared vm1.qcow2 --json
                  locksmith try gluster://gl1/vmstore/vm1.qcow2
                """)

        @Argument(help: ArgumentHelp("The disk image.", valueName: "image"))
        var image: String

        @Flag var mode: ModeFlag = .exclusive

        @Option(help: ArgumentHelp("Lock scheme: lockfile, qemu or gluster (implied by a gluster:// image).",
                                   valueName: "scheme"))
        var scheme: TryScheme = .lockfile

        @OptionGroup var lockDir: LockDirOption

        @OptionGroup var gluster: GlusterOptions

        @Flag(help: "For a held gluster image: do not take a brick statedump to name the holder's host.")
        var noStatedump = false

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        @Flag(help: "Refuse (exit 2) a lock dir that is world-writable without the sticky bit, instead of warning.")
        var strict = false

        enum TryScheme: String, ExpressibleByArgument, CaseIterable {
            case lockfile, qemu, gluster
            var scheme: LockScheme { SchemeChoice(rawValue: rawValue)!.lockScheme }
        }

        func run() throws {
            let locker = lockDir.locker(glusterTimeout: gluster.timeout)
            try checkLockDirectory(locker, image: image, scheme: scheme.scheme, strict: strict)
            var result = try reportingErrors {
                try locker.probe(image, scheme: scheme.scheme, mode: mode.mode)
            }
            var note: String?
            if !noStatedump { (result, note) = GlusterHolderNaming.naming(result, cli: gluster.cli) }
            if json {
                JSONOutput.write(ReportJSON.tryResult(result, note: note, host: JSONOutput.host, generated: Date()))
            } else {
                for line in TryText.lines(result, note: note) { say(line) }
            }
            if !result.acquired { throw ExitStatus.held }
        }
    }
}
