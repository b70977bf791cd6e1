import CCrypto

/// Lowercase hex digests through the system libcrypto (loaded on first use: CCrypto.h).
public enum Digest {
    /// Loads libcrypto now, on the calling thread, rather than at the first hash (its load
    /// takes ~3.4M instructions: its relocations and initialisers).
    public static func load() { ccrypto_load() }

    /// SHA-1 of `bytes` as 40 lowercase hex characters. The corresponding C functions are `SHA1_Init`, `SHA1_Update` and `SHA1_Final`.
    public static func sha1Hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: Int(CCRYPTO_SHA1_LENGTH))
        bytes.withUnsafeBufferPointer { buf in
            ccrypto_sha1(buf.baseAddress, buf.count, &out)
        }
        return hex(out)
    }

    /// SHA-256 of `bytes` as 64 lowercase hex characters. The corresponding C functions are `SHA256_Init`, `SHA256_Update` and `SHA256_Final`.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: Int(CCRYPTO_SHA256_LENGTH))
        bytes.withUnsafeBufferPointer { buf in
            ccrypto_sha256(buf.baseAddress, buf.count, &out)
        }
        return hex(out)
    }

    public static func sha1Hex(_ string: String) -> String { sha1Hex(Array(string.utf8)) }
    public static func sha256Hex(_ string: String) -> String { sha256Hex(Array(string.utf8)) }

    /// SHA-1 of `bytes` as a value (for hashing thousands of paths without hex strings).
    public static func sha1(_ bytes: UnsafeRawBufferPointer) -> SHA1Digest {
        var d = SHA1Digest()
        withUnsafeMutableBytes(of: &d.words) { out in
            ccrypto_sha1(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count,
                         out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return d
    }

    public static func sha1(_ string: String) -> SHA1Digest {
        var s = string
        return s.withUTF8 { sha1(UnsafeRawBufferPointer($0)) }
    }

    private static let digits = Array("0123456789abcdef".utf8)

    static func hex(_ bytes: [UInt8]) -> String {
        var chars = [UInt8]()
        chars.reserveCapacity(bytes.count * 2)
        for b in bytes {
            chars.append(digits[Int(b >> 4)])
            chars.append(digits[Int(b & 0xf)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}

/// A SHA-1 digest as a hashable value; `init?(hex:)` reads the 40 hex digits of a lock file name.
public struct SHA1Digest: Hashable, Sendable {
    var words: (UInt64, UInt64, UInt32) = (0, 0, 0)

    public init() {}

    /// 40 lowercase hex digits (the scheme's names); nil for anything else.
    public init?(hex: UnsafeBufferPointer<UInt8>) {
        guard hex.count == 40 else { return nil }
        var ok = true
        withUnsafeMutableBytes(of: &words) { out in
            for i in 0..<20 {
                guard let h = Self.nibble(hex[2 * i]), let l = Self.nibble(hex[2 * i + 1]) else {
                    ok = false
                    return
                }
                out[i] = h << 4 | l
            }
        }
        guard ok else { return nil }
    }

    public init?(hex: Substring) {
        var s = String(hex)
        guard let d = s.withUTF8({ SHA1Digest(hex: $0) }) else { return nil }
        self = d
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    public static func == (a: SHA1Digest, b: SHA1Digest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2
    }

    public func hash(into h: inout Hasher) {
        h.combine(words.0)
        h.combine(words.1)
        h.combine(words.2)
    }

    /// 40 lowercase hex digits.
    public var hex: String {
        var t = words
        return withUnsafeBytes(of: &t) { Digest.hex(Array($0)) }
    }
}
