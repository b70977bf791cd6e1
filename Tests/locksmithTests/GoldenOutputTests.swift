import _TestSupport
import Foundation
import ImageLock
import XCTest

/// Pins what the commands print — text and `--json` — on one live state (`LiveScenario`:
/// qemu-nbd writing, two qemu-io readers, a `locksmith hold`, a python lockf), so that a
/// change to how the code is laid out provably changes no output. What differs from run to
/// run is replaced before comparing: the scenario's directory, lock-file names (they hash
/// that directory), pids, inodes, devices, times and durations, the host name; runs of
/// spaces in text become one space (column widths follow the length of pids and paths).
///
/// The scenario lives in /tmp/locksmith-golden (lock-file names, and so the order of lock
/// files, follow from the image paths). Lists are of the whole host: another test holding
/// QEMU locks at the same time would show.
///
/// The expected outputs live in Tests/locksmithTests/Golden/. To change one on purpose,
/// run this class with LOCKSMITH_GOLDEN_UPDATE=1, read the diff, and commit it with the
/// change that caused it.
final class GoldenOutputTests: XCTestCase {
    static let goldenDir = Run.repository + "/Tests/locksmithTests/Golden"

    func testOutputsOnALiveStateMatchTheGoldenFiles() throws {
        // One fixed directory (lock-file names, and so the order of lock files, hash its
        // path), taken by one test process at a time.
        let guardFD = open("/tmp/locksmith-golden.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        XCTAssertGreaterThanOrEqual(guardFD, 0)
        defer { close(guardFD) }
        XCTAssertEqual(flock(guardFD, LOCK_EX), 0)
        let s = try LiveScenario(in: try TempDir(exactly: "/tmp/locksmith-golden"))
        defer { s.stop() }
        let free = s.dir.makeFile("free.img")
        // Lock files nobody holds, for the audit: one that names its image (world-writable),
        // one whose image is unknown.
        let freeLock = s.lockDir + "/" + ImageLocker.lockFileName(realPath: free)
        XCTAssertTrue(FileManager.default.createFile(atPath: freeLock, contents: Data((free + "\n").utf8)))
        XCTAssertEqual(chmod(freeLock, 0o666), 0)
        XCTAssertTrue(FileManager.default.createFile(
            atPath: s.lockDir + "/.qemu-" + String(repeating: "0", count: 40) + ".lock", contents: nil))
        let dirs = ["--lock-dir", s.lockDir, "--images", s.dir.path]
        let n = try Normaliser(s, extraImages: [free])

        var cases: [(name: String, args: [String], status: Int32)] = [
            ("list.json", ["list", "--json"] + dirs, 0),
            ("list.txt", ["list", "-o", "image,scheme,mode,pid,command,vm,user,age,fd,open,held,unshared,lockfile,host,disk"] + dirs, 0),
            ("list-default.txt", ["list"] + dirs, 0),
            ("audit.json", ["audit", "--json"] + dirs, -1),
            ("audit.txt", ["audit"] + dirs, -1),
            ("metrics.prom", ["metrics"] + dirs, 0),
        ]
        for (label, image) in [("writable", s.writable), ("base", s.base), ("held", s.held),
                               ("py", s.pyImage), ("free", free)] {
            cases.append(("why-\(label).json", ["why", "--json", "--lock-dir", s.lockDir, image], -1))
            cases.append(("why-\(label).txt", ["why", "--lock-dir", s.lockDir, image], -1))
            cases.append(("why-force-\(label).txt", ["why", "--force", "--lock-dir", s.lockDir, image], -1))
            cases.append(("try-\(label).json", ["try", "--json", "--lock-dir", s.lockDir, image], -1))
            cases.append(("try-\(label).txt", ["try", "--lock-dir", s.lockDir, image], -1))
        }

        let update = ProcessInfo.processInfo.environment["LOCKSMITH_GOLDEN_UPDATE"] == "1"
        if update { try FileManager.default.createDirectory(atPath: Self.goldenDir, withIntermediateDirectories: true) }
        var seen: Set<String> = []
        for c in cases {
            let r = try Run.locksmith(c.args, environment: ["LOCKSMITH_COLUMNS": "", "HOME": s.dir.path])
            XCTAssertTrue(c.status < 0 || r.status == c.status, "\(c.name): \(r)")
            var out = n.normalise(r.stdout, text: !c.name.hasSuffix(".json"))
            if !c.name.hasPrefix("why"), !c.name.hasPrefix("try") { out = try Self.onlyTheScenario(out, name: c.name) }
            // audit's status follows from every finding on the host: the scenario's own is
            // 1 only when one of its findings is critical.
            var status = r.status
            if c.name.hasPrefix("audit"), status == 1, !out.contains("CRITICAL"), !out.contains("\"severity\":\"critical\"") {
                status = 0
            }
            let text = "$ locksmith " + n.normalise(c.args.joined(separator: " "), text: true)
                + "\nexit \(status)\n--- stdout\n" + out + "--- stderr\n" + n.normalise(r.stderr, text: true)
            seen.insert(c.name)
            try Self.check(c.name, text, update: update)
        }
        // Every golden file is still produced: a dropped case must drop its file too.
        let files = (try? FileManager.default.contentsOfDirectory(atPath: Self.goldenDir)) ?? []
        XCTAssertEqual(Set(files.filter { !$0.hasPrefix("help-") }), seen, "golden files without a case, or cases without a file")
    }

    /// Pins the help and usage texts ArgumentParser makes from the commands' declarations:
    /// the root's `--help`, each subcommand's, and the usage errors of plain `locksmith`
    /// and of a subcommand, so that a change to how the options are declared (to parse
    /// faster) provably changes none of them. (COLUMNS fixed: the help is wrapped to it.)
    func testHelpAndUsageTextsMatchTheGoldenFiles() throws {
        let cases: [(name: String, args: [String])] = [
            ("help-root.txt", ["--help"]), ("help-list.txt", ["list", "--help"]), ("help-why.txt", ["why", "--help"]),
            ("help-audit.txt", ["audit", "--help"]), ("help-tui.txt", ["tui", "--help"]), ("help-watch.txt", ["watch", "--help"]),
            ("help-metrics.txt", ["metrics", "--help"]), ("help-signal.txt", ["signal", "--help"]),
            ("help-usage-errors.txt", ["--bogus"]), ("help-usage-errors-list.txt", ["list", "--timeout", "0"]),
        ]
        let update = ProcessInfo.processInfo.environment["LOCKSMITH_GOLDEN_UPDATE"] == "1"
        for c in cases {
            let r = try Run.locksmith(c.args, environment: ["COLUMNS": "100"])
            let text = "$ locksmith " + c.args.joined(separator: " ") + "\nexit \(r.status)\n--- stdout\n" + r.stdout
                + "--- stderr\n" + r.stderr
            try Self.check(c.name, text, update: update)
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: Self.goldenDir)) ?? []
        XCTAssertEqual(Set(files.filter { $0.hasPrefix("help-") }), Set(cases.map(\.name)), "help golden files without a case")
    }

    /// `text` against the golden file `name`, or written to it with LOCKSMITH_GOLDEN_UPDATE=1.
    static func check(_ name: String, _ text: String, update: Bool) throws {
        let path = goldenDir + "/" + name
        if update {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOfFile: path, encoding: .utf8) else {
            XCTFail("\(name): no golden file \(path); run with LOCKSMITH_GOLDEN_UPDATE=1")
            return
        }
        if expected != text { XCTFail("\(name) differs from its golden file \(path):\n" + diff(expected, text)) }
    }

    /// `list`, `audit` and `metrics` are of the whole host, where other tests (or other
    /// users of the machine) may hold locks too: only the scenario's part (what names
    /// `<dir>`) is kept. JSON is parsed, filtered and written again with sorted keys (the
    /// writers sort them too), so it is compared by content there.
    static func onlyTheScenario(_ out: String, name: String) throws -> String {
        let ours = { (s: String) in s.contains("<dir>") }
        if name.hasSuffix(".json") {
            guard var top = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else {
                XCTFail("\(name): not a JSON object: \(out.prefix(200))")
                return out
            }
            func keep(_ key: String) {
                guard let items = top[key] as? [Any] else { return }
                top[key] = items.filter { item in
                    let data = (try? JSONSerialization.data(withJSONObject: item, options: [.sortedKeys])) ?? Data()
                    return ours(String(decoding: data, as: UTF8.self))
                }
            }
            for key in ["images", "lock_files", "findings", "waiters"] { keep(key) }
            if top["counts"] != nil, let findings = top["findings"] as? [[String: Any]] {
                var counts = ["critical": 0, "warning": 0, "info": 0]
                for f in findings { if let sev = f["severity"] as? String { counts[sev, default: 0] += 1 } }
                top["counts"] = counts
            }
            let data = try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        }
        var lines: [String] = []
        var keepingBlock = false
        for line in out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if name.hasPrefix("metrics") {
                // Counts over the whole host are not the scenario's; what could not be
                // looked at is a series only when there is some.
                if line.hasPrefix("locksmith_unseen{") || line.hasPrefix("# HELP locksmith_unseen ")
                    || line.hasPrefix("# TYPE locksmith_unseen ") { continue }
                if line.hasPrefix("locksmith_audit_findings{") {
                    lines.append(String(line[..<(line.lastIndex(of: " ") ?? line.endIndex)]) + " <n>")
                } else if !line.contains("image=\"") || ours(line) {
                    lines.append(line)
                }
            } else if name.hasPrefix("audit") {
                // A finding is a line and the indented lines under it; then one summary line.
                if line.hasPrefix(" ") {
                    if keepingBlock { lines.append(line) }
                } else if line == "no findings" || line.range(of: #"^[0-9]+ findings?:"#, options: .regularExpression) != nil {
                    lines.append("<summary>")
                } else {
                    keepingBlock = ours(line)
                    if keepingBlock || line.isEmpty { lines.append(line) }
                }
            } else if line.hasPrefix("IMAGE ") || line.isEmpty || ours(line) {
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The first lines that differ, with their numbers.
    static func diff(_ a: String, _ b: String) -> String {
        let x = a.split(separator: "\n", omittingEmptySubsequences: false)
        let y = b.split(separator: "\n", omittingEmptySubsequences: false)
        var out: [String] = []
        for i in 0..<max(x.count, y.count) where out.count < 12 {
            let l = i < x.count ? String(x[i]) : "<none>"
            let r = i < y.count ? String(y[i]) : "<none>"
            if l != r {
                // Long lines (JSON) are shown around the first character that differs.
                let same = zip(l, r).prefix { $0 == $1 }.count
                let from = max(0, same - 80)
                out.append("line \(i + 1), column \(same + 1):\n  golden: …\(l.dropFirst(from).prefix(240))\n  now:    …\(r.dropFirst(from).prefix(240))")
            }
        }
        return out.joined(separator: "\n")
    }
}

/// Replaces what changes between runs of the same scenario with stable names.
struct Normaliser {
    var replacements: [(String, String)] = []
    var pids: [String: String] = [:]

    init(_ s: LiveScenario, extraImages: [String]) throws {
        // Longest first, so a path is replaced before a prefix of it.
        var named: [(String, String)] = []
        for (label, image) in [("writable", s.writable), ("base", s.base), ("held", s.held), ("py", s.pyImage)]
            + extraImages.map({ (($0 as NSString).lastPathComponent, $0) }) {
            let name = ImageLocker.lockFileName(realPath: image)
            named.append((name, "<lockfile:\(label)>"))
            named.append((String(name.dropFirst(6).prefix(40)), "<sha1:\(label)>"))
        }
        named.append((s.dir.path, "<dir>"))
        // The programs' paths differ between machines and checkouts.
        named.append((Run.locksmith, "<locksmith>"))
        for tool in ["qemu-io", "qemu-nbd"] { named.append((try Run.tool(tool), "<\(tool)>")) }
        // python3 may be a shim that execs another path: the process's own argv[0].
        if let argv0 = (try? String(contentsOfFile: "/proc/\(s.python.pid)/cmdline", encoding: .utf8))?
            .split(separator: "\0").first {
            named.append((String(argv0), "<python3>"))
        }
        replacements = named.sorted { $0.0.count > $1.0.count }
        // The host name only where it stands as one (it may be a word inside a path).
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let hostname = String(cString: host)
        if !hostname.isEmpty {
            for (from, to) in [("\"host\":\"%\"", "\"host\":\"<host>\""), ("host=\"%\"", "host=\"<host>\""),
                               ("on host % ", "on host <host> "), ("on %:", "on <host>:")] {
                replacements.append((from.replacingOccurrences(of: "%", with: hostname), to))
            }
        }

        var roles: [(Int32, String)] = [(s.writer.pid, "writer"), (s.holder.pid, "holder"), (s.python.pid, "python")]
        for (i, r) in s.readers.sorted(by: { $0.pid < $1.pid }).enumerated() { roles.append((r.pid, "reader\(i + 1)")) }
        // `locksmith hold` runs its command as a child.
        for (pid, role) in roles {
            pids[String(pid)] = "<pid:\(role)>"
            for child in Self.children(of: pid) { pids[String(child)] = "<pid:\(role)-child>" }
        }
    }

    static func children(of pid: Int32) -> [Int32] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return [] }
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func normalise(_ input: String, text: Bool) -> String {
        var s = input
        for (from, to) in replacements { s = s.replacingOccurrences(of: from, with: to) }
        // Numbers that are pids of the scenario's processes, wherever they stand alone.
        s = Self.substitute(s, pattern: #"(?<![0-9A-Za-z_.:/-])[0-9]{2,9}(?![0-9A-Za-z_])"#) { m in pids[m] ?? m }
        s = Self.substitute(s, pattern: #"(?<=":)[0-9]{2,9}(?![0-9])"#) { m in pids[m].map { "\"\($0)\"" } ?? m }
        // JSON values that are times, durations, inodes, devices, uids of files made here.
        s = Self.substitute(s, pattern: #""(age_s|age|since|started|start_time|generated|took_ms|scan_ms|duration_ms|inode|ino|device|dev|mtime|waited_s|elapsed_s)"\s*:\s*("[^"]*"|-?[0-9.]+)"#) { m in
            let key = m.prefix { $0 != ":" }
            return key + ":\"<var>\""
        }
        if text {
            // Ages and durations in text: 3s, 12m, 1.2 ms, times of day, dates.
            s = Self.substitute(s, pattern: #"\b[0-9]+(\.[0-9]+)? ?(ms|s|m|h|d)\b"#) { _ in "<t>" }
            s = Self.substitute(s, pattern: #"\b[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+Z?\b"#) { _ in "<time>" }
            s = Self.substitute(s, pattern: #"\b[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9]+\b"#) { _ in "<dev:ino>" }
            s = Self.substitute(s, pattern: #"inode [0-9]+"#) { _ in "inode <n>" }
            s = Self.substitute(s, pattern: #" {2,}"#) { _ in " " }
            s = Self.substitute(s, pattern: #" +\n"#) { _ in "\n" }
        } else {
            s = Self.substitute(s, pattern: #"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"#) { _ in "<time>" }
        }
        s = Self.substitute(s, pattern: #"(_seconds(\{[^}]*\})?) [0-9.e-]+"#) { m in
            String(m[..<(m.lastIndex(of: " ") ?? m.endIndex)]) + " <t>"
        }
        // What could not be looked at depends on the rest of the host (other processes' fds,
        // mounts), not on the scenario.
        s = Self.substitute(s, pattern: #""unseen":\[.*\]\}$"#) { _ in "\"unseen\":\"<var>\"}" }
        s = Self.substitute(s, pattern: #"locksmith: note: [0-9]+ thing\(s\) could not be looked at[^\n]*\n"#) { _ in "" }
        return s
    }

    static func substitute(_ s: String, pattern: String, _ f: (String) -> String) -> String {
        guard let re = try? NSRegularExpression(pattern: pattern) else { return s }
        let ns = s as NSString
        var out = ""
        var last = 0
        for m in re.matches(in: s, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: last, length: m.range.location - last))
            out += f(ns.substring(with: m.range))
            last = m.range.location + m.range.length
        }
        out += ns.substring(from: last)
        return out
    }
}
