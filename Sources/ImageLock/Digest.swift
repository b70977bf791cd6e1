import CCrypto

/// Lowercase hex digests through the system libcrypto.
public enum Digest {
    /// SHA-1 of `bytes` as 40 lowercase hex characters. The corresponding C function is `SHA1`.
    public static func sha1Hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: Int(SHA_DIGEST_LENGTH))
        bytes.withUnsafeBufferPointer { buf in
            _ = SHA1(buf.baseAddress, buf.count, &out)
        }
        return hex(out)
    }

    /// SHA-256 of `bytes` as 64 lowercase hex characters. The corresponding C function is `SHA256`.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        bytes.withUnsafeBufferPointer { buf in
            _ = SHA256(buf.baseAddress, buf.count, &out)
        }
        return hex(out)
    }

    public static func sha1Hex(_ string: String) -> String { sha1Hex(Array(string.utf8)) }
    public static func sha256Hex(_ string: String) -> String { sha256Hex(Array(string.utf8)) }

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
