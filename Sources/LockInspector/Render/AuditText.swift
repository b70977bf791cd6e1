import ImageLock

/// `audit`'s text report: one block per finding, then a summary line.
public enum AuditText {
    /// Each line is made safe for a terminal (`TerminalText`): paths, names and evidence
    /// hold whatever the system gave.
    public static func render(_ findings: [Finding], fixes: [StaleFix]) -> String {
        var lines: [String] = []
        // Fixes by lock file, made once (a scan of every fix per finding was quadratic).
        var fixesByPath: [String: [Int]] = [:]
        for (i, fix) in fixes.enumerated() { fixesByPath[fix.path, default: []].append(i) }
        for f in findings {
            lines.append("\((f.severity.rawValue.uppercased() + String(repeating: " ", count: 8)).prefix(8)) "
                + "\(f.rule.rawValue)  \(f.image ?? f.files.first ?? "-")" + (f.host.map { "  (on \($0))" } ?? ""))
            lines.append("  \(f.evidence)")
            lines.append("  remedy: \(f.remedy)")
            for i in Set(f.files).flatMap({ fixesByPath[$0] ?? [] }).sorted() {
                lines.append("  fix: \(fixes[i].path): \(fixes[i].outcome)")
            }
        }
        var out = TerminalText.lines(lines)
        if findings.isEmpty {
            out += "no findings\n"
        } else {
            let counts = Severity.allCases.reversed().compactMap { s -> String? in
                let n = findings.filter { $0.severity == s }.count
                return n == 0 ? nil : "\(n) \(s.rawValue)"
            }
            out += "\(findings.count) finding\(findings.count == 1 ? "" : "s"): " + counts.joined(separator: ", ") + "\n"
        }
        let removed = fixes.filter(\.removed).count
        if !fixes.isEmpty { out += "fixed: removed \(removed) of \(fixes.count) stale lock file\(fixes.count == 1 ? "" : "s")\n" }
        return out
    }
}
