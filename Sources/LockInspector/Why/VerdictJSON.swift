import Foundation
import ImageLock

// `why --json`: field names in camelCase here, snake_case on output (the CLI's encoder).
// Optional fields are written as null rather than left out, so scripts see every key.

extension Verdict: Encodable {
    enum CodingKeys: String, CodingKey {
        case image, imageBytes, named, mode, opens, outcome, qemuMessage, qemuFailures, blockers, reasons, chain, waiters, facts, proven
    }

    /// QEMU's text and hint line, as QEMU prints them (two lines), or nil.
    public var qemuText: String? {
        qemuMessage.map { m in qemuHint.map { m + "\n" + $0 } ?? m }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodePath(image, forKey: .image, bytesKey: .imageBytes)
        try c.encode(named, forKey: .named)
        try c.encode(intent.rawValue, forKey: .mode)
        try c.encode(opens, forKey: .opens)
        try c.encode(outcome.rawValue, forKey: .outcome)
        try c.encode(qemuText, forKey: .qemuMessage)
        try c.encode(qemuFailures, forKey: .qemuFailures)
        try c.encode(blockers, forKey: .blockers)
        try c.encode(reasons, forKey: .reasons)
        try c.encode(chain, forKey: .chain)
        try c.encode(waiters, forKey: .waiters)
        try c.encode(facts, forKey: .facts)
        try c.encode(proven, forKey: .proven)
    }
}

private func iso(_ d: Date?) -> String? { d?.formatted(.iso8601) }

extension QemuFailure: Encodable {
    enum CodingKeys: String, CodingKey { case image, name, depth, byte, message, hint, holders }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(image, forKey: .image)
        try c.encode(name, forKey: .name)
        try c.encode(depth, forKey: .depth)
        try c.encode(byte, forKey: .byte)
        try c.encode(message, forKey: .message)
        try c.encode(hint, forKey: .hint)
        try c.encode(holders, forKey: .holders)
    }
}

extension Blocker: Encodable {
    enum CodingKeys: String, CodingKey {
        case pid, host, command, args, vm, user, started, fd, openMode, scheme, holds, via, lock, conflict, remedy, proven
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pid, forKey: .pid)
        try c.encode(host, forKey: .host)
        try c.encode(command, forKey: .command)
        try c.encode(args, forKey: .args)
        try c.encode(vm, forKey: .vm)
        try c.encode(user, forKey: .user)
        try c.encode(iso(started), forKey: .started)
        try c.encode(fd, forKey: .fd)
        try c.encode(openMode?.rawValue, forKey: .openMode)
        try c.encode(scheme.rawValue, forKey: .scheme)
        try c.encode(holds, forKey: .holds)
        try c.encode(via, forKey: .via)
        try c.encode(lock, forKey: .lock)
        try c.encode(conflict, forKey: .conflict)
        try c.encode(remedy, forKey: .remedy)
        try c.encode(proven, forKey: .proven)
    }
}

extension Reason: Encodable {
    enum CodingKeys: String, CodingKey { case kind, path, message, remedy, blocks }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind.rawValue, forKey: .kind)
        try c.encode(path, forKey: .path)
        try c.encode(message, forKey: .message)
        try c.encode(remedy, forKey: .remedy)
        try c.encode(blocks, forKey: .blocks)
    }
}

extension ChainEntry: Encodable {
    enum CodingKeys: String, CodingKey { case path, name, backingName, format, exists, opened, problem, holders }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(name, forKey: .name)
        try c.encode(backingName, forKey: .backingName)
        try c.encode(format, forKey: .format)
        try c.encode(exists, forKey: .exists)
        try c.encode(opened, forKey: .opened)
        try c.encode(problem, forKey: .problem)
        try c.encode(holders, forKey: .holders)
    }
}

extension ChainEntry.ChainHolder: Encodable {
    enum CodingKeys: String, CodingKey { case pid, command, vm, lock, via }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pid, forKey: .pid)
        try c.encode(command, forKey: .command)
        try c.encode(vm, forKey: .vm)
        try c.encode(lock, forKey: .lock)
        try c.encode(via, forKey: .via)
    }
}

extension Waiter: Encodable {
    enum CodingKeys: String, CodingKey { case pid, command, started, waitsOn, lockType }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pid, forKey: .pid)
        try c.encode(command, forKey: .command)
        try c.encode(iso(started), forKey: .started)
        try c.encode(waitsOn, forKey: .waitsOn)
        try c.encode(lockType, forKey: .lockType)
    }
}

extension Fact: Encodable {
    enum CodingKeys: String, CodingKey { case statement, proven }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(statement, forKey: .statement)
        try c.encode(proven, forKey: .proven)
    }
}
