// Whole-file reads: /proc pseudo-files and small files, and regular files up to a limit.
// No final link is followed (O_NOFOLLOW, or `SafeOpen` for files others may swap), no open
// blocks (O_NONBLOCK), and EINTR is retried in the read loops here.
#if canImport(Glibc)
import Glibc
#endif
import CLinux

extension Sys {
    /// The flags of every read-only open of a /proc or small file here.
    package static let readFlags: Int32 = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK

    /// Reads an open fd to its end, `chunk` bytes a read (a seq_file hands out at most a
    /// page per read, whatever the buffer). A failing read ends it: what was read, or nil
    /// when nothing was.
    package static func readToEnd(_ fd: Int32, chunk: Int) -> [UInt8]? {
        var out = [UInt8]()
        var failed = false
        // Read into scratch space that is neither zeroed nor kept; `out` grows with what came.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunk) { buf in
            while true {
                let n = Glibc.read(fd, buf.baseAddress, buf.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = true
                    return
                }
                if n == 0 { return }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0..<n]))
            }
        }
        return failed && out.isEmpty ? nil : out
    }

    /// A whole (pseudo or small) file as bytes; nil when it cannot be opened (gone, EACCES,
    /// a link) or nothing could be read.
    package static func readFile(_ path: String, chunk: Int = 65536) -> [UInt8]? {
        guard case .success(let fd) = open(path, readFlags) else { return nil }
        defer { close(fd) }
        return readToEnd(fd, chunk: chunk)
    }

    /// Reads a file made by one `show` call (fdinfo, status) into `buffer`: a read shorter
    /// than the buffer is the whole file, which saves the read that would return 0. Returns
    /// the byte count, or nil when it cannot be read; a file larger than the buffer is cut
    /// short. `name` is relative to the directory fd `dir` (AT_FDCWD: a path).
    package static func readSmall(at dir: Int32, _ name: UnsafePointer<CChar>, into buffer: inout [UInt8]) -> Int? {
        guard case .success(let fd) = open(at: dir, name, readFlags) else { return nil }
        defer { close(fd) }
        var got = 0
        while got < buffer.count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                return got > 0 ? got : nil
            }
            got += n
            if n == 0 || got < buffer.count { break }
        }
        return got > 0 ? got : nil
    }

    package static func readSmall(_ path: String, into buffer: inout [UInt8]) -> Int? {
        PathBytes.withCString(path) { readSmall(at: AT_FDCWD, $0, into: &buffer) }
    }

    /// Reads at most `limit` bytes of a regular file without following a final link,
    /// without opening anything else (`SafeOpen`: a FIFO or device planted there is never
    /// opened; ELOOP for a link, EINVAL for any other kind), without blocking (a lease
    /// holder makes the open fail, not wait) and without updating its access time where the
    /// kernel allows O_NOATIME.
    package static func readRegularFile(_ path: String, limit: Int) -> Result<[UInt8], Errno> {
        // O_NOATIME is hidden behind _GNU_SOURCE; 01000000 on Linux (asm-generic/fcntl.h).
        let noATime: Int32 = 0o1000000
        var opened = SafeOpen.open(path, flags: O_RDONLY | noATime, links: .notFinal, blockDevices: false)
        if case .failure(.system(let e)) = opened, e.code == EPERM {
            opened = SafeOpen.open(path, flags: O_RDONLY, links: .notFinal, blockDevices: false)
        }
        let fd: Int32
        switch opened {
        case .success(let o): fd = o.fd
        case .failure(.refused(.symlink)): return .failure(Errno(ELOOP))
        case .failure(.refused): return .failure(Errno(EINVAL))
        case .failure(.system(let e)): return .failure(e)
        }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: limit)
        var got = 0
        while got < limit {
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + got, limit - got) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.current)
            }
            if n == 0 { break }
            got += n
        }
        return .success(Array(out[0..<got]))
    }

    /// `count` bytes at `offset` of an open file; fewer at its end. pread(2).
    package static func read(_ fd: Int32, count: Int, at offset: Int64) -> Result<[UInt8], Errno> {
        var buf = [UInt8](repeating: 0, count: count)
        return retrying { buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) } }
            .map { Array(buf[0..<$0]) }
    }
}

extension Sys {
    /// The early read (CLinux.h): a pseudo-file read whole on a thread of its own, started
    /// before main by the executable (Sources/LocksmithStart/start.c) or here. Returns 0 or
    /// an errno (EBUSY: one is under way and not taken yet; one at a time).
    package static func startEarlyRead(_ path: String) -> Int32 {
        PathBytes.withCString(path) { clinux_early_read_start($0) }
    }

    /// Whether an early read of `path` is under way or done, and not taken yet.
    package static func earlyReadRunning(_ path: String) -> Bool {
        PathBytes.withCString(path) { clinux_early_read_running($0) } != 0
    }

    /// Waits for the early read of `path` and takes it (once: later calls, and calls on other
    /// paths, get nil): its bytes (nil when nothing could be read, with the errno), and the
    /// seconds from its open to its end.
    package static func takeEarlyRead(_ path: String) -> (bytes: [UInt8]?, errno: Int32, seconds: Double)? {
        var bytes: UnsafeMutablePointer<UInt8>?, count = 0, err: Int32 = 0, seconds = 0.0
        guard PathBytes.withCString(path, { clinux_early_read_take($0, &bytes, &count, &err, &seconds) }) != 0 else { return nil }
        guard let bytes else { return (nil, err, seconds) }
        defer { free(bytes) }
        return (Array(UnsafeBufferPointer(start: bytes, count: count)), 0, seconds)
    }

    /// Of the last early read taken: the CPU its creator was on, the one its reader started
    /// on (another, when there are two), and how many CPUs the reader was then allowed.
    package static func earlyReadCPUs() -> (creator: Int32, reader: Int32, readerAllowed: Int32) {
        var c: Int32 = -1, r: Int32 = -1, n: Int32 = -1
        clinux_early_read_cpus(&c, &r, &n)
        return (c, r, n)
    }
}
