@testable import LockInspector
import Foundation
import ImageLock
import _TestSupport
import XCTest

/// Work spread over the cores (Sources/LockInspector/Parallel.swift).
final class ParallelTests: XCTestCase {
    /// The chunks' results come back in item order, each item once, however the threads
    /// took the chunks.
    func testChunksReturnEveryResultInItemOrder() {
        for (count, chunk) in [(0, 4), (1, 4), (4, 4), (5, 4), (10_000, 7), (1000, 1)] {
            let out = Parallel.chunks(count, chunk: chunk) { r in r.map { $0 * 3 } }
            XCTAssertEqual(out, (0..<count).map { $0 * 3 }, "\(count) in chunks of \(chunk)")
        }
    }

    /// `isDone` says whether `wait()` would block, and asking does not take the result.
    func testThreadWorkSaysWhetherItIsDone() {
        let go = DispatchSemaphore(value: 0)
        let work = ThreadWork { go.wait(); return 42 }
        XCTAssertFalse(work.isDone)
        go.signal()
        let deadline = Date().addingTimeInterval(5)
        while !work.isDone && Date() < deadline { usleep(1_000) }
        XCTAssertTrue(work.isDone)
        XCTAssertEqual(work.wait(), 42)
    }

    /// Dispatch's threads that take chunks are kept off the caller's CPU: every chunk another
    /// thread runs, it runs with exactly one CPU not allowed, one the caller was on, and not on
    /// it. (The caller is not pinned: a Dispatch thread started while it was would inherit the
    /// pin.) Needs two CPUs.
    func testOtherThreadsRunTheirChunksOffTheCallersCPU() throws {
        let all = allowedCPUs()
        guard all.count >= 2 else { throw XCTSkip("one CPU: no other to keep off") }
        struct Chunk: Sendable { var caller: Bool; var cpu: Int32; var allowed: Set<Int32> }
        let caller = pthread_self()
        let start = Sys.currentCPU()
        let chunks = Parallel.chunks(64, chunk: 1) { _ -> [Chunk] in
            // Work long enough (~2 ms each) for the other threads to take chunks too.
            let end = Sys.monotonicSeconds() + 0.002
            while Sys.monotonicSeconds() < end {}
            return [Chunk(caller: pthread_equal(pthread_self(), caller) != 0, cpu: Sys.currentCPU(),
                          allowed: allowedCPUs())]
        }
        let callerCPUs = Set(chunks.filter(\.caller).map(\.cpu)).union([start])
        let others = chunks.filter { !$0.caller }
        XCTAssertFalse(others.isEmpty, "no other thread took a chunk")
        for c in others {
            let off = all.subtracting(c.allowed)
            XCTAssertEqual(off.count, 1, "allowed \(c.allowed) of \(all)")
            if let k = off.first {
                XCTAssertTrue(callerCPUs.contains(k), "kept off \(k); the caller was on \(callerCPUs)")
                XCTAssertNotEqual(c.cpu, k)
            }
        }
    }
}
