// printf-style formatting of numbers (C's vsnprintf), as Foundation's String(format:) did,
// without Foundation (the binary links FoundationEssentials only).
import CLinux
#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// `format` with `args` as C's printf formats them in the C locale (`%.1f`, `%02d`, `%g`).
    /// (The TUI sets the user's locale for curses: the calling thread formats in the C locale
    /// meanwhile, so a decimal point stays a point.)
    package static func format(_ format: String, _ args: CVarArg...) -> String {
        let previous = cLocale.map { uselocale($0) }
        defer { if let previous { uselocale(previous) } }
        return withVaList(args) { list in
            var buffer = [CChar](repeating: 0, count: 64)
            let needed = Int(vsnprintf(&buffer, buffer.count, format, list))
            if needed < buffer.count { return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } }
            return withVaList(args) { again in
                buffer = [CChar](repeating: 0, count: needed + 1)
                _ = vsnprintf(&buffer, buffer.count, format, again)
                return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            }
        }
    }

    nonisolated(unsafe) private static let cLocale: locale_t? = clinux_c_locale()
}
