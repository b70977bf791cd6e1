@testable import LockInspector
import ImageLock
import XCTest

/// How the scan puts its images in order without copying them, and merges the entries of
/// one image (lock files in two dirs, or also QEMU's locks) once they are neighbours.
final class AssemblyTests: XCTestCase {
    func testPermuteMovesEveryElementToItsPlace() {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 2, 7, 1000] {
            let values = (0..<n).map { "value \($0)" }
            for _ in 0..<5 {
                let order = Array(0..<n).shuffled(using: &rng)
                var permuted = values
                permuted.permute(to: order)
                XCTAssertEqual(permuted, order.map { values[$0] })
            }
        }
    }

    func testTwoOrdersMergeIntoTheOrderOfAll() {
        func key(_ s: String) -> Scan.ImageOrderKey {
            s.hasPrefix("/") ? .init(known: true, key: s) : .init(known: false, key: s)
        }
        let first = ["/b", "x-lock", "/a", "/c", "/a"].map(key)
        let rest = ["/a", "/bb", "w-lock", "/0"].map(key)
        let merged = Scan.mergeOrders(Scan.imageOrder(first), first, Scan.imageOrder(rest).map { $0 + first.count }, rest,
                                      offset: first.count)
        let all = first + rest
        XCTAssertEqual(merged, Scan.imageOrder(all))
        XCTAssertEqual(merged.map { all[$0].key }, ["/0", "/a", "/a", "/a", "/b", "/bb", "/c", "w-lock", "x-lock"])
        // Equal keys keep the order they were seen in: the lock files' entries first.
        XCTAssertEqual(merged[1...3], [2, 4, 5])
    }

    func testAppendingSharesAnArrayIntoAnEmptyOne() {
        var a: [Int] = []
        a.append(shared: [1, 2])
        a.append(shared: [])
        a.append(shared: [3])
        XCTAssertEqual(a, [1, 2, 3])
    }

    func testNeighboursWithOneIdBecomeOneImage() {
        let row = KernelLock(id: 3, kind: .ofd, mode: "ADVISORY", type: "READ", pid: nil, device: nil,
                             inode: 9, start: 100, end: 100)
        var images = [
            ImageLocks(id: "/a", path: "/a", schemes: [.lockfile], lockFiles: ["/d1/.qemu-a.lock"]),
            ImageLocks(id: "/a", path: "/a", schemes: [.lockfile], lockFiles: ["/d2/.qemu-a.lock"]),
            ImageLocks(id: "/a", path: "/a", device: DeviceID(major: 254, minor: 1), inode: 9, schemes: [.qemu],
                       holders: [Holder(pid: 5, command: "qemu-io", scheme: .qemu)], locks: [row]),
            ImageLocks(id: "/b", path: "/b", schemes: [.lockfile], lockFiles: ["/d1/.qemu-b.lock"]),
            ImageLocks(id: "/c", path: nil, schemes: []),
            ImageLocks(id: "/c", path: nil, schemes: [.virtlockd], lockFiles: ["/l/c"]),
        ]
        Scan.mergeNeighbours(&images)
        XCTAssertEqual(images.map(\.id), ["/a", "/b", "/c"])
        XCTAssertEqual(images[0].lockFiles, ["/d1/.qemu-a.lock", "/d2/.qemu-a.lock"])
        XCTAssertEqual(images[0].schemes, [.lockfile, .qemu])
        XCTAssertEqual(images[0].inode, 9)
        XCTAssertEqual(images[0].holders.map(\.pid), [5])
        XCTAssertEqual(images[0].locks, [row])
        XCTAssertEqual(images[1].lockFiles, ["/d1/.qemu-b.lock"])
        XCTAssertEqual(images[2].schemes, [.virtlockd])
        XCTAssertEqual(images[2].lockFiles, ["/l/c"])
    }
}
