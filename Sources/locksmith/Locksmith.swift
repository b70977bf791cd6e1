import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import LockInspector
import ImageLock

@main
struct Locksmith: ParsableCommand {
    /// The root's configuration: with `browse` as the default subcommand, except when the
    /// first argument names a subcommand (`explicitSubcommand`). ArgumentParser reflects the
    /// default subcommand's every option at each parse, named subcommand or not (~6M of the
    /// ~23M instructions of `locksmith path IMAGE`); a named one never falls back to it. (A
    /// named subcommand is parsed on its own, `namedSubcommand`, but with the root's own
    /// requests: then this still holds.)
    static var configuration: CommandConfiguration { explicitSubcommand ? direct : browsing }
    nonisolated(unsafe) static var explicitSubcommand = false
    static let direct: CommandConfiguration = {
        var c = browsing
        c.defaultSubcommand = nil
        return c
    }()

    static let browsing = CommandConfiguration(
        commandName: "locksmith",
        abstract: "Find who holds a disk image lock, and why an image won't open.",
        discussion: """
            QEMU says 'Failed to get "write" lock. Is another process using the image?'. \
            locksmith tells which process, and why. Without a subcommand it opens the \
            live view (`locksmith tui`) on a terminal, and prints `locksmith list` otherwise \
            (or when given --json, -o, --no-headings or --list-columns); it takes the \
            options of both. It understands the lock-file scheme \
            (/var/tmp/.qemu-<sha1 of realpath>.lock) and the byte locks QEMU >= 2.10 takes \
            inside images, and can take either kind of lock itself. Images on GlusterFS \
            volumes are named gluster://HOST[:PORT]/VOLUME/PATH and locked through libgfapi.

            Exit status: 0 the lock is free / the command succeeded, 1 the lock is held by \
            someone, 2 could not check (reason on stderr), 64 usage error. `hold` exits \
            with its command's status.
            """,
        version: LocksmithVersion.current,
        subcommands: [Browse.self, List.self, Why.self, Tui.self, Audit.self, Watch.self, Try.self, Hold.self, Path.self, Metrics.self,
                      ClearLocks.self, Processes.self, Signal.self],
        defaultSubcommand: Browse.self
    )

    /// `why` starts reading every process's fds before its arguments are parsed (~2/3 of
    /// its time on a big host), which this overlaps with the rest of the start.
    ///
    /// The arguments are taken from argv as bytes (`CommandLine.unsafeArgv`), each as its
    /// `PathBytes` carrier string: an image named by bytes that are not UTF-8 is found.
    static func main() {
        let arguments = (1..<Int(CommandLine.argc)).map { PathBytes.string(cString: CommandLine.unsafeArgv[$0]!) }
        // `--version` alone needs nothing of ArgumentParser's: before it looks at the
        // arguments, it reflects every option of the root command and of its completion-script
        // commands (most of the start: ~10M of ~17M instructions). Printed as it prints it.
        if arguments == ["--version"] {
            print(LocksmithVersion.current)
            return
        }
        // Before any thread starts (but the early read of `list` and `audit`, whose start
        // sets it first: Sources/LocksmithStart/start.c): the scans' threads share one heap
        // (peak RSS).
        Sys.useOneHeapArena()
        // `list` and `audit` started reading the kernel's lock table before main (its first
        // read waits for an RCU grace period, which passes while the arguments are parsed;
        // Sources/LocksmithStart/start.c says when); the scan takes that read. (`why` reads
        // its image's locks from their holders' fdinfo: `FocusedLockSource`.)
        if Inspector.kernelTableReadEarly {
            if arguments.first == "audit" { Audit.earlyTable = Inspector.prefetchKernelTable() } else { List.earlyTable = Inspector.prefetchKernelTable() }
        }
        // `why` of a local image reads every process's fds (`Inspector.prefetchOpenFiles`)
        // and hashes the image's path (its lock file's name): both are started now, on
        // threads of their own, while the arguments are parsed (a cluster view diagnoses
        // this host's image first too). Not for a Gluster image, help or the version.
        if arguments.first == "why", !arguments.contains(where: { $0.contains("://") || $0 == "--help" || $0 == "-h" || $0 == "--version" }) {
            Why.earlyOpenFiles = Inspector.prefetchOpenFiles()
            Sys.startThread { Digest.load() }
        }
        if let first = arguments.first {
            explicitSubcommand = browsing.subcommands.contains { ObjectIdentifier($0) != ObjectIdentifier(Browse.self) && $0._commandName == first }
        }
        let named = namedSubcommand(arguments)
        do {
            var command = try named.map { try $0.parseAsRoot(Array(arguments.dropFirst())) } ?? parseAsRoot(arguments)
            try command.run()
        } catch {
            // As ParsableCommand.exit(withError:), but a usage error of plain `locksmith`
            // points at `locksmith --help`, never at the hidden `browse`, and one of a named
            // subcommand at `locksmith NAME --help` (ArgumentParser names only the parse's root).
            let code = exitCode(for: error)
            var message = fullMessage(for: error)
                .replacingScalars("'locksmith browse --help'", with: "'locksmith --help'")
            if let name = named?._commandName {
                message = message.replacingScalars("  See '\(name) ", with: "  See 'locksmith \(name) ")
            }
            if !message.isEmpty {
                if code == .success {
                    print(message)
                } else {
                    // A usage error quotes the arguments: each line made safe (`TerminalText`).
                    let safe = message.split(separator: "\n", omittingEmptySubsequences: false)
                        .map { TerminalText.escaped(String($0)) }.joined(separator: "\n")
                    writeStandardError(safe + "\n")
                }
            }
            Glibc.exit(code.rawValue)
        }
    }
}

extension Locksmith {
    /// The subcommand `arguments` name first, to be parsed as the root of a parse of its own:
    /// ArgumentParser, parsing from `Locksmith`, reflects the root's options, reflects the
    /// subcommand's every option once more to see whether it takes the rest of the arguments
    /// as they are, and parses two commands of its own looking for
    /// `--generate-completion-script` (callgrind, `list --json` with nothing to scan: 20.6M
    /// instructions in all, 16.6M of them the parse; parsed from the subcommand, 16.5M in
    /// all). Each
    /// subcommand's configuration (`CommandConfiguration.subcommand`) makes its help, usage
    /// and `--version` read as under the root. Not for the root's own requests (help,
    /// completion scripts and their completions, the tool-info dump), which stay with it.
    static func namedSubcommand(_ arguments: [String]) -> ParsableCommand.Type? {
        guard let first = arguments.first, explicitSubcommand,
              !arguments.contains(where: { $0.hasPrefix("--generate-completion-script") || $0.hasPrefix("--experimental-") }) else { return nil }
        return browsing.subcommands.first { $0._commandName == first }
    }
}

extension CommandConfiguration {
    /// A subcommand's configuration, also when it is the root of its parse
    /// (`Locksmith.namedSubcommand`): ArgumentParser prefixes a root's usage with its super
    /// command's name (`_superCommandName`, read of a parse's root only) and offers
    /// `--version` when a command of the parse has one, as `Locksmith` has.
    static func subcommand(commandName: String, abstract: String, usage: String? = nil, discussion: String = "") -> CommandConfiguration {
        CommandConfiguration(commandName: commandName, _superCommandName: "locksmith", abstract: abstract, usage: usage,
                             discussion: discussion, version: LocksmithVersion.current)
    }
}

enum LocksmithVersion {
    static let current = "0.1.0"
}

extension Locksmith {
    /// `locksmith` alone: the TUI when stdin and stdout are a terminal, else the same as
    /// `list`. It takes the options of both; one of list's output options (--json, -o,
    /// --no-headings, --list-columns) means `list` on a terminal too, and the TUI's own
    /// options are then ignored, as they are when the output is not a terminal.
    struct Browse: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "browse",
            abstract: "The TUI on a terminal, else the same as `list`.",
            usage: "locksmith [<options>]   (the options of `locksmith tui` and `locksmith list`)",
            shouldDisplay: false)

        @OptionGroup var scan: ScanOptions
        @OptionGroup var out: ListOutputOptions
        @OptionGroup var view: TUIViewOptions
        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        func run() throws {
            if !out.given && isatty(STDOUT_FILENO) == 1 && isatty(STDIN_FILENO) == 1 {
                var tui = try Tui.parse([])
                tui.scan = scan
                tui.view = view
                tui.cluster = cluster
                try tui.run()
            } else {
                var list = try List.parse([])
                list.scan = scan
                list.out = out
                list.cluster = cluster
                try list.run()
            }
        }
    }
}
