import FoundationEssentials
import ImageLock

/// `watch`'s text: one line per event.
public enum WatchText {
    /// The event as one line of text, made safe for a terminal (`TerminalText`).
    public static func line(_ e: WatchEvent) -> String {
        let time = e.time.formatted(.iso8601.time(includingFractionalSeconds: true).year().month().day()
            .dateTimeSeparator(.standard).timeZone(separator: .omitted))
        var s = "\(time) \(e.kind.rawValue) \(e.image ?? e.imageID ?? "-")"
        if let h = e.holder {
            s += " pid \(h.pid) (\(h.command))"
            let mode = e.kind == .waiterBlocked || e.kind == .waiterUnblocked
                ? (h.lockType == .write ? "write" : "read") : h.modeSummary
            if let p = e.previous { s += " \(p.modeSummary) -> \(mode)" } else { s += " \(mode)" }
            s += " \(h.scheme.rawValue)"
            if let fd = h.fd { s += " fd \(fd)" }
            if let vm = h.vm { s += " vm \(vm)" }
            if let host = h.host { s += " on \(host)" }
        }
        if let f = e.finding {
            s += " \(f.severity.rawValue) \(f.rule.rawValue)" + (f.host.map { " on \($0)" } ?? "") + ": \(f.evidence)"
        }
        return TerminalText.escaped(s)  // one event, one line: nothing in it can break it
    }
}
