import FoundationEssentials

/// Who a process is, as every process-like value of the model carries it (a `Holder`, an
/// `ImageWriter`, an `InvolvedProcess` of a finding): one definition, so that a value made
/// from another (a finding's process from a holder) copies all of it, never a subset.
public struct ProcessIdentity: Sendable, Equatable, Hashable {
    public var pid: Int32
    /// The command name (/proc/PID/comm).
    public var command: String
    /// The command line (/proc/PID/cmdline), when it could be read.
    public var args: [String]
    public var user: String?
    public var uid: UInt32?
    /// When the process started (from /proc/PID/stat and the boot time).
    public var started: Date?

    public init(pid: Int32, command: String, args: [String] = [], user: String? = nil, uid: UInt32? = nil, started: Date? = nil) {
        self.pid = pid
        self.command = command
        self.args = args
        self.user = user
        self.uid = uid
        self.started = started
    }

    /// The user's name, else the uid as text (what the reports' `user` says); nil when neither is known.
    public var userText: String? { user ?? uid.map(String.init) }
}

/// A value that embeds a `ProcessIdentity`: its fields read and write through `process`.
public protocol ProcessLike {
    var process: ProcessIdentity { get set }
}

extension ProcessLike {
    @inlinable public var pid: Int32 {
        get { process.pid }
        set { process.pid = newValue }
    }
    @inlinable public var command: String {
        get { process.command }
        set { process.command = newValue }
    }
    @inlinable public var args: [String] {
        get { process.args }
        set { process.args = newValue }
    }
    @inlinable public var user: String? {
        get { process.user }
        set { process.user = newValue }
    }
    @inlinable public var uid: UInt32? {
        get { process.uid }
        set { process.uid = newValue }
    }
    @inlinable public var started: Date? {
        get { process.started }
        set { process.started = newValue }
    }
}
