#if canImport(Glibc)
import Glibc
#endif

/// A path as Linux has it: bytes (anything but NUL), not necessarily UTF-8.
///
/// locksmith carries paths in `String`s, which cannot hold invalid UTF-8. So that a name
/// with, say, byte 0xff survives the trip (readdir, realpath, readlink, argv, a qcow2
/// header -> SHA-1, open, JSON), every path read from the system becomes its *carrier*
/// string: valid UTF-8 stays as it is, and each byte of an invalid sequence becomes one
/// private-use character U+10FE80...U+10FEFF (the byte value plus 0x10FE00). A name that
/// already holds such characters has their bytes carried the same way, so the mapping is
/// one-to-one and `bytes` gives back exactly what the system gave. Text output shows the
/// carried bytes as `\xff` (`TerminalText`); JSON writes the lossy string (U+FFFD) and the
/// exact bytes beside it (`hex`). The syscall edges pass `bytes` to the kernel.
public struct PathBytes: Hashable, Sendable, CustomStringConvertible {
    /// The path's bytes, exactly.
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The bytes a carrier string stands for.
    public init(_ carrier: String) { bytes = PathBytes.bytes(carrier) }

    /// The carrier string (lossless).
    public var carrier: String { PathBytes.string(bytes) }

    /// Whether the bytes are valid UTF-8 (then `lossy` is exact).
    public var isUTF8: Bool { PathBytes.isValidUTF8(bytes) }

    /// The bytes as UTF-8 text, each invalid sequence replaced by U+FFFD.
    public var lossy: String { String(decoding: bytes, as: UTF8.self) }

    /// The bytes as lowercase hex, two digits each (the JSON `*_bytes` fields).
    public var hex: String { Digest.hex(bytes) }

    public var description: String { lossy }

    // MARK: - Carrier strings

    static let carrierBase: UInt32 = 0x10FE00
    static let carrierRange: ClosedRange<UInt32> = 0x10FE80...0x10FEFF

    /// Whether a scalar carries a raw byte.
    @inline(__always)
    public static func isCarrier(_ s: Unicode.Scalar) -> Bool { carrierRange.contains(s.value) }

    /// The byte a carrier scalar stands for.
    public static func carriedByte(_ s: Unicode.Scalar) -> UInt8? {
        isCarrier(s) ? UInt8(s.value - carrierBase) : nil
    }

    /// Whether `carrier`'s UTF-8 is exactly the path's bytes (no carried byte): the common
    /// case, checked without decoding. Every carrier scalar's UTF-8 starts with 0xF4. The
    /// bytes are searched in the string's own storage where it has one (a native string):
    /// through `String.UTF8View`'s iterator the search cost ~12 % of `list --json` at 10k.
    @inline(__always)
    public static func isPlain(_ carrier: String) -> Bool {
        let maybe = carrier.utf8.withContiguousStorageIfAvailable { $0.contains(0xF4) } ?? carrier.utf8.contains(0xF4)
        return !maybe || !carrier.unicodeScalars.contains(where: isCarrier)
    }

    /// The carrier string of these bytes.
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if !bytes.contains(where: { $0 >= 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var plain = true
        var i = 0
        while i < bytes.count {
            let n = sequenceLength(bytes, at: i)
            // A valid sequence is kept unless it is itself a carrier scalar (F4 8F BA/BB xx).
            if n > 0 && !(n == 4 && bytes[i] == 0xF4 && bytes[i + 1] == 0x8F && (bytes[i + 2] == 0xBA || bytes[i + 2] == 0xBB)) {
                out.append(contentsOf: bytes[i..<(i + n)])
                i += n
                continue
            }
            plain = false
            for b in bytes[i..<(i + max(n, 1))] { appendCarrier(b, to: &out) }
            i += max(n, 1)
        }
        if plain { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func string(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { string($0) }
    }

    public static func string<S: Collection>(_ bytes: S) -> String where S.Element == UInt8 {
        string(Array(bytes))
    }

    /// The carrier string of a NUL-terminated C string.
    public static func string(cString p: UnsafePointer<CChar>) -> String {
        var n = 0
        while p[n] != 0 { n += 1 }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) { string(UnsafeBufferPointer(start: $0, count: n)) }
    }

    /// The bytes a carrier string stands for.
    public static func bytes(_ carrier: String) -> [UInt8] {
        if isPlain(carrier) { return Array(carrier.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(carrier.utf8.count)
        for s in carrier.unicodeScalars {
            if let b = carriedByte(s) {
                out.append(b)
            } else {
                out.append(contentsOf: UTF8.encode(s)!)
            }
        }
        return out
    }

    /// Calls `body` with the path's bytes as a C string (what the syscall edges pass).
    public static func withCString<R>(_ carrier: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        if isPlain(carrier) { return try carrier.withCString(body) }
        let b = bytes(carrier) + [0]
        return try b.withUnsafeBufferPointer { try $0.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) } }
    }

    /// The carrier string as UTF-8 text: exact when the bytes are UTF-8, else lossy (U+FFFD).
    public static func lossy(_ carrier: String) -> String {
        isPlain(carrier) ? carrier : String(decoding: bytes(carrier), as: UTF8.self)
    }

    /// The exact bytes as lowercase hex when they are not valid UTF-8 (what JSON adds as
    /// `*_bytes`); nil when the lossy text is exact.
    public static func hexIfNotUTF8(_ carrier: String) -> String? {
        if isPlain(carrier) { return nil }
        let b = bytes(carrier)
        return isValidUTF8(b) ? nil : Digest.hex(b)
    }

    public static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { b in
            var i = 0
            while i < b.count {
                let n = sequenceLength(b, at: i)
                if n == 0 { return false }
                i += n
            }
            return true
        }
    }

    private static func appendCarrier(_ b: UInt8, to out: inout [UInt8]) {
        out.append(contentsOf: UTF8.encode(Unicode.Scalar(carrierBase + UInt32(b))!)!)
    }

    /// The length of the valid UTF-8 sequence at `i` (1...4), or 0 when the bytes there
    /// are not one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
    static func sequenceLength(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        let c = b[i]
        if c < 0x80 { return 1 }
        func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            i + k < b.count && b[i + k] >= lo && b[i + k] <= hi
        }
        switch c {
        case 0xC2...0xDF: return cont(1) ? 2 : 0
        case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : 0
        case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
        case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default: return 0
        }
    }
}

/// A path as a dictionary key or set member, compared by its bytes. Swift's `==` on strings
/// is canonical equivalence, under which two names on disk are one: é as one code point
/// (NFC) and as e with a combining accent (NFD). Hashed as the string is (the same bytes are
/// always the same string), and compared as strings first: only names that Unicode calls
/// equal have their bytes compared.
public struct PathKey: Hashable, Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    public static func == (a: PathKey, b: PathKey) -> Bool { PathBytes.same(a.path, b.path) }

    public func hash(into hasher: inout Hasher) { hasher.combine(path) }
}

extension PathBytes {
    /// Whether two paths name the same file: the same bytes, where Swift's `==` is canonical
    /// equivalence (an NFC name equals its NFD twin). Compared as strings first (fast), then,
    /// when equal, by bytes.
    public static func same(_ a: String, _ b: String) -> Bool { a == b && sameBytes(a, b) }

    /// The same of paths that may be absent: both absent, or both the same.
    public static func same(_ a: String?, _ b: String?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case let (x?, y?): return same(x, y)
        default: return false
        }
    }

    /// Whether `a` and `b` hold the same bytes (not only canonically equal text).
    public static func sameBytes(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        let contiguous = x.withContiguousStorageIfAvailable { p in
            y.withContiguousStorageIfAvailable { q in p.baseAddress == q.baseAddress || memcmp(p.baseAddress!, q.baseAddress!, p.count) == 0 }
        }
        return contiguous.flatMap { $0 } ?? x.elementsEqual(y)
    }
}
