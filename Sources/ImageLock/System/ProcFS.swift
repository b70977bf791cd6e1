// Small readers of /proc shared by every module (whole-file reads and readdir from
// FileReads.swift and Directory.swift).
#if canImport(Glibc)
import Glibc
#endif

/// Small readers of /proc shared by the core and the inspector.
public enum ProcFS {
    /// Reads a whole (small, pseudo) file; nil when it cannot be read (gone, EACCES).
    public static func read(_ path: String) -> String? {
        Sys.readFile(path, chunk: 8192).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads a whole pseudo file as bytes; nil when it cannot be read. (A seq_file hands
    /// out at most a page per read, whatever the buffer.)
    public static func readBytes(_ path: String) -> [UInt8]? {
        Sys.readFile(path, chunk: 65536)
    }

    /// The names in a directory (without . and ..); nil when it cannot be listed.
    public static func list(_ path: String) -> [String]? {
        Sys.names(path)
    }

    /// The pids under a /proc root, numerically.
    public static func pids(procRoot: String) -> [Int32] {
        (list(procRoot) ?? []).compactMap { Int32($0) }.sorted()
    }

    /// Every lock in `<procRoot>/locks`; malformed lines are skipped.
    public static func locks(procRoot: String) -> [KernelLock] {
        guard let text = readBytes(procRoot + "/locks") else { return [] }
        return KernelLock.parseTable(text).locks
    }

    /// The command name (`comm`) of a process, as its owner set it (escapes, newlines and
    /// bytes that are not UTF-8 included: a `PathBytes` carrier string, for `TerminalText`
    /// to show); nil when it is gone.
    public static func command(pid: Int32, procRoot: String) -> String? {
        guard var c = readBytes("\(procRoot)/\(pid)/comm") else { return nil }
        if c.last == 10 { c.removeLast() }
        return PathBytes.string(c)
    }
}
