import ArgumentParser
import ImageLock

extension Locksmith {
    struct Path: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "path",
            abstract: "Print the lock file of an image under the lockfile scheme.",
            discussion: """
                The lock file is <lock-dir>/.qemu-<sha1>.lock, where <sha1> is the lowercase \
                hex SHA-1 of the bytes of the image's realpath. The image must exist. Nothing \
                is created or opened.

                Example: locksmith path /var/lib/libvirt/images/vm1.qcow2
                """)

        @Argument(help: ArgumentHelp("The disk image.", valueName: "image"))
        var image: String

        @OptionGroup var lockDir: LockDirOption

        func run() throws {
            let real = try reportingErrors { try ImageLocker.resolveImage(image).path }
            say(lockDir.locker().lockFilePath(realPath: real))
        }
    }
}
