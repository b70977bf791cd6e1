import _TestSupport
import Foundation
import ImageLock
import XCTest

/// What `locksmith` does at start: `--version` answered before ArgumentParser runs, a named
/// subcommand parsed on its own, libraries (libcrypto, ncursesw) loaded when first used.
final class StartTests: XCTestCase {
    func testVersionIsTheManPagesAndAloneOnItsLine() throws {
        let man = try String(contentsOfFile: GlusterTestBed.repository + "/man/locksmith.1", encoding: .utf8)
        let th = try XCTUnwrap(man.split(separator: "\n").first { $0.hasPrefix(".TH ") }, "no .TH line")
        let named = try XCTUnwrap(th.range(of: "\"locksmith "), "\(th)")
        let version = th[named.upperBound...].prefix { $0 != "\"" }
        XCTAssertFalse(version.isEmpty, "\(th)")
        let r = try Run.locksmith(["--version"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(r.stdout, version + "\n")
        XCTAssertEqual(r.stderr, "")
        // With another argument ArgumentParser answers (its --version wins over the rest): the same.
        let parsed = try Run.locksmith(["--no-headings", "--version"])
        XCTAssertEqual(parsed.status, 0, "\(parsed)")
        XCTAssertEqual(parsed.stdout, r.stdout)
    }

    /// A named subcommand is parsed as the root of its own parse (`Locksmith.namedSubcommand`,
    /// for its speed): its help, usage errors and `--version` read as when parsed from
    /// `locksmith`, which `help NAME` still is.
    func testANamedSubcommandReadsAsUnderTheRoot() throws {
        let root = try Run.locksmith(["--help"])
        XCTAssertEqual(root.status, 0, "\(root)")
        let section = try XCTUnwrap(root.stdout.components(separatedBy: "SUBCOMMANDS:\n").last, root.stdout)
        let names = section.components(separatedBy: "\n\n")[0].split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { return nil }
            return line.split(separator: " ").first.map(String.init)
        }
        XCTAssertGreaterThanOrEqual(names.count, 12, section)
        let version = try Run.locksmith(["--version"]).stdout
        for name in names {
            let help = try Run.locksmith([name, "--help"]), rooted = try Run.locksmith(["help", name])
            XCTAssertEqual(help.status, 0, "\(help)")
            XCTAssertTrue(help.stdout.hasPrefix("OVERVIEW: "), help.stdout)
            XCTAssertTrue(help.stdout.contains("USAGE: locksmith \(name)"), help.stdout)
            XCTAssertEqual(help.stdout, rooted.stdout, name)
            let wrong = try Run.locksmith([name, "--no-such-option"])
            XCTAssertEqual(wrong.status, 64, "\(wrong)")
            XCTAssertTrue(wrong.stderr.hasPrefix("Error: "), wrong.stderr)
            XCTAssertTrue(wrong.stderr.contains("\nUsage: locksmith \(name)"), wrong.stderr)
            XCTAssertTrue(wrong.stderr.hasSuffix("\n  See 'locksmith \(name) --help' for more information.\n"), wrong.stderr)
            let v = try Run.locksmith([name, "--version"])
            XCTAssertEqual(v.status, 0, "\(v)")
            XCTAssertEqual(v.stdout, version, name)
        }
    }

    /// libcrypto is loaded by the first hash, not at start (CCrypto.h): the dynamic loader's
    /// log (LD_DEBUG=libs) names it for `path` (a SHA-1), not for `--version`.
    func testLibcryptoIsLoadedByTheFirstHashOnly() throws {
        let dir = TempDir("lazy-crypto")
        let image = dir.file("a.img")
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: Data()))
        let version = try Run.locksmith(["--version"], environment: ["LD_DEBUG": "libs"])
        XCTAssertEqual(version.status, 0, "\(version)")
        XCTAssertTrue(version.stderr.contains("calling init"), "no loader log: \(version.stderr)")
        XCTAssertFalse(version.stderr.contains("libcrypto"), version.stderr)
        let path = try Run.locksmith(["path", "--lock-dir", dir.path, image], environment: ["LD_DEBUG": "libs"])
        XCTAssertEqual(path.status, 0, "\(path)")
        XCTAssertTrue(path.stderr.contains("libcrypto.so.3"), path.stderr)
        XCTAssertEqual(path.stdout, "\(dir.path)/.qemu-\(Digest.sha1Hex(image)).lock\n")
    }

    /// ncursesw is loaded by the TUI only (CCurses.h): `list` runs without it
    /// (TUITerminalTests run the TUI itself, which loads it).
    func testCursesIsNotLoadedOutsideTheTUI() throws {
        let dir = TempDir("lazy-curses")
        let r = try Run.locksmith(["list", "--lock-dir", dir.path], environment: ["LD_DEBUG": "libs"])
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stderr.contains("calling init"), "no loader log: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("libncursesw"), r.stderr)
        XCTAssertFalse(r.stderr.contains("libtinfo"), r.stderr)
    }
}
