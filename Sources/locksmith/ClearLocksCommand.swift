import ArgumentParser
import Foundation
import ImageLock

extension Locksmith {
    struct ClearLocks: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear-locks",
            abstract: "Drop the granted locks on a Gluster image, for a holder that died or is cut off.",
            discussion: """
                Takes a brick statedump to show who holds locks on the image (host, pid, \
                lk-owner), asks for confirmation on the terminal, then runs \
                `gluster volume clear-locks VOLUME PATH kind granted posix` and reports \
                what it cleared. The holders are not told: a holder that is still alive \
                goes on as if it held the lock, so clear only locks of clients that are \
                gone or cut off from the servers.

                Needs a Gluster server node: the gluster CLI talks to the glusterd of this \
                node (set GLUSTER_SOCK to use another glusterd socket), and the statedump \
                is read from this node's bricks.

                Exit status: 0 cleared (or nothing to clear), 1 not confirmed (nothing \
                done), 2 could not check or clear, 64 usage error, or no terminal to ask \
                on and no --yes.

                Example: locksmith clear-locks gluster://gl1/vmstore/vm1.qcow2
                """)

        @Argument(help: ArgumentHelp("The image: gluster://HOST[:PORT]/VOLUME/PATH.", valueName: "image"))
        var image: String

        @Flag(help: "Clear without asking.")
        var yes = false

        @OptionGroup var gluster: GlusterOptions

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
            let dump: GlusterStatedumpResult
            do {
                dump = try cli.statedump(volume: url.volume)
            } catch let e as ImageLockError {
                complain(e.description)
                throw ExitStatus.couldNotCheck
            }
            let granted = dump.records.filter { $0.path == url.path && $0.state == .active }
            let waiting = dump.records.filter { $0.path == url.path && $0.state == .blocked }
            if granted.isEmpty {
                var line = "\(url): no granted locks on this node's bricks; nothing to clear"
                if !dump.bricksNotHere.isEmpty {
                    line += " (bricks on other nodes not checked: \(dump.bricksNotHere.joined(separator: ", ")))"
                }
                say(line)
                return
            }
            say("\(url): \(granted.count) granted lock\(granted.count == 1 ? "" : "s") will be cleared:")
            for r in granted { say("  \(describe(r))") }
            if !waiting.isEmpty {
                say("  (\(waiting.count) waiting lock request\(waiting.count == 1 ? "" : "s") will then be granted in turn)")
            }
            say("The holders are not told: a live holder goes on as if it still held its lock.")
            if !yes {
                guard isatty(STDIN_FILENO) == 1 else {
                    complain("refusing to clear locks without confirmation: stdin is not a terminal; pass --yes")
                    throw ExitCode(64)
                }
                FileHandle.standardOutput.write(Data("Clear \(granted.count == 1 ? "it" : "them")? [y/N] ".utf8))
                let answer = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
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
            if result.grantedCleared == 0 {
                say("\(url): no locks cleared (released meanwhile?); gluster said: \(result.output.replacingOccurrences(of: "\n", with: "; "))")
            } else {
                say("\(url): cleared \(result.grantedCleared) granted lock\(result.grantedCleared == 1 ? "" : "s")")
            }
        }
    }
}

/// "WRITE lock on bytes 0-EOF: pid 123 on host h1 (lk-owner h1:123, client pid 123, granted at …)".
func describe(_ r: GlusterLockRecord) -> String {
    let end = r.range.end.map(String.init) ?? "EOF"
    var s = "\(r.type.rawValue) lock on bytes \(r.range.start)-\(end): "
    s += r.holderPID.map { "pid \($0)" } ?? "a process"
    if let h = r.host { s += " on host \(h)" }
    var extra: [String] = []
    if let o = r.owner { extra.append("lk-owner \(o)") }
    if let c = r.clientPID, c != r.holderPID { extra.append("client pid \(c)") }
    if let t = r.since { extra.append("\(r.state == .active ? "granted" : "waiting since") \(t)") }
    if !extra.isEmpty { s += " (" + extra.joined(separator: ", ") + ")" }
    return s
}
