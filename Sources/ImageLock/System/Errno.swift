// The one errno type: every failure of a system call in this layer is one of these.
#if canImport(Glibc)
import Glibc
#endif

/// An errno value as a Swift error, with strerror's text.
public struct Errno: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
    /// The calling thread's errno now.
    package static var current: Errno { Errno(errno) }
}

