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

    /// Dispatch's threads that take chunks are kept off the caller's CPU (here the caller is
    /// pinned to its first CPU): every chunk another thread runs, it runs elsewhere, with the
    /// caller's CPU not allowed. Needs two CPUs.
    func testOtherThreadsRunTheirChunksOffTheCallersCPU() throws {
        guard let first = allowedCPUs().min(), allowedCPUs().count >= 2 else {
            throw XCTSkip("one CPU: no other to keep off")
        }
        struct Chunk: Sendable { var caller: Bool; var cpu: Int32; var allowed: Set<Int32> }
        let caller = pthread_self()
        let chunks = Sys.onCPU(first) {
            Parallel.chunks(64, chunk: 1) { _ -> [Chunk] in
                // Work long enough (~2 ms each) for the other threads to take chunks too.
                let end = Sys.monotonicSeconds() + 0.002
                while Sys.monotonicSeconds() < end {}
                return [Chunk(caller: pthread_equal(pthread_self(), caller) != 0, cpu: Sys.currentCPU(),
                              allowed: allowedCPUs())]
            }
        }
        let others = chunks.filter { !$0.caller }
        XCTAssertFalse(others.isEmpty, "no other thread took a chunk")
        for c in chunks where c.caller { XCTAssertEqual(c.cpu, first) }
        for c in others {
            XCTAssertNotEqual(c.cpu, first)
            XCTAssertFalse(c.allowed.contains(first), "\(c.allowed)")
        }
    }
}
