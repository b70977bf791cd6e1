import _TestSupport
import Foundation
import XCTest

/// The options each command's `--help` shows (the built binary's word) held against the man
/// page's SYNOPSIS and OPTIONS and the README's `### \`locksmith …\`` headings, both ways:
/// an option the binary takes and a doc leaves out fails, and so does an option a doc gives
/// a command that does not take it.
final class DocsConsistencyTests: XCTestCase {
    /// Hidden options (`--help-hidden` shows them, `--help` does not), each with its reason.
    /// A new hidden option fails the test until it is named here.
    static let hiddenOptions: [String: [String: String]] = [
        "list": ["--timing": "the scan's phase timings on stderr, for the README's Performance notes; not for users"],
    ]

    /// Options every command takes that the docs do not repeat per command.
    static let universal: Set<String> = ["-h", "--help", "--version"]

    /// Plain `locksmith` is the hidden subcommand `browse`.
    static let plain = "browse"

    struct Help {
        var options: Set<String>
        var hidden: Set<String>
        var usage: String
        /// The values of options that take one of a list (`(values: a, b, c; ...)`).
        var values: [String: Set<String>]
    }

    static var repository: String { Run.repository }

    // MARK: - Parsing

    /// `--long` and `-x` option names in `text`, standing alone (not inside a word).
    static func optionNames(_ text: String) -> Set<String> {
        let pattern = #/(?:^|[\s\[|(`])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?=$|[\s\]|)`,.=:;])/#
        return Set(text.matches(of: pattern).map { String($0.output.1) })
    }

    /// The subcommands `locksmith --help` lists.
    static func subcommands() throws -> [String] {
        let r = try Run.locksmith(["--help"])
        let lines = r.stdout.components(separatedBy: "\n")
        guard let start = lines.firstIndex(of: "SUBCOMMANDS:") else { return [] }
        return lines[(start + 1)...].compactMap { l in
            guard let m = l.firstMatch(of: #/^  ([a-z][a-z-]*)\s/#) else { return nil }
            return String(m.output.1)
        }
    }

    /// The options in the OPTIONS section of `--help` (or `--help-hidden`) and in the titled
    /// sections of option groups (such as CLUSTER VIEW:), and the USAGE line.
    /// The titles `@OptionGroup(title:)` gives sections of --help.
    static let optionGroupTitles: Set<String> = ["CLUSTER VIEW:"]

    static func help(_ command: String) throws -> Help {
        var values: [String: Set<String>] = [:]
        func parse(_ flag: String) throws -> (Set<String>, String) {
            let r = try Run.locksmith([command, flag], environment: ["COLUMNS": "400"])
            XCTAssertEqual(r.status, 0, "locksmith \(command) \(flag): \(r)")
            var options = Set<String>(), usage = "", inOptions = false
            for line in r.stdout.components(separatedBy: "\n") {
                if line.hasPrefix("USAGE: ") { usage = line }
                if line == "OPTIONS:" || Self.optionGroupTitles.contains(line) { inOptions = true; continue }
                if inOptions && !line.hasPrefix(" ") && !line.isEmpty { inOptions = false }
                // "  -h, --help   text" / "  --lock-dir <dir>   text": the names before the values.
                if inOptions, let m = line.firstMatch(of: #/^  (-[^<\s]*(?:, -[^<\s]*)*)/#) {
                    let names = m.output.1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    options.formUnion(names)
                    if let v = line.firstMatch(of: #/\(values: ([^;)]+)/#) {
                        let set = Set(v.output.1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                        for n in names { values[n] = set }
                    }
                }
            }
            return (options, usage)
        }
        let (shown, usage) = try parse("--help")
        let (all, _) = try parse("--help-hidden")
        return Help(options: shown.subtracting(universal), hidden: all.subtracting(shown), usage: usage, values: values)
    }

    /// man/locksmith.1 with roff's `\-` as `-`.
    static func manPage() throws -> [String] {
        try String(contentsOfFile: repository + "/man/locksmith.1", encoding: .utf8)
            .replacingOccurrences(of: "\\-", with: "-").components(separatedBy: "\n")
    }

    /// Synopsis blocks of the man page: every block of SYNOPSIS (split at `.br`), and
    /// elsewhere a `.B locksmith COMMAND` line followed by `.RB [` lines (the TUI section's).
    /// Keyed by command (plain `locksmith` as `browse`); the options of each command's blocks.
    static func manSynopses(_ man: [String], commands: Set<String>) -> [String: Set<String>] {
        manSynopsisText(man, commands: commands).mapValues(optionNames)
    }

    /// The text of each command's man synopsis blocks (as `manSynopses` finds them).
    static func manSynopsisText(_ man: [String], commands: Set<String>) -> [String: String] {
        var out: [String: String] = [:]
        var section = ""
        var current: String?
        for (i, line) in man.enumerated() {
            if line.hasPrefix(".SH ") { section = String(line.dropFirst(4)); current = nil; continue }
            if let m = line.wholeMatch(of: #/\.B locksmith(?: ([a-z-]+))?/#) {
                let name = m.output.1.map(String.init) ?? plain
                let next = i + 1 < man.count ? man[i + 1] : ""
                if commands.contains(name) && (section == "SYNOPSIS" || next.hasPrefix(".RB [")) {
                    current = name
                    out[name, default: ""] += "\n"
                    continue
                }
            }
            if line == ".br" || line.hasPrefix(".PP") || line.hasPrefix(".TP") { current = nil }
            if let c = current { out[c, default: ""] += line + "\n" }
        }
        return out
    }

    struct OptionEntry {
        var names: Set<String>
        /// The commands named in its "applies to" lines (`.BR audit ", " watch :`); nil when none.
        var commands: Set<String>?
        var line: Int
    }

    /// The entries of OPTIONS: each `.TP` tag's option names and the commands its body names.
    static func manOptions(_ man: [String], commands: Set<String>) -> [OptionEntry] {
        guard let start = man.firstIndex(of: ".SH OPTIONS") else { return [] }
        let end = man[(start + 1)...].firstIndex { $0.hasPrefix(".SH ") } ?? man.count
        var entries: [OptionEntry] = []
        var i = start + 1
        while i < end {
            if man[i] == ".TP" && i + 1 < end {
                var entry = OptionEntry(names: optionNames(man[i + 1].replacingOccurrences(of: "\"", with: " ")),
                                        commands: nil, line: i + 2)
                var j = i + 2
                while j < end && man[j] != ".TP" {
                    // An "applies to" line: only command names, then a colon.
                    if let m = man[j].wholeMatch(of: #/\.BR? (.+?) ?:/#) {
                        let words = m.output.1.replacingOccurrences(of: "\"", with: " ")
                            .split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
                        if !words.isEmpty && words.allSatisfy(commands.contains) {
                            entry.commands = (entry.commands ?? []).union(words)
                        }
                    }
                    j += 1
                }
                entries.append(entry)
                i = j
            } else {
                i += 1
            }
        }
        return entries
    }

    /// The README's `### \`locksmith …\`` headings: the options each command's headings give.
    static func readmeHeadings(commands: Set<String>) throws -> [String: Set<String>] {
        try readmeHeadingText(commands: commands).mapValues(optionNames)
    }

    /// The synopses of the README's `### \`locksmith …\`` headings, joined per command.
    static func readmeHeadingText(commands: Set<String>) throws -> [String: String] {
        let text = try String(contentsOfFile: repository + "/README.md", encoding: .utf8)
        var out: [String: String] = [:]
        for line in text.components(separatedBy: "\n") {
            guard let m = line.firstMatch(of: #/^### `locksmith([^`]*)`/#) else { continue }
            let synopsis = String(m.output.1)
            let word = synopsis.split(separator: " ").first.map(String.init) ?? ""
            let name = commands.contains(word) ? word : plain
            out[name, default: ""] += synopsis + "\n"
        }
        return out
    }

    /// `--opt a|b|c` value lists in a synopsis (roff macros and spaces around `|` removed).
    static func valueLists(_ text: String) -> [String: Set<String>] {
        let plain = text.replacing(#/(?m)^\.[A-Z]+ /#, with: "")
            .replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: " | ", with: "|")
        var out: [String: Set<String>] = [:]
        for m in plain.matches(of: #/(--[a-z][a-z-]*) ([a-z][a-z-]*(?:\|[a-z][a-z-]*)+)/#) {
            out[String(m.output.1), default: []].formUnion(m.output.2.split(separator: "|").map(String.init))
        }
        return out
    }

    // MARK: - Tests

    func testTheParsersSeeWhatTheyShould() throws {
        XCTAssertEqual(Self.optionNames(".RB [ --exclusive | --shared ] [-o COLUMNS] read-only --lock-dir=DIR"),
                       ["--exclusive", "--shared", "-o", "--lock-dir"])
        let commands = try Self.subcommands()
        XCTAssertTrue(Set(commands).isSuperset(of: ["list", "tui", "why", "try", "hold", "path", "audit", "watch",
                                                    "metrics", "clear-locks"]), "\(commands)")
        let list = try Self.help("list")
        XCTAssertTrue(list.options.isSuperset(of: ["--json", "-o", "--lock-dir", "--gluster"]), "\(list.options)")
        XCTAssertFalse(list.options.contains("--help"))
        XCTAssertEqual(list.hidden, ["--timing"])
    }

    /// Every command's USAGE line names every option its OPTIONS list shows (a hand-written
    /// usage cannot fall behind), and plain `locksmith` takes exactly list's and tui's options,
    /// as its usage, the README and the man page say.
    func testUsageLinesNameEveryOption() throws {
        var helps: [String: Help] = [:]
        for c in try Self.subcommands() + [Self.plain] { helps[c] = try Self.help(c) }
        for (c, h) in helps where c != Self.plain {
            XCTAssertFalse(h.usage.contains("<options>"), "locksmith \(c): \(h.usage)")
            let inUsage = Self.optionNames(h.usage)
            XCTAssertEqual(h.options.subtracting(inUsage), [], "locksmith \(c) --help: options missing from \(h.usage)")
            XCTAssertEqual(inUsage.subtracting(h.options), [], "locksmith \(c) --help: USAGE names options it lacks")
        }
        let plain = try XCTUnwrap(helps[Self.plain])
        XCTAssertTrue(plain.usage.contains("the options of `locksmith tui` and `locksmith list`"), plain.usage)
        // list's --audit (with its --wait-threshold) is what a cluster view asks each host
        // for: plain `locksmith` leaves it to `list`.
        XCTAssertEqual(plain.options, helps["list"]!.options.union(helps["tui"]!.options)
            .subtracting(["--audit", "--wait-threshold"]))
    }

    /// Hidden options are named, with a reason, in `hiddenOptions`.
    func testHiddenOptionsAreDeliberate() throws {
        for c in try Self.subcommands() + [Self.plain] {
            XCTAssertEqual(try Self.help(c).hidden, Set((Self.hiddenOptions[c] ?? [:]).keys),
                           "locksmith \(c): hidden options differ from DocsConsistencyTests.hiddenOptions")
        }
    }

    /// Each command's documented options (in `doc`) against what its `--help` shows, both ways.
    func assertBothWays(_ documented: [String: Set<String>], in doc: String, commands: [String],
                        file: StaticString = #filePath, line: UInt = #line) throws {
        for c in commands {
            let name = c == Self.plain ? "locksmith" : "locksmith \(c)"
            guard let given = documented[c] else {
                XCTFail("\(doc) has no synopsis of \(name)", file: file, line: line)
                continue
            }
            let help = try Self.help(c)
            XCTAssertEqual(help.options.subtracting(given).sorted(), [],
                           "\(name) takes these (its --help shows them) but \(doc) leaves them out", file: file, line: line)
            XCTAssertEqual(given.subtracting(help.options).sorted(), [],
                           "\(doc) gives \(name) these, but its --help does not show them", file: file, line: line)
        }
    }

    func testManSynopsisGivesEachCommandExactlyItsOptions() throws {
        let commands = try Self.subcommands() + [Self.plain]
        try assertBothWays(Self.manSynopses(try Self.manPage(), commands: Set(commands)),
                           in: "man/locksmith.1's synopsis", commands: commands)
    }

    func testManOptionsDescribeEveryOptionAndNameTheRightCommands() throws {
        let commands = try Self.subcommands()
        let entries = Self.manOptions(try Self.manPage(), commands: Set(commands))
        XCTAssertFalse(entries.isEmpty, "no OPTIONS section in man/locksmith.1")
        var takenBy: [String: Set<String>] = [:]
        for c in commands {
            for o in try Self.help(c).options { takenBy[o, default: []].insert(c) }
        }
        let described = entries.reduce(into: Set<String>()) { $0.formUnion($1.names) }
        XCTAssertEqual(Set(takenBy.keys).subtracting(described).sorted(), [],
                       "options some command takes that man/locksmith.1's OPTIONS does not describe")
        XCTAssertEqual(described.subtracting(takenBy.keys).sorted(), [],
                       "options man/locksmith.1's OPTIONS describes that no command takes")
        for e in entries {
            guard let named = e.commands else { continue }
            let takers = e.names.reduce(into: Set<String>()) { $0.formUnion(takenBy[$1] ?? []) }
            XCTAssertEqual(named.subtracting(takers).sorted(), [],
                           "man OPTIONS (line \(e.line)) names commands for \(e.names.sorted()) that do not take it")
            XCTAssertEqual(takers.subtracting(named).sorted(), [],
                           "man OPTIONS (line \(e.line)): these commands take \(e.names.sorted()) but are not named")
        }
    }

    func testReadmeHeadingsGiveEachCommandExactlyItsOptions() throws {
        let commands = try Self.subcommands()
        let headings = try Self.readmeHeadings(commands: Set(commands))
        // Plain `locksmith` too, if the README gives it a heading.
        try assertBothWays(headings, in: "README.md's ### `locksmith …` headings",
                           commands: commands + (headings[Self.plain] == nil ? [] : [Self.plain]))
    }

    /// A value list a doc gives (`--scheme lockfile|qemu|gluster`) is the one `--help` gives.
    func testValueListsMatch() throws {
        let commands = try Self.subcommands()
        let man = Self.manSynopsisText(try Self.manPage(), commands: Set(commands))
        let readme = try Self.readmeHeadingText(commands: Set(commands))
        var checked = 0
        for c in commands {
            let help = try Self.help(c)
            for (doc, text) in [("man synopsis", man[c] ?? ""), ("README heading", readme[c] ?? "")] {
                for (option, values) in Self.valueLists(text) {
                    checked += 1
                    XCTAssertEqual(values, help.values[option], "\(doc) of locksmith \(c): \(option) values")
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 6, "try, hold and audit each give value lists in both docs")
    }

    /// Help text fits 80 columns as written: a line that starts indented in the discussion
    /// (a table row, an example) comes out whole, not broken by ArgumentParser's wrapping, and
    /// no line carries a stray line-continuation backslash.
    func testHelpTextIsNotMangledByWrapping() throws {
        for c in try Self.subcommands() + [Self.plain] {
            let wide = try Run.locksmith([c, "--help"], environment: ["COLUMNS": "400"]).stdout
            let narrow = try Run.locksmith([c, "--help"], environment: ["COLUMNS": "80"]).stdout
            let narrowLines = Set(narrow.components(separatedBy: "\n"))
            let overview = wide.components(separatedBy: "\n").prefix { !$0.hasPrefix("USAGE:") }
            for line in overview where line.hasPrefix("  ") {
                XCTAssertTrue(narrowLines.contains(line), "locksmith \(c) --help at 80 columns breaks: \(line)")
            }
            for line in narrow.components(separatedBy: "\n") {
                XCTAssertFalse(line.hasSuffix("\\"), "locksmith \(c) --help: a stray backslash: \(line)")
            }
        }
    }
}
