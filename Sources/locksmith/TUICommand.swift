import ArgumentParser
import Foundation
import ImageLock
import LockInspector
import LocksmithTUI

extension Locksmith {
    struct Tui: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tui",
            abstract: "Browse every image lock on this host in a full-screen, live view.",
            discussion: """
                Shows every locked image with its holders (pid, command, VM, user, age), \
                refreshed every --interval seconds, and a detail pane for the selected \
                image: its holders, the QEMU permissions they hold and refuse to share, the \
                kernel's lock rows, its lock files, and the results of `w` / `o` (why it \
                would not open read-write / read-only) and `t` (test-acquire).
                Keys: arrows or j/k move, Enter toggles the detail pane, / filters, s/S \
                sort, r refreshes, K sends SIGTERM to the selected holder after a y at a \
                prompt, ? lists every key, q quits. NO_COLOR turns colours off as --no-color does.

                Examples:
                  locksmith tui
                  locksmith tui --interval 5 --images /var/lib/libvirt/images
                """)

        @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "secs"))
        var interval: Double = 2

        // TODO(lead): these three options should become the shared option group of
        // `list` (repeatable --lock-dir, --images, --proc) when the inspector lands.
        @Option(name: .customLong("lock-dir"), help: ArgumentHelp(
            "Directory of lock files of the lockfile scheme (repeatable; default /var/tmp).", valueName: "dir"))
        var lockDirectories: [String] = []

        @Option(name: .customLong("images"), help: ArgumentHelp(
            "Directory of disk images to look at (repeatable).", valueName: "dir"))
        var imageDirectories: [String] = []

        @Option(name: .customLong("proc"), help: ArgumentHelp(
            "The /proc to read (for tests).", valueName: "dir"))
        var procRoot: String = "/proc"

        @Flag(name: .customLong("no-color"), help: "No colours (attributes only). NO_COLOR does the same.")
        var noColor = false

        @Option(name: .customLong("max-iterations"), help: ArgumentHelp(
            "Exit after this many refreshes (for tests and demos).", valueName: "n"))
        var maxIterations: Int?

        func validate() throws {
            guard interval.isFinite, interval >= 0.1 else { throw ValidationError("--interval takes a number of seconds >= 0.1") }
            if let n = maxIterations, n < 1 { throw ValidationError("--max-iterations takes a number >= 1") }
        }

        func run() throws {
            let lockDirs = lockDirectories.isEmpty ? ["/var/tmp"] : lockDirectories
            let locker = ImageLocker(lockDirectory: lockDirs[0], procRoot: procRoot)
            let images = imageDirectories, proc = procRoot
            let sources = TUISources(
                // TODO(lead): replace with `{ try Inspector(...).snapshot() }` when the inspector lands.
                snapshot: { StandInSnapshot.make(imageDirectories: images, lockDirectories: lockDirs, procRoot: proc) },
                // TODO(lead): `why: { image, write in Why(...).verdict(...).lines }` when `why` lands.
                why: nil,
                testAcquire: TUISources.testAcquire(using: locker))
            let color = TUIOptions.colorAllowed(flag: noColor, environment: ProcessInfo.processInfo.environment)
            let app = TUIApp(sources: sources,
                             options: TUIOptions(interval: interval, color: color, maxIterations: maxIterations))
            let exit: TUIExit
            do {
                exit = try app.run(on: CursesTerminal())
            } catch {
                complain("\(error)")
                throw Status.couldNotCheck
            }
            if case .signal(let s) = exit { throw ExitCode(128 + s) }
        }
    }
}

/// STAND-IN until the inspector lands: to be replaced by `Inspector(...).snapshot()`.
/// It looks only at the files directly in `--images` directories and their lock files,
/// and names holders through the core's LockHolderFinder (no scanning of its own): no
/// VM names, users or start times, no lock files of unknown images.
enum StandInSnapshot {
    static func make(imageDirectories: [String], lockDirectories: [String], procRoot: String) -> Snapshot {
        var images: [ImageLocks] = []
        for dir in imageDirectories {
            for name in (ProcFS.list(dir) ?? []).sorted() {
                guard let (path, st) = try? ImageLocker.resolveImage(dir + "/" + name), st.kind == .regular else { continue }
                var holders: [Holder] = []
                var locks: [KernelLock] = []
                var lockFiles: [String] = []
                var schemes: [LockScheme] = []
                let inImage = LockHolderFinder.holders(of: st, conflictingWith: .write, range: .wholeFile, procRoot: procRoot)
                let byHolder = Dictionary(grouping: inImage) { "\($0.pid)/\($0.fd ?? -1)" }
                for key in byHolder.keys.sorted() {
                    let hs = byHolder[key]!
                    let h = hs[0]
                    let qemu = hs.contains { QemuPermissions.touchesLockBytes(start: $0.lock.start, end: $0.lock.end) }
                    holders.append(Holder(pid: h.pid, command: h.command, fd: h.fd, scheme: qemu ? .qemu : .virtlockd,
                                          lockType: qemu ? nil : h.lock.lockType,
                                          qemu: qemu ? QemuPermissions(lockedRanges: hs.map { ($0.lock.start, $0.lock.end) }) : nil))
                    if !schemes.contains(qemu ? .qemu : .virtlockd) { schemes.append(qemu ? .qemu : .virtlockd) }
                }
                locks += inImage.map(\.lock)
                for lockDir in lockDirectories {
                    let lf = ImageLocker(lockDirectory: lockDir).lockFilePath(realPath: path)
                    guard let (_, lst) = try? ImageLocker.resolveImage(lf) else { continue }
                    lockFiles.append(lf)
                    schemes.append(.lockfile)
                    for h in LockHolderFinder.holders(of: lst, conflictingWith: .write, range: .wholeFile, procRoot: procRoot) {
                        holders.append(Holder(pid: h.pid, command: h.command, fd: h.fd, scheme: .lockfile, lockType: h.lock.lockType))
                        locks.append(h.lock)
                    }
                }
                guard !holders.isEmpty || !lockFiles.isEmpty else { continue }
                images.append(ImageLocks(id: path, path: path, inode: st.inode, schemes: schemes, lockFiles: lockFiles,
                                         holders: holders, locks: Array(Set(locks)).sorted { ($0.inode ?? 0, $0.start) < ($1.inode ?? 0, $1.start) }))
            }
        }
        return Snapshot(host: JSONOutput.host, generated: Date(), images: images, lockFiles: [], unseen: [])
    }
}
