// readdir(3): the one loop over a directory's entries. The directory is opened by its path
// (a link to a directory is followed: these are directories the user or the kernel named,
// /proc, lock dirs); nothing below it is opened or followed.
#if canImport(Glibc)
import Glibc
#endif

/// One directory entry as readdir(3) returns it: no stat needed for the inode.
package struct DirEntry: Sendable {
    package var name: String
    package var inode: UInt64
    /// From d_type; nil when the filesystem says DT_UNKNOWN.
    package var kind: FileKind?

    package init(name: String, inode: UInt64, kind: FileKind?) {
        self.name = name
        self.inode = inode
        self.kind = kind
    }
}

extension Sys {
    /// Calls `body` with each entry's name (a C string; `.` and `..` included), inode and
    /// d_type. Fails when the directory cannot be opened; a read error that ends the listing
    /// early is the success value. The corresponding C functions are `opendir` and `readdir`.
    package static func forEachEntry(_ path: String,
                                     _ body: (UnsafePointer<CChar>, UInt64, UInt8) -> Void) -> Result<Errno?, Errno> {
        guard let dir = PathBytes.withCString(path, { opendir($0) }) else { return .failure(.current) }
        defer { closedir(dir) }
        return .success(forEachEntry(dir, body))
    }

    /// The same over an open `DIR` (not closed here); the read error that ended it, if any.
    package static func forEachEntry(_ dir: OpaquePointer,
                                     _ body: (UnsafePointer<CChar>, UInt64, UInt8) -> Void) -> Errno? {
        while true {
            errno = 0
            guard let ent = readdir(dir) else { return errno != 0 ? .current : nil }
            withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { body($0, UInt64(ent.pointee.d_ino), ent.pointee.d_type) }
            }
        }
    }

    /// The entries of a directory, without `.` and `..`.
    package static func entries(_ path: String) -> Result<[DirEntry], Errno> {
        var out: [DirEntry] = []
        let r = forEachEntry(path) { p, inode, type in
            guard !isDots(p) else { return }
            out.append(DirEntry(name: PathBytes.string(cString: p), inode: inode, kind: FileKind(dType: type)))
        }
        switch r {
        case .success(let e?) where out.isEmpty: return .failure(e)
        case .success: return .success(out)
        case .failure(let e): return .failure(e)
        }
    }

    /// Only the names that satisfy `keep`, each as `prefix` + name (one string per entry,
    /// made at once): saves building entries for a big /var/tmp.
    package static func entries(_ path: String, prefix: String,
                                where keep: (UnsafePointer<CChar>) -> Bool) -> Result<[DirEntry], Errno> {
        var out: [DirEntry] = []
        var head = prefix
        var result: Result<Errno?, Errno> = .success(nil)
        head.withUTF8 { head in
            result = forEachEntry(path) { p, inode, type in
                guard keep(p) else { return }
                let n = strlen(p)
                let name: String
                if UnsafeRawBufferPointer(start: p, count: n).contains(where: { $0 >= 0x80 }) {
                    // A name that is not plain ASCII: its carrier string (`PathBytes`).
                    name = String(decoding: head, as: UTF8.self) + PathBytes.string(cString: p)
                } else {
                    name = String(unsafeUninitializedCapacity: head.count + n) { buf in
                        UnsafeMutableRawBufferPointer(buf).copyBytes(from: head)
                        UnsafeMutableRawPointer(buf.baseAddress! + head.count).copyMemory(from: p, byteCount: n)
                        return head.count + n
                    }
                }
                out.append(DirEntry(name: name, inode: inode, kind: FileKind(dType: type)))
            }
        }
        return result.map { _ in out }
    }

    /// The names in a directory (without . and ..); nil when it cannot be listed.
    package static func names(_ path: String) -> [String]? {
        try? entries(path).get().map(\.name)
    }

    /// Whether a C string is `.` or `..`.
    package static func isDots(_ p: UnsafePointer<CChar>) -> Bool {
        p[0] == 0x2e && (p[1] == 0 || (p[1] == 0x2e && p[2] == 0))
    }

    /// A decimal number (an fd or a pid) from a directory entry's name; nil for `.`, `..`
    /// and anything else.
    package static func decimalName(_ name: UnsafePointer<CChar>) -> Int32? {
        var v: Int32 = 0
        var p = name
        guard p.pointee != 0 else { return nil }
        while p.pointee != 0 {
            let d = UInt8(bitPattern: p.pointee) &- UInt8(ascii: "0")
            guard d < 10, v < Int32.max / 10 else { return nil }
            v = v * 10 + Int32(d)
            p += 1
        }
        return v
    }
}
