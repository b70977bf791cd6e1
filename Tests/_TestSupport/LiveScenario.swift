import Foundation
import ImageLock
import XCTest

/// A host with real lock holders of every local kind, in a temp dir:
/// - `writer`: `qemu-nbd` serving `writable` read-write (QEMU byte locks, a writer);
/// - `readers`: two `qemu-io -r` of `base` (identical OFD read locks: two holders);
/// - `holder`: `locksmith hold` of `held` (a lock file with the realpath inside);
/// - `python`: an empty lock file of `pyImage`, POSIX-locked (fcntl.lockf) by a python
///   process that also has the image open (the lock file is mapped by hashing open files).
/// Everything is stopped when the value is released or `stop()` is called.
public final class LiveScenario: @unchecked Sendable {
    public let dir: TempDir
    public let lockDir: String
    public let writable: String
    public let base: String
    public let held: String
    public let pyImage: String
    public let pyLockFile: String
    public let heldLockFile: String
    public private(set) var writer: Background!
    public private(set) var readers: [Background] = []
    public private(set) var holder: Background!
    public private(set) var python: Background!

    public var processes: [Background] { [writer, holder, python].compactMap { $0 } + readers }

    public init(in dir: TempDir = TempDir("live"), file: StaticString = #filePath, line: UInt = #line) throws {
        self.dir = dir
        lockDir = dir.file("locks")
        try FileManager.default.createDirectory(atPath: lockDir, withIntermediateDirectories: false)
        writable = try Qemu.createImage(dir.file("vm1.qcow2"))
        base = try Qemu.createImage(dir.file("base.qcow2"))
        held = dir.makeFile("held.img")
        pyImage = dir.makeFile("py.img")
        pyLockFile = lockDir + "/" + ImageLocker.lockFileName(realPath: pyImage)
        heldLockFile = lockDir + "/" + ImageLocker.lockFileName(realPath: held)
        do {
            writer = try Background(try Run.tool("qemu-nbd"),
                                    ["--persistent", "-k", dir.file("nbd.sock"), "-f", "qcow2", writable])
            for _ in 0..<2 {
                readers.append(try Background(try Run.tool("qemu-io"),
                                              ["-r", "-f", "qcow2", "-c", "sleep 60000", base]))
            }
            holder = try Background(Run.locksmith, ["hold", "--lock-dir", lockDir, held, "--", "sleep", "60"])
            let script = """
                import fcntl, sys, time
                image = open(sys.argv[1], "rb")
                lock = open(sys.argv[2], "w")
                fcntl.lockf(lock, fcntl.LOCK_EX)
                time.sleep(60)
                """
            python = try Background(try Run.tool("python3"), ["-c", script, pyImage, pyLockFile])
            writer.waitForLocks(on: writable, count: 4, file: file, line: line)
            readers[0].waitForLocks(on: base, count: 6, file: file, line: line)
            holder.waitForLocks(on: heldLockFile, file: file, line: line)
            python.waitForLocks(on: pyLockFile, file: file, line: line)
        } catch {
            stop()
            throw error
        }
    }

    public func stop() {
        for p in processes { p.stop() }
    }

    deinit { stop() }
}
