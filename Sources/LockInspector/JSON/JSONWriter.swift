import ImageLock

/// A small JSON writer for big reports (`list --json` of 100k lock files): appends UTF-8 to
/// one byte buffer, no intermediate tree, no reflection. Its output is what Foundation's
/// JSONEncoder writes with `.withoutEscapingSlashes`: `"` `\` and control characters
/// escaped (`\b \t \n \f \r`, else `\u00XX` in lowercase hex), everything else as is.
/// Strings are written as UTF-8 text: a path whose bytes are not UTF-8 (a `PathBytes`
/// carrier string) is written lossily, with U+FFFD, and `pathBytes` adds its exact bytes.
/// Keys are written in the order of the calls: callers write them sorted where the
/// output promises sorted keys.
public struct JSONWriter {
    /// The bytes not yet handed to a sink. (Shared by copies of a writer: do not copy one.)
    private let buffer: ByteBuffer
    /// The JSON written so far (what a streaming writer has not yet handed over).
    public var bytes: [UInt8] { buffer.array }
    /// Open containers, and per level whether a value was written in it (bit `depth - 1`:
    /// a comma goes before the next).
    private var depth = 0
    private var written: UInt64 = 0
    private var afterKey = false
    /// Where finished bytes go when streaming (`init(capacity:sink:)`); nil: kept in `bytes`.
    /// The bytes are lent for the call only.
    private let sink: ((UnsafeRawBufferPointer) -> Void)?

    public init(capacity: Int = 1 << 16) {
        sink = nil
        buffer = ByteBuffer(capacity: capacity)
    }

    /// A writer that hands its bytes to `sink` in order, at least `capacity` at a time (the
    /// last, shorter piece at `finish()`): a big report is never held whole in memory.
    public init(capacity: Int, sink: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.sink = sink
        buffer = ByteBuffer(capacity: capacity)
    }

    private init(buffer: ByteBuffer) {
        sink = nil
        self.buffer = buffer
    }

    /// A writer of an array's elements without its brackets (comma-separated), for a
    /// chunk of a long array rendered on its own into `buffer` (emptied first; see
    /// `elements(_:)`).
    static func elements(into buffer: ByteBuffer) -> JSONWriter {
        buffer.count = 0
        var w = JSONWriter(buffer: buffer)
        w.depth = 1
        return w
    }

    /// Hands what is buffered to the sink (streaming writers; nothing otherwise).
    public mutating func finish() {
        guard let sink, buffer.count > 0 else { return }
        buffer.withBytes(sink)
        buffer.count = 0
    }

    /// Elements of the current array rendered elsewhere (`elements(into:)` writers'
    /// buffers), in order; a streaming writer passes them to its sink as they are.
    mutating func elements(_ parts: [ByteBuffer]) {
        for part in parts where part.count > 0 {
            beforeValue()
            if let sink {
                finish()
                part.withBytes(sink)
            } else {
                part.withBytes { buffer.put($0) }
            }
        }
    }

    @inline(__always)
    private mutating func beforeValue() {
        if afterKey {
            afterKey = false
            return
        }
        guard depth > 0 else { return }
        let bit: UInt64 = 1 << UInt64(depth - 1)
        if written & bit != 0 { buffer.put(UInt8(ascii: ",")) } else { written |= bit }
    }

    private mutating func open(_ bracket: UInt8) {
        beforeValue()
        buffer.put(bracket)
        precondition(depth < 64, "JSON nested deeper than 64 levels")
        depth += 1
        written &= ~(1 << UInt64(depth - 1))
    }

    public mutating func beginObject() { open(UInt8(ascii: "{")) }

    public mutating func endObject() {
        depth -= 1
        buffer.put(UInt8(ascii: "}"))
    }

    public mutating func beginArray() { open(UInt8(ascii: "[")) }

    public mutating func endArray() {
        depth -= 1
        buffer.put(UInt8(ascii: "]"))
    }

    /// A key of the current object; its value is the next thing written.
    public mutating func key(_ k: StaticString) {
        beforeValue()
        buffer.put(UInt8(ascii: "\""))
        buffer.put(UnsafeRawBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        buffer.put(UInt8(ascii: "\""))
        buffer.put(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func null() {
        beforeValue()
        buffer.put("null")
    }

    public mutating func bool(_ b: Bool) {
        beforeValue()
        buffer.put(b ? "true" : "false")
    }

    /// A finite number as JSONEncoder writes it: as Swift prints it (`12.5`), a whole number
    /// without `.0` (`30`); null otherwise.
    public mutating func double(_ d: Double) {
        guard d.isFinite else { return null() }
        beforeValue()
        var text = "\(d)"
        if text.hasSuffix(".0") { text.removeLast(2) }
        text.withUTF8 { buffer.put(UnsafeRawBufferPointer($0)) }
    }

    public mutating func int<T: BinaryInteger>(_ v: T) {
        beforeValue()
        if v < 0 { buffer.put(UInt8(ascii: "-")) }
        var m = v.magnitude
        if m == 0 {
            buffer.put(UInt8(ascii: "0"))
            return
        }
        // At most 20 digits (UInt64.max), written backwards into a small stack buffer.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buf in
            var i = 40
            while m > 0 {
                i -= 1
                buf[i] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: m % 10)
                m /= 10
            }
            buffer.put(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buf)[i..<40]))
        }
    }

    /// A device as /proc/locks prints it (`fe:01`: hex, at least two digits each), or null.
    public mutating func device(_ d: DeviceID?) {
        guard let d else { return null() }
        beforeValue()
        buffer.put(UInt8(ascii: "\""))
        hex2(d.major)
        buffer.put(UInt8(ascii: ":"))
        hex2(d.minor)
        buffer.put(UInt8(ascii: "\""))
    }

    private mutating func hex2(_ v: UInt32) {
        var digits = 1
        while digits < 8 && v >> (4 * UInt32(digits)) != 0 { digits += 1 }
        if digits < 2 { digits = 2 }
        Self.hexDigits.withUTF8Buffer { h in
            for i in stride(from: digits - 1, through: 0, by: -1) { buffer.put(h[Int((v >> (4 * UInt32(i))) & 0xf)]) }
        }
    }

    public mutating func int<T: BinaryInteger>(_ v: T?) {
        if let v { int(v) } else { null() }
    }

    public mutating func string(_ s: String?) {
        guard let s else { return null() }
        string(s)
    }

    public mutating func string(_ s: String) {
        // A path that is not UTF-8: its lossy text (carried bytes never leak as characters).
        if !PathBytes.isPlain(s) { return string(PathBytes.lossy(s)) }
        beforeValue()
        // Native strings are contiguous UTF-8: read in place, no copy, no retain.
        if s.utf8.withContiguousStorageIfAvailable({ escape($0) }) == nil {
            var text = s
            text.withUTF8 { escape($0) }
        }
    }

    public mutating func strings(_ list: [String]) {
        beginArray()
        for i in list.indices { string(list[i]) }
        endArray()
    }

    /// `KEY: "<hex>"`, the exact bytes of a path written just before under the key without
    /// `_bytes`, when they are not valid UTF-8 (lowercase hex, two digits a byte); nothing
    /// otherwise. (Keys sort right after their path's: `path`, `path_bytes`.)
    public mutating func pathBytes(_ key: StaticString, _ path: String?) {
        guard let path, let hex = PathBytes.hexIfNotUTF8(path) else { return }
        self.key(key)
        string(hex)
    }

    /// The same for a list of paths: an array of hex strings (null for a UTF-8 path) when
    /// any of them is not UTF-8.
    public mutating func pathsBytes(_ key: StaticString, _ paths: [String]) {
        guard paths.contains(where: { PathBytes.hexIfNotUTF8($0) != nil }) else { return }
        self.key(key)
        beginArray()
        for p in paths { string(PathBytes.hexIfNotUTF8(p)) }
        endArray()
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Whether any of the eight bytes is a control character, `"` or `\` (bytes of
    /// multi-byte UTF-8 never are). Exact as a yes/no (the bit tricks of "haszero").
    @inline(__always)
    private static func needsEscape(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        let below0x20 = (w &- ones &* 0x20) & ~w & highs != 0
        return below0x20 || hasZero(w ^ (ones &* 0x22)) || hasZero(w ^ (ones &* 0x5c))
    }

    private mutating func escape(_ u: UnsafeBufferPointer<UInt8>) {
        buffer.put(UInt8(ascii: "\""))
        var start = 0
        var i = 0
        let raw = UnsafeRawBufferPointer(u)
        while i < u.count {
            // Eight bytes at a time while none needs escaping (paths, names: nearly always).
            while i + 8 <= u.count && !Self.needsEscape(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
            guard i < u.count else { break }
            let c = u[i]
            if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            if start < i { buffer.put(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(u)[start..<i])) }
            buffer.put(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): buffer.put(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): buffer.put(UInt8(ascii: "\\"))
            case 0x08: buffer.put(UInt8(ascii: "b"))
            case 0x09: buffer.put(UInt8(ascii: "t"))
            case 0x0a: buffer.put(UInt8(ascii: "n"))
            case 0x0c: buffer.put(UInt8(ascii: "f"))
            case 0x0d: buffer.put(UInt8(ascii: "r"))
            default:
                Self.hexDigits.withUTF8Buffer { h in
                    for b in [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), h[Int(c >> 4)], h[Int(c & 0xf)]] { buffer.put(b) }
                }
            }
            i += 1
            start = i
        }
        if start < u.count { buffer.put(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(u)[start..<u.count])) }
        buffer.put(UInt8(ascii: "\""))
    }
}

/// A growable byte buffer written in place: no copy-on-write checks per byte, as an Array's
/// appends have (a JSON report is written a byte at a time). One thread at a time.
final class ByteBuffer: @unchecked Sendable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 256)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var array: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The bytes written, lent to `body`.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    @inline(__always)
    func put(_ b: UInt8) {
        if count == capacity { grow(1) }
        base[count] = b
        count += 1
    }

    @inline(__always)
    func put(_ bytes: UnsafeRawBufferPointer) {
        guard let from = bytes.baseAddress, bytes.count > 0 else { return }
        if count + bytes.count > capacity { grow(bytes.count) }
        UnsafeMutableRawPointer(base + count).copyMemory(from: from, byteCount: bytes.count)
        count += bytes.count
    }

    func put(_ text: StaticString) {
        put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private func grow(_ more: Int) {
        let bigger = max(capacity * 2, count + more)
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        new.update(from: base, count: count)
        base.deallocate()
        (base, capacity) = (new, bigger)
    }
}
