import FoundationEssentials
import ImageLock

public enum ListText {
    /// "no image locks on this host: scanned 1 lock dir, 212 processes".
    public static func nothingFound(lockDirectories: Int, processes: Int) -> String {
        "no image locks on this host: scanned \(lockDirectories) lock dir\(lockDirectories == 1 ? "" : "s"), "
            + "\(processes) process\(processes == 1 ? "" : "es")"
    }
}

/// The lock table as text: one line per row, columns as wide as their widest cell
/// (the last one unpadded), numbers right-aligned, every cell escaped (`TerminalText`).
public enum Table {
    public static func render(_ rows: [LockRow], columns: [Column], headings: Bool = true, now: Date = Date()) -> String {
        var lines: [[String]] = headings ? [columns.map(\.header)] : []
        // Each cell made safe for a terminal first (`TerminalText`), so the widths are those
        // of what is printed and nothing in a cell can break its line.
        lines += rows.map { r in columns.map { TerminalText.escaped($0.cell(r, now: now)) } }
        guard !lines.isEmpty else { return "" }
        var widths = columns.map { _ in 0 }
        for l in lines { for (i, cell) in l.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for l in lines {
            var parts: [String] = []
            for (i, cell) in l.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let last = i == l.count - 1
                parts.append(columns[i].rightAligned ? pad + cell : (last ? cell : cell + pad))
            }
            out += parts.joined(separator: " ") + "\n"
        }
        return out
    }
}
