import ArgumentParser
import Foundation
import LockInspector
import ImageLock

@main
struct Locksmith: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "locksmith",
        abstract: "Find who holds a disk image lock, and why an image won't open.",
        discussion: """
            QEMU says 'Failed to get "write" lock. Is another process using the image?'. \
            locksmith tells which process, and why. Without a subcommand it opens the \
            live view (`locksmith tui`) on a terminal, and prints `locksmith list` otherwise. It understands the lock-file scheme \
            (/var/tmp/.qemu-<sha1 of realpath>.lock) and the byte locks QEMU >= 2.10 takes \
            inside images, and can take either kind of lock itself. Images on GlusterFS \
            volumes are named gluster://HOST[:PORT]/VOLUME/PATH and locked through libgfapi.

            Exit status: 0 the lock is free / the command succeeded, 1 the lock is held by \
            someone, 2 could not check (reason on stderr), 64 usage error. `hold` exits \
            with its command's status.
            """,
        version: LocksmithVersion.current,
        subcommands: [Browse.self, List.self, Why.self, Tui.self, Audit.self, Watch.self, Try.self, Hold.self, Path.self,
                      ClearLocks.self],
        defaultSubcommand: Browse.self
    )

    /// `why` starts reading the kernel's lock table before its arguments are parsed: the
    /// first read of /proc/locks waits for an RCU grace period (file_rwsem taken for
    /// writing; ~10 ms here), which this overlaps with the rest of the start.
    ///
    /// The arguments are taken from argv as bytes (`CommandLine.unsafeArgv`), each as its
    /// `PathBytes` carrier string: an image named by bytes that are not UTF-8 is found.
    static func main() {
        let arguments = (1..<Int(CommandLine.argc)).map { PathBytes.string(cString: CommandLine.unsafeArgv[$0]!) }
        if arguments.first == "why" { Why.earlyTable = Inspector.prefetchKernelTable() }
        main(arguments)
    }
}

enum LocksmithVersion {
    static let current = "0.1.0"
}

extension Locksmith {
    /// `locksmith` alone: the TUI when stdout is a terminal, else the same as `list`.
    struct Browse: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "browse",
            abstract: "The TUI on a terminal, else the same as `list`.",
            shouldDisplay: false)

        @OptionGroup var scan: ScanOptions

        func run() throws {
            if isatty(STDOUT_FILENO) == 1 && isatty(STDIN_FILENO) == 1 {
                var tui = try Tui.parse([])
                tui.scan = scan
                try tui.run()
            } else {
                var list = try List.parse([])
                list.scan = scan
                try list.run()
            }
        }
    }
}
