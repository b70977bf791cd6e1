/// An image on a Gluster volume: `gluster://HOST[:PORT]/VOLUME/PATH`, as QEMU names them
/// (QEMU's block/gluster.c also accepts `gluster+tcp://`, which means the same).
///
/// HOST is a name, an IPv4 address or a bracketed IPv6 address; PORT is glusterd's
/// management port (default 24007), from which the client fetches the volume's layout.
/// PATH is taken literally (no %-decoding) and is relative to the volume's root.
public struct GlusterURL: Hashable, Sendable, Codable, CustomStringConvertible {
    public static let defaultPort = 24007

    /// The server to fetch the volume file from (name or address, IPv6 without brackets).
    public var host: String
    public var port: Int
    public var volume: String
    /// The file's path inside the volume, starting with `/`.
    public var path: String

    public init(host: String, port: Int = GlusterURL.defaultPort, volume: String, path: String) {
        self.host = host
        self.port = port
        self.volume = volume
        self.path = path.hasPrefix("/") ? path : "/" + path
    }

    /// Whether `image` is meant as a Gluster URL (so that a malformed one is reported as
    /// such rather than as a missing local file): `gluster://` or `gluster+`, in any case
    /// (every image of a snapshot is asked: 100k lowercased copies were ~10 ms).
    public static func looksLikeURL(_ image: String) -> Bool {
        image.hasLowercasedPrefix(["gluster://", "gluster+"])
    }

    /// Parses `gluster://HOST[:PORT]/VOLUME/PATH`.
    public init(parsing text: String) throws {
        func bad(_ reason: String) -> ImageLockError { .invalidGlusterURL(text, reason: reason) }
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("gluster://") {
            rest = text.dropFirst("gluster://".count)
        } else if lower.hasPrefix("gluster+tcp://") {
            rest = text.dropFirst("gluster+tcp://".count)
        } else if lower.hasPrefix("gluster+") {
            throw bad("only the tcp transport is supported (gluster:// or gluster+tcp://)")
        } else {
            throw bad("expected gluster://HOST[:PORT]/VOLUME/PATH")
        }
        guard let slash = rest.firstIndex(of: "/") else { throw bad("missing /VOLUME/PATH after the host") }
        let authority = rest[..<slash]
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw bad("unclosed [ in the IPv6 address") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
            if host.contains(":") { throw bad("write an IPv6 address in brackets: gluster://[ADDR]:PORT/...") }
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw bad("missing host") }
        var port = GlusterURL.defaultPort
        if let p = portText {
            guard let n = Int(p), (1...65535).contains(n) else { throw bad("port must be a number from 1 to 65535") }
            port = n
        }
        let afterHost = rest[rest.index(after: slash)...]
        guard let volEnd = afterHost.firstIndex(of: "/"), volEnd != afterHost.startIndex else {
            throw afterHost.isEmpty || afterHost.hasPrefix("/") ? bad("missing volume name") : bad("missing the file's path after the volume")
        }
        let volume = afterHost[..<volEnd]
        let components = afterHost[volEnd...].split(separator: "/")
        guard !components.isEmpty else { throw bad("missing the file's path after the volume") }
        if components.contains(where: { $0 == "." || $0 == ".." }) { throw bad("the path must not contain . or ..") }
        if text.utf8.contains(0) { throw bad("contains a NUL byte") }
        self.init(host: String(host), port: port, volume: String(volume),
                  path: "/" + components.joined(separator: "/"))
    }

    /// Parses a volume as `list --gluster` names it: `HOST[:PORT]/VOLUME`, also written
    /// `gluster://HOST[:PORT]/VOLUME`. The result's path is `/` (the volume's root).
    public init(parsingVolume text: String) throws {
        var rest = Substring(text)
        if GlusterURL.looksLikeURL(text) {
            let lower = text.lowercased()
            guard lower.hasPrefix("gluster://") || lower.hasPrefix("gluster+tcp://"), let r = text.firstRange(of: "://") else {
                throw ImageLockError.invalidGlusterURL(text, reason: "only the tcp transport is supported (gluster:// or gluster+tcp://)")
            }
            rest = text[r.upperBound...]
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        // HOST[:PORT] may hold a bracketed IPv6 address; the volume is what follows its first `/`.
        let afterHost = rest.hasPrefix("[") ? rest.firstIndex(of: "]").map { rest[$0...] } ?? rest : rest
        guard let slash = afterHost.firstIndex(of: "/") else {
            throw ImageLockError.invalidGlusterURL(text, reason: "expected HOST[:PORT]/VOLUME")
        }
        if rest[rest.index(after: slash)...].contains("/") {
            throw ImageLockError.invalidGlusterURL(
                text, reason: "a volume is HOST[:PORT]/VOLUME; name a directory in it with --gluster-path")
        }
        var url = try GlusterURL(parsing: "gluster://" + rest + "/-")
        url.path = "/"
        self = url
    }

    /// `HOST[:PORT]/VOLUME`: how `--gluster` names the volume, the port only when not 24007.
    public var volumeName: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return h + (port == GlusterURL.defaultPort ? "" : ":\(port)") + "/" + volume
    }

    /// The URL of another file on the same volume.
    public func file(_ path: String) -> GlusterURL {
        GlusterURL(host: host, port: port, volume: volume, path: path)
    }

    /// `HOST:PORT`, IPv6 addresses in brackets.
    public var server: String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
    }

    /// The canonical spelling: `gluster://HOST[:PORT]/VOLUME/PATH`, the port only when it
    /// is not 24007.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "gluster://" + h + (port == GlusterURL.defaultPort ? "" : ":\(port)") + "/" + volume + path
    }
}
