import ImageLock

/// A small JSON writer for big reports (`list --json` of 100k lock files): appends UTF-8 to
/// one byte buffer, no intermediate tree, no reflection. Its output is what Foundation's
/// JSONEncoder writes with `.withoutEscapingSlashes`: `"` `\` and control characters
/// escaped (`\b \t \n \f \r`, else `\u00XX` in lowercase hex), everything else as is.
/// Strings are Swift Strings, so they are valid Unicode: a path with invalid UTF-8 was
/// already given U+FFFD where its bytes were decoded.
/// Keys are written in the order of the calls: callers write them sorted where the
/// output promises sorted keys.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Per open container: whether a value was written in it (a comma goes before the next).
    private var written: [Bool] = []
    private var afterKey = false
    /// Where finished bytes go when streaming (`init(capacity:sink:)`); nil: kept in `bytes`.
    private let sink: (([UInt8]) -> Void)?

    public init(capacity: Int = 1 << 16) {
        sink = nil
        bytes.reserveCapacity(capacity)
    }

    /// A writer that hands its bytes to `sink` in order, at least `capacity` at a time (the
    /// last, shorter piece at `finish()`): a big report is never held whole in memory.
    public init(capacity: Int, sink: @escaping ([UInt8]) -> Void) {
        self.sink = sink
        bytes.reserveCapacity(capacity)
    }

    /// A writer of an array's elements without its brackets (comma-separated), for a
    /// chunk of a long array rendered on its own (`elements(_:)`).
    static func elements(capacity: Int) -> JSONWriter {
        var w = JSONWriter(capacity: capacity)
        w.written = [false]
        return w
    }

    /// Hands what is buffered to the sink (streaming writers; nothing otherwise).
    public mutating func finish() {
        guard let sink, !bytes.isEmpty else { return }
        sink(bytes)
        bytes.removeAll(keepingCapacity: true)
    }

    /// Elements of the current array rendered elsewhere (`elements(capacity:)` writers'
    /// bytes), in order; a streaming writer passes them to its sink as they are.
    mutating func elements(_ parts: [[UInt8]]) {
        for part in parts where !part.isEmpty {
            beforeValue()
            if sink != nil {
                finish()
                sink?(part)
            } else {
                bytes.append(contentsOf: part)
            }
        }
    }

    private mutating func beforeValue() {
        if afterKey {
            afterKey = false
            return
        }
        if let w = written.last {
            if w { bytes.append(UInt8(ascii: ",")) }
            written[written.count - 1] = true
        }
    }

    public mutating func beginObject() {
        beforeValue()
        bytes.append(UInt8(ascii: "{"))
        written.append(false)
    }

    public mutating func endObject() {
        written.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray() {
        beforeValue()
        bytes.append(UInt8(ascii: "["))
        written.append(false)
    }

    public mutating func endArray() {
        written.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    /// A key of the current object; its value is the next thing written.
    public mutating func key(_ k: StaticString) {
        beforeValue()
        bytes.append(UInt8(ascii: "\""))
        k.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func null() {
        beforeValue()
        bytes.append(contentsOf: [0x6e, 0x75, 0x6c, 0x6c])  // null
    }

    public mutating func bool(_ b: Bool) {
        beforeValue()
        if b { bytes.append(contentsOf: [0x74, 0x72, 0x75, 0x65]) } else { bytes.append(contentsOf: [0x66, 0x61, 0x6c, 0x73, 0x65]) }
    }

    public mutating func int<T: BinaryInteger>(_ v: T) {
        beforeValue()
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        if m == 0 {
            bytes.append(UInt8(ascii: "0"))
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
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<40]))
        }
    }

    /// A device as /proc/locks prints it (`fe:01`: hex, at least two digits each), or null.
    public mutating func device(_ d: DeviceID?) {
        guard let d else { return null() }
        beforeValue()
        bytes.append(UInt8(ascii: "\""))
        hex2(d.major)
        bytes.append(UInt8(ascii: ":"))
        hex2(d.minor)
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func hex2(_ v: UInt32) {
        var digits = 1
        while digits < 8 && v >> (4 * UInt32(digits)) != 0 { digits += 1 }
        if digits < 2 { digits = 2 }
        Self.hexDigits.withUTF8Buffer { h in
            for i in stride(from: digits - 1, through: 0, by: -1) { bytes.append(h[Int((v >> (4 * UInt32(i))) & 0xf)]) }
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

    private static let hexDigits: StaticString = "0123456789abcdef"

    private mutating func escape(_ u: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var start = 0
        var i = 0
        while i < u.count {
            let c = u[i]
            if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            if start < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[start..<i])) }
            bytes.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x0a: bytes.append(UInt8(ascii: "n"))
            case 0x0c: bytes.append(UInt8(ascii: "f"))
            case 0x0d: bytes.append(UInt8(ascii: "r"))
            default:
                Self.hexDigits.withUTF8Buffer { h in
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), h[Int(c >> 4)], h[Int(c & 0xf)]])
                }
            }
            i += 1
            start = i
        }
        if start < u.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[start..<u.count])) }
        bytes.append(UInt8(ascii: "\""))
    }
}
