import Glibc

/// Sorting many names and paths by their UTF-8 bytes (code point order; for the ASCII of
/// lock file names and image paths the same as Swift's `<`, which also normalises Unicode
/// and costs far more). The strings are copied once into one flat buffer, so comparisons
/// are memcmp without reference counting; a 16-byte key after the bytes every string
/// shares settles most of them with two integer compares.
enum ByteOrder {
    /// Whether `a` comes before `b` in byte order.
    static func precedes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
                return c != 0 ? c < 0 : x.count < y.count
            }
        }
    }

    /// The indices of `strings` in ascending byte order (stable).
    static func sortedIndices(_ strings: [String]) -> [Int] {
        guard strings.count > 1 else { return Array(strings.indices) }
        var flat: [UInt8] = []
        flat.reserveCapacity(strings.reduce(0) { $0 + $1.utf8.count })
        var offsets: [Int] = [0]
        offsets.reserveCapacity(strings.count + 1)
        for s in strings {
            flat.append(contentsOf: s.utf8)
            offsets.append(flat.count)
        }
        return flat.withUnsafeBufferPointer { bytes -> [Int] in
            func slice(_ i: Int) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(rebasing: bytes[offsets[i]..<offsets[i + 1]])
            }
            // The prefix every string shares.
            let first = slice(0)
            var common = first.count
            for i in 1..<strings.count where common > 0 {
                let s = slice(i)
                var j = 0
                while j < common && j < s.count && s[j] == first[j] { j += 1 }
                common = j
            }
            var keys: [(UInt64, UInt64)] = []
            keys.reserveCapacity(strings.count)
            for i in strings.indices {
                let s = slice(i)
                var hi: UInt64 = 0, lo: UInt64 = 0
                for k in 0..<16 {
                    let j = common + k
                    let b = UInt64(j < s.count ? s[j] : 0)
                    if k < 8 { hi = hi << 8 | b } else { lo = lo << 8 | b }
                }
                keys.append((hi, lo))
            }
            var order = Array(strings.indices)
            order.sort { a, b in
                let ka = keys[a], kb = keys[b]
                if ka.0 != kb.0 { return ka.0 < kb.0 }
                if ka.1 != kb.1 { return ka.1 < kb.1 }
                let x = slice(a), y = slice(b)
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
                if c != 0 { return c < 0 }
                return x.count != y.count ? x.count < y.count : a < b
            }
            return order
        }
    }
}
