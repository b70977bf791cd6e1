#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The lk-owner of a Gluster lock: opaque bytes chosen by the client (at most 255).
/// locksmith's own locks carry `<hostname>:<pid>` so that anyone who can read the owner
/// (a statedump on a server node) can name the holder. gfapi's default owner is 4 opaque
/// bytes, a FUSE mount's the kernel's 8.
public struct GlusterLockOwner: Hashable, Sendable, Codable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The owner locksmith gives its locks: `<hostname>:<pid>`.
    public static func locksmith(host: String, pid: Int32) -> GlusterLockOwner {
        GlusterLockOwner(bytes: Array("\(host):\(pid)".utf8.prefix(255)))
    }

    /// This process's owner.
    public static var current: GlusterLockOwner { locksmith(host: Sys.hostName, pid: getpid()) }

    /// Parses the owner as a statedump prints it: lowercase hex, with a `-` after every
    /// 8 bytes (`6d79686f73743a31-323334` = "myhost:1234").
    public init?(statedumpHex text: some StringProtocol) {
        var out: [UInt8] = []
        var high: UInt8?
        for c in text.utf8 {
            if c == UInt8(ascii: "-") { continue }
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            if let h = high {
                out.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        guard high == nil, !out.isEmpty else { return nil }
        bytes = out
    }

    /// The statedump spelling: hex, `-` after every 8 bytes.
    public var hex: String {
        var s = ""
        for (i, b) in bytes.enumerated() {
            if i > 0 && i % 8 == 0 { s += "-" }
            s += String(b >> 4, radix: 16) + String(b & 0xf, radix: 16)
        }
        return s
    }

    /// The bytes as text when they are all printable ASCII.
    public var text: String? {
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Host and pid when this is a locksmith owner `<hostname>:<pid>`.
    public var locksmithHolder: (host: String, pid: Int32)? {
        guard let t = text, let colon = t.lastIndex(of: ":") else { return nil }
        let host = t[..<colon]
        guard !host.isEmpty, let pid = Int32(t[t.index(after: colon)...]), pid > 0 else { return nil }
        return (String(host), pid)
    }

    /// The text when printable (`h1:4242`), else the hex.
    public var description: String { text ?? hex }
}

/// Who holds a conflicting lock on a Gluster image, as far as it can be known from this
/// node: F_GETLK gives a pid; a statedump (on a server node) adds the client's host, its
/// connection's pid and the lk-owner.
public struct GlusterLockHolder: Hashable, Sendable, Codable {
    public enum Source: String, Hashable, Sendable, Codable {
        /// glfs_posix_lock(F_GETLK): type, range and the l_pid the holder asked with.
        case getlk
        /// A brick statedump (`gluster volume statedump`).
        case statedump
    }

    public var type: LockType
    public var range: ByteRange
    /// The locking process: for locksmith and FUSE holders its real pid (FUSE passes the
    /// caller's pid; locksmith puts its own in l_pid); for other gfapi programs whatever
    /// they put in l_pid, until a statedump gives their client pid.
    public var pid: Int32?
    /// The holder's host: a locksmith lk-owner's host, else the HOST of the client's
    /// connection (for a FUSE mount: the host that made the mount). Nil from F_GETLK alone.
    public var host: String?
    /// The client process of the connection (a gfapi program itself; for FUSE the mount's
    /// glusterfs daemon). Statedump only.
    public var clientPID: Int32?
    public var owner: GlusterLockOwner?
    public var source: Source

    public init(type: LockType, range: ByteRange, pid: Int32?, host: String? = nil, clientPID: Int32? = nil,
                owner: GlusterLockOwner? = nil, source: Source) {
        self.type = type
        self.range = range
        self.pid = pid
        self.host = host
        self.clientPID = clientPID
        self.owner = owner
        self.source = source
    }

    /// The granted locks in `records` on `path` that stand in the way of a lock of `type`
    /// on `range` (the statedump naming of holders; see `GlusterStatedump`).
    public static func conflicting(in records: [GlusterLockRecord], path: String, type: LockType,
                                   range: ByteRange = .wholeFile) -> [GlusterLockHolder] {
        var seen = Set<GlusterLockHolder>()
        return records.filter {
            $0.state == .active && $0.path == path && type.conflicts(with: $0.type)
                && range.overlaps(start: $0.range.start, end: $0.range.end)
        }
        .map(\.holder)
        .filter { seen.insert($0).inserted }
    }
}

// MARK: - The gluster scheme in the locking core

/// A lock held through libgfapi: its client connection and open file.
private final class HeldGlusterLock: HeldRemoteLock, @unchecked Sendable {
    #if Gluster
    let client: GlusterClient
    let file: GlusterFile
    let range: ByteRange
    let timeout: Double

    init(client: GlusterClient, file: GlusterFile, range: ByteRange, timeout: Double) {
        self.client = client
        self.file = file
        self.range = range
        self.timeout = timeout
    }

    /// Unlocks and closes, waiting at most the timeout (a dead or partitioned server must
    /// not hold up the caller's exit), then ends the connection in the background.
    func release() {
        let (client, file, range) = (client, file, range)
        _ = DetachedCall.run(seconds: timeout, {
            file.unlock(range: range)
            file.close()
            client.finiInBackground()
        })
    }
    #else
    func release() {}
    #endif
}

extension ImageLocker {
    /// The Gluster image an image name stands for, or nil for a local image. A name that
    /// looks like a gluster URL but is malformed, or the gluster scheme with a local
    /// image, is an error.
    static func glusterImage(_ image: String, scheme: LockScheme) throws -> GlusterURL? {
        if GlusterURL.looksLikeURL(image) { return try GlusterURL(parsing: image) }
        if scheme == .gluster {
            throw ImageLockError.unsupported(
                "the gluster scheme needs an image named gluster://HOST[:PORT]/VOLUME/PATH, not \(image)")
        }
        return nil
    }

    static func requireGlusterSupport(_ url: GlusterURL) throws {
        if !GlusterClient.available {
            throw ImageLockError.unsupported(
                "\(url): this locksmith was built without Gluster support (package trait \"Gluster\" disabled)")
        }
        if let why = GlusterClient.loadFailure {
            throw ImageLockError.unsupported("\(url): libgfapi cannot be loaded (\(why)); install Debian's libgfapi0 package")
        }
    }

    #if Gluster
    /// Runs one network step with the locker's timeout.
    func step<T>(_ operation: String, _ url: GlusterURL, _ body: @escaping () -> T,
                         abandoned: @escaping (T) -> Void) throws -> T {
        guard let r = DetachedCall.run(seconds: glusterTimeout, body, abandoned: abandoned) else {
            throw ImageLockError.glusterTimedOut(operation: "\(operation) \(url)", server: url.server, seconds: glusterTimeout)
        }
        return r
    }

    func connect(_ url: GlusterURL) throws -> GlusterClient {
        let r = try step("connect to volume \(url.volume) for", url, { GlusterClient.connect(url) },
                         abandoned: { if case .success(let c) = $0 { c.finiInBackground() } })
        switch r {
        case .success(let c): return c
        case .failure(let e): throw ImageLockError.glusterUnreachable(server: url.server, volume: url.volume, errno: e.code)
        }
    }

    /// Opens the image. On failure or timeout `giveUp` runs (once the step has ended).
    private func open(_ url: GlusterURL, client: GlusterClient, write: Bool,
                      giveUp: @escaping () -> Void) throws -> GlusterFile {
        let r = try step("open", url, { client.open(url.path, write: write) }, abandoned: {
            if case .success(let f) = $0 { f.close() }
            giveUp()
        })
        switch r {
        case .success(let f): return f
        case .failure(let failure):
            giveUp()
            switch failure {
            case .notRegular(let kind): throw ImageLockError.notAnImage(path: url.description, kind: kind)
            case .errno(let e) where e.code == ENOENT || e.code == ENOTDIR:
                throw ImageLockError.imageMissing(path: url.description)
            case .errno(let e) where e.code == EACCES || e.code == EPERM || e.code == EROFS:
                throw ImageLockError.imageNotAccessible(path: url.description, needsWrite: write, errno: e.code)
            case .errno(let e): throw ImageLockError.system(operation: "open", path: url.description, errno: e.code)
            }
        }
    }

    /// The `gluster` scheme: a whole-file F_WRLCK (exclusive) or F_RDLCK (shared) through
    /// glfs_posix_lock, with l_pid = this pid and lk-owner `<hostname>:<pid>`, on a client
    /// connection of its own.
    func acquireGluster(_ url: GlusterURL, mode: LockMode, wait: Double?) throws -> LockOutcome {
        let client = try connect(url)
        let file = try open(url, client: client, write: mode == .exclusive, giveUp: { client.finiInBackground() })
        if case .failure(let e) = file.setOwner(GlusterLockOwner.current.bytes) {
            GlusterLocks.letGo(client, file)
            throw ImageLockError.system(operation: "set lk-owner on", path: url.description, errno: e.code)
        }
        let type: LockType = mode == .exclusive ? .write : .read
        let range = ByteRange.wholeFile
        let pid = getpid()
        let deadline = wait.map { Sys.monotonicSeconds() + max(0, $0) }
        var pause: UInt32 = 20_000
        while true {
            let got = try step("lock", url, { file.set(type: type, range: range, pid: pid) }, abandoned: { _ in
                GlusterLocks.letGo(client, file)
            })
            switch got {
            case .success(true):
                let held = HeldGlusterLock(client: client, file: file, range: range, timeout: glusterTimeout)
                return .acquired(HeldImageLock(image: url.description, scheme: .gluster, mode: mode, remote: held))
            case .success(false):
                if let d = deadline, Sys.monotonicSeconds() < d {
                    usleep(pause)
                    pause = min(pause * 2, 200_000)
                    continue
                }
                // Who holds it: F_GETLK. If that fails the lock is still busy, holder unknown.
                var blocking: BlockingLock?
                do {
                    blocking = try test(url, file: file, type: type, range: range,
                                        abandoned: { GlusterLocks.letGo(client, file) })
                    GlusterLocks.letGo(client, file)
                } catch ImageLockError.glusterTimedOut {
                    // the abandoned step lets go
                } catch {
                    GlusterLocks.letGo(client, file)
                }
                return .busy(GlusterLocks.contention(blocking))
            case .failure(let e):
                GlusterLocks.letGo(client, file)
                throw ImageLockError.system(operation: "lock", path: url.description, errno: e.code)
            }
        }
    }

    /// F_GETLK. On timeout `abandoned` runs once the call has ended.
    private func test(_ url: GlusterURL, file: GlusterFile, type: LockType, range: ByteRange,
                      abandoned: @escaping () -> Void) throws -> BlockingLock? {
        let r = try step("test lock on", url, { file.test(type: type, range: range) }, abandoned: { _ in abandoned() })
        switch r {
        case .success(let b): return b
        case .failure(let e): throw ImageLockError.system(operation: "test lock on", path: url.description, errno: e.code)
        }
    }

    /// Tests with F_GETLK whether the lock could be taken; takes nothing. Uses a client
    /// connection shared by this process's probes of the volume.
    func probeGluster(_ url: GlusterURL, mode: LockMode) throws -> ProbeResult {
        var result = ProbeResult(image: url.description, scheme: .gluster, mode: mode, lockFile: nil,
                                 lockFileExists: false, flavor: nil, contention: nil)
        if mode == .off { return result }
        let client = try GlusterLocks.sharedClient(url) { try connect(url) }
        // A missing or unusable image says nothing about the connection; a failure or
        // timeout of the server does: the next probe connects afresh.
        let file: GlusterFile
        do {
            file = try open(url, client: client, write: false, giveUp: {})
        } catch let e as ImageLockError {
            if case .imageMissing = e {} else if case .notAnImage = e {} else { GlusterLocks.forget(client) }
            throw e
        }
        let type: LockType = mode == .exclusive ? .write : .read
        let blocking: BlockingLock?
        do {
            blocking = try test(url, file: file, type: type, range: .wholeFile, abandoned: { file.close() })
        } catch {
            GlusterLocks.forget(client)
            throw error
        }
        DetachedCall.detach { file.close() }
        if let b = blocking { result.contention = GlusterLocks.contention(b) }
        return result
    }
    #else
    func acquireGluster(_ url: GlusterURL, mode: LockMode, wait: Double?) throws -> LockOutcome {
        throw ImageLockError.unsupported("\(url): Gluster support is not built in")
    }

    func probeGluster(_ url: GlusterURL, mode: LockMode) throws -> ProbeResult {
        throw ImageLockError.unsupported("\(url): Gluster support is not built in")
    }
    #endif
}

enum GlusterLocks {
    static func contention(_ blocking: BlockingLock?) -> Contention {
        guard let b = blocking else { return Contention(blocking: [], holders: []) }
        return Contention(blocking: [b], holders: [], glusterHolders: [
            GlusterLockHolder(type: b.type, range: b.range, pid: b.pid, source: .getlk),
        ])
    }

    #if Gluster
    static func letGo(_ client: GlusterClient, _ file: GlusterFile) {
        DetachedCall.detach {
            file.close()
            client.finiInBackground()
        }
    }

    /// One probing client per server and volume, kept for the life of the process
    /// (glfs_fini is too slow to pay per probe; gfapi reconnects by itself).
    private static let clients = Mutex<[String: GlusterClient]>([:])

    static func sharedClient(_ url: GlusterURL, connect: () throws -> GlusterClient) throws -> GlusterClient {
        let key = "\(url.server)/\(url.volume)"
        if let c = clients.withLock({ $0[key] }) { return c }
        let c = try connect()
        return clients.withLock { table in
            if let other = table[key] {
                c.finiInBackground()
                return other
            }
            table[key] = c
            return c
        }
    }

    /// Drops a probing client after a failure, so that the next probe connects afresh.
    static func forget(_ client: GlusterClient) {
        let key = "\(client.url.server)/\(client.url.volume)"
        clients.withLock { table in
            if table[key] === client { table[key] = nil }
        }
    }
    #endif
}
