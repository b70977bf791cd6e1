import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector
import LocksmithTUI

extension Locksmith {
    struct Tui: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "tui",
            abstract: "Browse every image lock on this host in a full-screen, live view.",
            usage: "locksmith tui [--interval <secs>] [--filter <text>] [--no-color] [--max-iterations <n>] " + ScanOptions.usage
                + " " + ClusterOptions.usage,
            discussion: """
                Shows every locked image with its holders (pid, command, VM, user, age), \
                refreshed every --interval seconds, and a detail pane for the selected \
                image: its holders, the QEMU permissions they hold and refuse to share, the \
                kernel's lock rows, its lock files, and the results of `w` / `o` (why it \
                would not open read-write / read-only) and `t` (test-acquire). With \
                --gluster (as for list) gluster images join, with a HOST column. With \
                --host/--hosts (as for list), every host's rows, with HOST; the header counts \
                holders per host and hosts not seen; / matches a host too; K on a holder of \
                another host runs `locksmith signal` there over ssh (its checks made there).
                Keys: arrows or j/k move, Enter toggles the detail pane, / filters, s/S \
                sort, r refreshes, K sends SIGTERM to the selected holder after a y at a \
                prompt, C clears the granted locks of a gluster image (clear-locks, after a \
                y; on a server node), ? lists every key, q quits. NO_COLOR turns colours off as --no-color does.

                Examples:
                  locksmith tui
                  locksmith tui --interval 5 --images /var/lib/libvirt/images
                  locksmith tui --gluster gl1/vmstore --force
                """)

        @OptionGroup var view: TUIViewOptions

        @OptionGroup var scan: ScanOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        func run() throws {
            // A long-running view: the memory of each rescan's big tables goes back to the
            // system when they are freed (Sys.mapBigHeapBlocks says why).
            Sys.mapBigHeapBlocks(atLeast: 128 << 10)
            let options = scan.inspectorOptions
            let locker = ImageLocker(lockDirectory: options.lockDirectories[0], procRoot: options.procRoot,
                                     glusterTimeout: scan.timeout)
            let timeout = scan.timeout
            let cache = SnapshotCache(maxAge: 30)
            let directory = HostDirectory()
            var sources = TUISources(
                // With the audit's findings: the header counts them, `a` lists them, rows are marked.
                // Idle costs little: while the lock table's rows it can show, the lock dirs and the
                // images dirs are unchanged, the last snapshot is reused (a full scan still runs at
                // least every 30 s, and on `r`).
                snapshot: {
                    // A cluster view: every host's, each time (a host not seen is an unseen entry).
                    if cluster.isCluster {
                        let view = try cluster.view(scan: scan.request, audit: true, quiet: true, unreachedAsUnseen: true)
                        directory.update(view.hosts)
                        return PolledSnapshot(view.audited)
                    }
                    return try cache.snapshot(options) { try Auditor.snapshot(options) }
                },
                why: { image, write in
                    guard let path = image.path else { return ["the image of this lock file is unknown"] }
                    let v = ImageWhy.diagnose(path, intent: write ? .write : .readOnly,
                                              lockDirectories: options.lockDirectories, force: false, timeout: timeout)
                    return WhyText.lines(v)
                },
                testAcquire: TUISources.testAcquire(using: locker),
                forceNextScan: { cache.invalidate() })
            let clearQuery = cluster.isCluster ? try cluster.query() : ClusterQuery(hosts: ["."])
            sources.clearLocks = { image in ClearLocksReview.clear(image, timeout: timeout, query: clearQuery) }
            if cluster.isCluster {
                sources.terminateRemote = RemoteSignal.terminator(try cluster.query(), scan: scan.request, directory: directory)
            }
            let color = TUIOptions.colorAllowed(flag: view.noColor, environment: ProcessInfo.processInfo.environment)
            let app = TUIApp(sources: sources,
                             options: TUIOptions(interval: view.interval, color: color, maxIterations: view.maxIterations,
                                                 filter: view.filter))
            let exit: TUIExit
            do {
                exit = try app.run(on: CursesTerminal())
            } catch {
                complain("\(error)")
                throw ExitStatus.couldNotCheck
            }
            // The terminal is restored. A scan or an action may still be running on its thread
            // (the TUI never waits for one): leave now, without running exit handlers that
            // would free memory under those threads' feet. The kernel drops every lock.
            var status: Int32 = 0
            if case .signal(let s) = exit { status = 128 + s }
            fflush(nil)
            _exit(status)
        }
    }
}

/// How the TUI shows the locks: shared by `tui` and plain `locksmith` on a terminal.
struct TUIViewOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Seconds between refreshes.", valueName: "secs"))
    var interval: Double = 2

    @Option(help: ArgumentHelp(
        "Start with this filter (a substring of path, lock file, command, VM or user; / changes it).",
        valueName: "text"))
    var filter: String = ""

    @Flag(name: .customLong("no-color"), help: "No colours (attributes only). NO_COLOR does the same.")
    var noColor = false

    @Option(name: .customLong("max-iterations"), help: ArgumentHelp(
        "Exit after this many refreshes (for tests and demos).", valueName: "n"))
    var maxIterations: Int?

    func validate() throws {
        guard interval.isFinite, interval >= 0.1 else { throw ValidationError("--interval takes a number of seconds >= 0.1") }
        if let n = maxIterations, n < 1 { throw ValidationError("--max-iterations takes a number >= 1") }
    }
}
