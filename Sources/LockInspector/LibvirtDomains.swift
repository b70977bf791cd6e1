import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import ImageLock

// libvirt's domains, read from its domain XML: the live status of running domains
// (/run/libvirt/qemu/NAME.xml, a `<domstatus pid='…'>` around the `<domain>`) and the
// persistent definitions (/etc/libvirt/qemu/NAME.xml). They name the VM and the disk target
// (`vda`) behind a QEMU holder, and the domain that owns a lock virtlockd holds for it
// (libvirt's lockd plugin: https://libvirt.org/kbase/locking-lockd.html).
// The XML is read as hostile input: a bounded size, a small parser of the few elements used
// (https://libvirt.org/formatdomain.html), no entities beyond XML's five and character
// references, no DTD.

/// A libvirt domain as its XML describes it.
public struct LibvirtDomain: Sendable, Equatable {
    public var name: String
    public var uuid: String?
    /// The QEMU process of a running domain (`pid` of the live status XML's `<domstatus>`).
    public var pid: Int32?
    /// From libvirt's live status XML (a running domain), not a persistent definition.
    public var live: Bool
    public var disks: [Disk]

    /// One `<disk>` of `<devices>`.
    public struct Disk: Sendable, Equatable {
        /// `<target dev='vda'/>`.
        public var target: String?
        /// `<source file=…>` (or `dev=`), then the `<backingStore>` chain libvirt recorded, top first.
        public var sources: [String]
        public var readOnly: Bool
        public var shareable: Bool

        public init(target: String?, sources: [String], readOnly: Bool = false, shareable: Bool = false) {
            self.target = target
            self.sources = sources
            self.readOnly = readOnly
            self.shareable = shareable
        }
    }

    public init(name: String, uuid: String? = nil, pid: Int32? = nil, live: Bool = false, disks: [Disk] = []) {
        self.name = name
        self.uuid = uuid
        self.pid = pid
        self.live = live
        self.disks = disks
    }
}

/// Reading and using libvirt's domain XML.
enum LibvirtDomains {
    /// The most read of one XML file; libvirt's live status of a domain is ~10-20 KiB.
    static let sizeLimit = 1 << 20

    /// Every `*.xml` domain in the dirs (not their subdirs), in the dirs' order and by name
    /// within each; files that cannot be read or parsed are `unseen`.
    static func read(_ directories: [String]) -> (domains: [LibvirtDomain], unseen: [Unseen]) {
        var domains: [LibvirtDomain] = []
        var unseen: [Unseen] = []
        for dir in directories {
            guard case .success(let entries) = Sys.entries(dir) else { continue }
            let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            let names = entries.map(\.name).filter { $0.hasSuffix(".xml") }
            for i in ByteOrder.sortedIndices(names) {
                let path = base + "/" + names[i]
                switch Sys.readRegularFile(path, limit: sizeLimit + 1) {
                case .success(let bytes) where bytes.count > sizeLimit:
                    unseen.append(Unseen(what: "libvirt domain \(path)", why: "larger than \(sizeLimit >> 20) MiB"))
                case .success(let bytes):
                    if let d = parse(bytes) {
                        domains.append(d)
                    } else {
                        unseen.append(Unseen(what: "libvirt domain \(path)", why: "not domain XML libvirt writes"))
                    }
                case .failure(let e) where e.code == ENOENT:
                    break  // removed since the dir was read (a domain stopped)
                case .failure(let e):
                    unseen.append(Unseen(what: "libvirt domain \(path)", why: e.description))
                }
            }
        }
        return (domains, unseen)
    }

    // MARK: Parsing

    /// The domain in one XML document (`<domain>`, or `<domstatus>` around one); nil when it
    /// is not well-formed as far as read, nests deeper than 64, has a DTD, or a name, UUID or
    /// disk target with a control character (libvirt writes none; a terminal would obey it).
    /// A domain without a name (libvirt writes none such) still names its disks as candidate
    /// images.
    static func parse(_ bytes: [UInt8]) -> LibvirtDomain? {
        var p = DomainBuilder()
        guard XMLScanner.scan(bytes, into: &p), p.domainDepth != nil else { return nil }
        let shown = [p.name, p.uuid] + p.disks.map(\.target)
        guard !shown.contains(where: { $0.map(hasControl) ?? false }) else { return nil }
        return LibvirtDomain(name: p.name ?? "", uuid: p.uuid, pid: p.pid, live: p.live, disks: p.disks)
    }

    /// C0 and C1 control characters, DEL.
    static func hasControl(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }
    }

    /// Builds a domain from the scanner's events: which element is where is all it looks at.
    struct DomainBuilder: XMLEvents {
        var stack: [String] = []
        var name: String?
        var uuid: String?
        var pid: Int32?
        var live = false
        var disks: [LibvirtDomain.Disk] = []
        /// The depth of `<domain>` in the stack, once open.
        var domainDepth: Int?
        var disk: LibvirtDomain.Disk?
        var diskDepth = 0
        var text: [UInt8]?

        mutating func start(_ element: String, attributes: [(String, String)]) -> Bool {
            let depth = stack.count
            func attr(_ n: String) -> String? { attributes.first { $0.0 == n }?.1 }
            if depth == 0 {
                guard element == "domain" || element == "domstatus" else { return false }
                if element == "domstatus" {
                    live = true
                    pid = attr("pid").flatMap { Int32($0) }.flatMap { $0 > 0 ? $0 : nil }
                }
            }
            if element == "domain", domainDepth == nil, depth == 0 || (depth == 1 && stack[0] == "domstatus") {
                domainDepth = depth
            }
            if let d = domainDepth {
                if depth == d + 1 && (element == "name" || element == "uuid") { text = [] }
                if element == "disk", depth == d + 2, stack[d + 1] == "devices" {
                    disk = LibvirtDomain.Disk(target: nil, sources: [])
                    diskDepth = depth
                }
                if disk != nil, depth > diskDepth {
                    // Only the disk's own children and its backing chain (backingStore in
                    // backingStore): not a <mirror>'s or a <reservations>' source.
                    let chain = stack[(diskDepth + 1)...].allSatisfy { $0 == "backingStore" }
                    switch element {
                    case "source" where chain:
                        if let s = attr("file") ?? attr("dev"), !s.isEmpty { disk!.sources.append(s) }
                    case "target" where depth == diskDepth + 1:
                        disk!.target = attr("dev")
                    case "readonly" where depth == diskDepth + 1:
                        disk!.readOnly = true
                    case "shareable" where depth == diskDepth + 1:
                        disk!.shareable = true
                    default:
                        break
                    }
                }
            }
            stack.append(element)
            return stack.count <= 64
        }

        mutating func end(_ element: String) -> Bool {
            guard stack.last == element else { return false }
            stack.removeLast()
            let depth = stack.count
            if let d = domainDepth, depth == d + 1, let t = text {
                let value = String(decoding: t, as: UTF8.self).trimmingBlanksAndNewlines
                if element == "name" && name == nil { name = value }
                if element == "uuid" && uuid == nil { uuid = value }
                text = nil
            }
            if element == "disk", depth == diskDepth, let dk = disk {
                disks.append(dk)
                disk = nil
            }
            return true
        }

        var wantsText: Bool { text != nil }

        mutating func characters(_ bytes: ArraySlice<UInt8>) {
            if text != nil && text!.count + bytes.count <= 4096 { text! += bytes }
        }
    }

    // MARK: Attribution

    /// Names the libvirt domain behind each holder: a QEMU holder by the live domain with its
    /// pid (or by its `-uuid`), virtlockd by the domains whose disk it locks. Sets the VM name,
    /// its UUID and the disk target through which the domain uses the image (a backing file:
    /// the target of the disk on top of it).
    static func annotate(_ images: inout [ImageLocks], domains all: [LibvirtDomain]) {
        let domains = all.filter { !$0.name.isEmpty }
        guard !domains.isEmpty else { return }
        let byPid = Dictionary(domains.compactMap { d in d.pid.map { ($0, d) } }, uniquingKeysWith: { a, _ in a })
        // A running domain's live status, else its persistent definition.
        let liveUUIDs = Set(domains.filter(\.live).compactMap(\.uuid))
        let current = domains.filter { $0.live || !($0.uuid.map(liveUUIDs.contains) ?? false) }
        // Paths by their bytes (`PathKey`): an NFC name and its NFD twin are two files.
        var real: [PathKey: String?] = [:]
        func same(_ source: String, _ image: String) -> Bool {
            if PathKey(source) == PathKey(image) { return true }
            guard source.hasPrefix("/") else { return false }
            let key = PathKey(source)
            if real[key] == nil { real[key] = .some((try? Sys.realpath(source).get())) }
            return real[key]!.map { PathKey($0) == PathKey(image) } ?? false
        }
        for i in images.indices {
            guard let path = images[i].path, !images[i].holders.isEmpty else { continue }
            for j in images[i].holders.indices {
                let h = images[i].holders[j]
                if h.scheme == .virtlockd && h.command == "virtlockd" {
                    // virtlockd locks each writable disk's own source (not its backing files).
                    var owners = current.filter { $0.live }.compactMap { d in
                        d.disks.first { $0.sources.first.map { same($0, path) } ?? false }.map { (d, $0) }
                    }
                    if owners.isEmpty {
                        owners = current.compactMap { d in
                            d.disks.first { $0.sources.first.map { same($0, path) } ?? false }.map { (d, $0) }
                        }
                    }
                    guard !owners.isEmpty else { continue }
                    images[i].holders[j].vm = owners.map(\.0.name).joined(separator: ",")
                    images[i].holders[j].vmUUID = owners.count == 1 ? owners[0].0.uuid : nil
                    let targets = owners.compactMap(\.1.target)
                    images[i].holders[j].diskTarget = targets.isEmpty ? nil : targets.joined(separator: ",")
                    continue
                }
                let domain = byPid[h.pid] ?? QemuArgs.uuid(h.args).flatMap { u in current.first { $0.uuid == u } }
                guard let d = domain, QemuArgs.isQemu(h.args) else { continue }
                images[i].holders[j].vm = d.name
                images[i].holders[j].vmUUID = d.uuid
                images[i].holders[j].diskTarget = d.disks.first { $0.sources.contains { same($0, path) } }?.target
            }
        }
    }

    /// Whether `path` is the pid file of a libvirt daemon holding it (libvirt's daemons lock
    /// byte 0 of their own pid file, as virtlockd locks byte 0 of a disk): named
    /// `COMMAND.pid`, or by the daemon's `-p`/`--pid-file` argument.
    static func isOwnPidFile(_ path: String, command: String, args: [String]) -> Bool {
        if path.hasSuffix("/" + command + ".pid") { return true }
        for (i, a) in args.enumerated() {
            if (a == "-p" || a == "--pid-file") && i + 1 < args.count && args[i + 1] == path { return true }
            if a == "--pid-file=" + path { return true }
        }
        return false
    }
}

extension QemuArgs {
    /// The VM's UUID of `-uuid UUID` (libvirt passes the domain's).
    public static func uuid(_ args: [String]) -> String? {
        guard let i = args.firstIndex(where: { $0 == "-uuid" || $0 == "--uuid" }), i + 1 < args.count else { return nil }
        return args[i + 1]
    }
}

// MARK: - A small XML scanner

/// What the scanner reports; `false` from `start`/`end` stops it (the document is refused).
protocol XMLEvents {
    mutating func start(_ element: String, attributes: [(String, String)]) -> Bool
    mutating func end(_ element: String) -> Bool
    /// Whether the text at this point is wanted (it is unescaped only then).
    var wantsText: Bool { get }
    mutating func characters(_ bytes: ArraySlice<UInt8>)
}

/// A single forward pass over the bytes (linear in their length): elements, attributes and
/// text, with comments, processing instructions and CDATA; a DTD is refused. Not a
/// validating parser: enough for the XML libvirt writes, and safe on any other bytes.
enum XMLScanner {
    static func scan<E: XMLEvents>(_ b: [UInt8], into events: inout E) -> Bool {
        let lt = UInt8(ascii: "<"), gt = UInt8(ascii: ">"), slash = UInt8(ascii: "/")
        let n = b.count
        var i = 0
        var open = 0
        var seenRoot = false
        func find(_ pattern: [UInt8], from: Int) -> Int? {
            guard let first = pattern.first, from < n else { return nil }
            var k = from
            while k + pattern.count <= n {
                if b[k] == first && b[k..<(k + pattern.count)].elementsEqual(pattern) { return k }
                k += 1
            }
            return nil
        }
        func has(_ s: String, at k: Int) -> Bool {
            let u = Array(s.utf8)
            return k + u.count <= n && b[k..<(k + u.count)].elementsEqual(u)
        }
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        func isNameByte(_ c: UInt8) -> Bool { !isSpace(c) && c != gt && c != slash && c != UInt8(ascii: "=") && c != lt }
        while i < n {
            guard b[i] == lt else {
                let next = b[i...].firstIndex(of: lt) ?? n
                if open > 0 && events.wantsText { events.characters(unescape(b[i..<next])[...]) }
                i = next
                continue
            }
            if has("<!--", at: i) {
                guard let e = find(Array("-->".utf8), from: i + 4) else { return false }
                i = e + 3
            } else if has("<![CDATA[", at: i) {
                guard let e = find(Array("]]>".utf8), from: i + 9) else { return false }
                if open > 0 && events.wantsText { events.characters(b[(i + 9)..<e]) }
                i = e + 3
            } else if has("<?", at: i) {
                guard let e = find(Array("?>".utf8), from: i + 2) else { return false }
                i = e + 2
            } else if has("<!", at: i) {
                return false  // a DTD (entity declarations): libvirt writes none
            } else if has("</", at: i) {
                var k = i + 2
                while k < n && isNameByte(b[k]) { k += 1 }
                let name = String(decoding: b[(i + 2)..<k], as: UTF8.self)
                while k < n && isSpace(b[k]) { k += 1 }
                guard k < n, b[k] == gt, open > 0, events.end(name) else { return false }
                open -= 1
                i = k + 1
            } else {
                var k = i + 1
                while k < n && isNameByte(b[k]) { k += 1 }
                guard k > i + 1 else { return false }
                let name = String(decoding: b[(i + 1)..<k], as: UTF8.self)
                var attributes: [(String, String)] = []
                var selfClosing = false
                while true {
                    while k < n && isSpace(b[k]) { k += 1 }
                    guard k < n else { return false }
                    if b[k] == gt { k += 1; break }
                    if b[k] == slash {
                        guard k + 1 < n, b[k + 1] == gt else { return false }
                        selfClosing = true
                        k += 2
                        break
                    }
                    let a = k
                    while k < n && isNameByte(b[k]) { k += 1 }
                    guard k > a else { return false }
                    let attrName = String(decoding: b[a..<k], as: UTF8.self)
                    while k < n && isSpace(b[k]) { k += 1 }
                    guard k < n, b[k] == UInt8(ascii: "=") else { return false }
                    k += 1
                    while k < n && isSpace(b[k]) { k += 1 }
                    guard k < n, b[k] == UInt8(ascii: "'") || b[k] == UInt8(ascii: "\"") else { return false }
                    let q = b[k]
                    k += 1
                    guard let close = b[k...].firstIndex(where: { $0 == q || $0 == lt }), b[close] == q else { return false }
                    attributes.append((attrName, String(decoding: unescape(b[k..<close]), as: UTF8.self)))
                    guard attributes.count <= 256 else { return false }
                    k = close + 1
                }
                // One root element.
                if open == 0 {
                    guard !seenRoot else { return false }
                    seenRoot = true
                }
                guard events.start(name, attributes: attributes) else { return false }
                open += 1
                if selfClosing {
                    guard events.end(name) else { return false }
                    open -= 1
                }
                i = k
            }
        }
        return seenRoot && open == 0
    }

    /// XML's five entities and character references; anything else is kept as written.
    static func unescape(_ s: ArraySlice<UInt8>) -> [UInt8] {
        guard s.contains(UInt8(ascii: "&")) else { return Array(s) }
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        while i < s.endIndex {
            guard s[i] == UInt8(ascii: "&"), let semi = s[i...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else {
                out.append(s[i])
                i += 1
                continue
            }
            let body = String(decoding: s[(i + 1)..<semi], as: UTF8.self)
            var replacement: [UInt8]?
            switch body {
            case "amp": replacement = [UInt8(ascii: "&")]
            case "lt": replacement = [UInt8(ascii: "<")]
            case "gt": replacement = [UInt8(ascii: ">")]
            case "apos": replacement = [UInt8(ascii: "'")]
            case "quot": replacement = [UInt8(ascii: "\"")]
            default:
                var code: UInt32?
                if body.hasPrefix("#x") { code = UInt32(body.dropFirst(2), radix: 16) } else if body.hasPrefix("#") { code = UInt32(body.dropFirst()) }
                if let c = code, c != 0, let scalar = Unicode.Scalar(c) { replacement = Array(String(Character(scalar)).utf8) }
            }
            if let r = replacement {
                out += r
                i = semi + 1
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}

// MARK: - Hooks into the scan

extension Scan {
    /// Names the libvirt domains behind the holders (`LibvirtDomains.annotate`), from the
    /// domains the directory pass read, else (`why`) read now when anything is held.
    func nameDomains(_ images: inout [ImageLocks], domains: [LibvirtDomain]?) {
        guard images.contains(where: { !$0.holders.isEmpty }) else { return }
        LibvirtDomains.annotate(&images, domains: domains ?? LibvirtDomains.read(options.libvirtDirectories).domains)
    }

    /// virtlockd's byte-0 lock on a disk QEMU also locks is virtlockd's, not a QEMU user's.
    func virtlockdScheme(_ scheme: LockScheme, locks: [KernelLock], command: String?) -> LockScheme {
        guard scheme == .qemu, command == "virtlockd", !locks.isEmpty,
              locks.allSatisfy({ $0.isByteZero && $0.kind == .posix }) else { return scheme }
        return .virtlockd
    }

    /// Whether the file virtlockd locks is its own pid file, as its fd names it.
    func isDaemonPidFile(_ holders: [OpenFileLocks]) -> Bool {
        holders.contains { of in
            guard let link = of.link, let d = details[of.pid] ?? nil else { return false }
            return LibvirtDomains.isOwnPidFile(link, command: d.command, args: d.args)
        }
    }
}
