import ArgumentParser
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock
import LockInspector

extension Locksmith {
    struct ClearLocks: ParsableCommand {
        static let configuration = CommandConfiguration.subcommand(
            commandName: "clear-locks",
            abstract: "Drop the granted locks on a Gluster image, for a holder that died or is cut off.",
            discussion: """
                Takes a brick statedump to show who holds locks on the image (host, pid, \
                lk-owner), checks each holder on its host (`locksmith processes --json` \
                over ssh for the hosts named with --host/--hosts; this host's /proc), asks \
                for confirmation on the terminal, then runs \
                `gluster volume clear-locks VOLUME PATH kind granted posix` and reports \
                what it cleared. The holders are not told: a holder that is still alive \
                goes on as if it held the lock. So it clears only when every holder is \
                proven stale: its host answered and has no such process (or one that \
                cannot hold the lock: ended, no file of the volume open, started after the \
                lock was granted). A live holder, or one on a host that did not answer or \
                is not in view (possibly stale), is named and nothing is cleared, unless \
                --force-live.

                Needs a Gluster server node: the gluster CLI talks to the glusterd of this \
                node (set GLUSTER_SOCK to use another glusterd socket), and the statedump \
                is read from this node's bricks.

                Exit status: 0 cleared (or nothing to clear), 1 nothing done: a holder \
                is not proven stale (without --force-live), or not confirmed, 2 could not \
                check or clear, 64 usage error, or no terminal to ask on and no --yes.

                Example: locksmith clear-locks gluster://gl1/vmstore/vm1.qcow2 --host h1 --host h2
                """)

        @Argument(help: ArgumentHelp("The image: gluster://HOST[:PORT]/VOLUME/PATH.", valueName: "image"))
        var image: String

        @Flag(help: "Clear without asking.")
        var yes = false

        @Flag(name: .customLong("force-live"), help: "Clear also when a holder is live or possibly stale (still asks, unless --yes).")
        var forceLive = false

        @OptionGroup var gluster: GlusterOptions

        @OptionGroup(title: "Cluster view") var cluster: ClusterOptions

        func validate() throws {
            do {
                _ = try GlusterURL(parsing: image)
            } catch let e as ImageLockError {
                throw ValidationError(e.description)
            }
        }

        func run() throws {
            let url = try GlusterURL(parsing: image)
            let cli = gluster.cli
            guard cli.isUsable else {
                complain("clear-locks needs the gluster CLI and a glusterd on this node (a server of volume \(url.volume)); run it there")
                throw ExitStatus.couldNotCheck
            }
            let query = cluster.isCluster ? try cluster.query() : ClusterQuery(hosts: ["."])
            let check: ClearLocksReview.Check
            do {
                check = try ClearLocksReview.check(url, cli: cli, query: query)
            } catch let e as ImageLockError {
                complain(e.description)
                throw ExitStatus.couldNotCheck
            }
            let granted = check.granted
            if granted.isEmpty {
                say(ClearLocksText.nothingGranted(url, bricksNotHere: check.bricksNotHere))
                return
            }
            // Each holder was checked on its own host: this one's /proc, the others' `processes --json`.
            for a in check.failed { complain("host \(ClusterText.line(a.destination)): \(a.table.error ?? "not seen")") }
            ClearLocksText.review(url, granted: granted.count, review: check.review).forEach(say)
            let standing = check.review.notProvenStale
            if !standing.isEmpty && !forceLive {
                say(ClearLocksText.refusal(standing: standing.count))
                throw ExitStatus.held
            }
            ClearLocksText.beforeClearing(waiting: check.waiting.count, forced: !standing.isEmpty).forEach(say)
            if !yes {
                guard isatty(STDIN_FILENO) == 1 else {
                    complain("refusing to clear locks without confirmation: stdin is not a terminal; pass --yes")
                    throw ExitCode(64)
                }
                writeStandardOutput("Clear \(granted.count == 1 ? "it" : "them")? [y/N] ")
                let answer = readLine(strippingNewline: true)?.trimmingBlanks.lowercased() ?? ""
                guard answer == "y" || answer == "yes" else {
                    say("Nothing cleared.")
                    throw ExitStatus.held
                }
            }
            let result: GlusterClearLocksResult
            do {
                result = try cli.clearGrantedLocks(volume: url.volume, path: url.path)
            } catch let e as ImageLockError {
                complain(e.description)
                throw ExitStatus.couldNotCheck
            }
            say(ClearLocksText.result(url, result))
        }
    }
}
