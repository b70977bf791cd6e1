import ArgumentParser

@main
struct Locksmith: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "locksmith",
        abstract: "Find who holds a disk image lock, and why an image won't open.",
        discussion: """
            QEMU says 'Failed to get "write" lock. Is another process using the image?'. \
            locksmith tells which process, and why. It understands the lock-file scheme \
            (/var/tmp/.qemu-<sha1 of realpath>.lock) and the byte locks QEMU >= 2.10 takes \
            inside images, and can take either kind of lock itself.

            Exit status: 0 the lock is free / the command succeeded, 1 the lock is held by \
            someone, 2 could not check (reason on stderr), 64 usage error. `hold` exits \
            with its command's status.
            """,
        version: LocksmithVersion.current,
        subcommands: [List.self, Why.self, Try.self, Hold.self, Path.self, Audit.self, Watch.self],
        defaultSubcommand: List.self
    )
}

enum LocksmithVersion {
    static let current = "0.1.0"
}
