// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "locksmith",
    products: [
        .library(name: "ImageLock", targets: ["ImageLock"]),
        .library(name: "LockInspector", targets: ["LockInspector"]),
        .executable(name: "locksmith", targets: ["locksmith"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // _GNU_SOURCE fcntl (F_OFD_*), statfs magic numbers.
        .target(name: "CLinux"),
        // System libcrypto (SHA-1, SHA-256) through a module map.
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        // The locking core shared with other tools: schemes, lock paths, acquire/test/release.
        .target(name: "ImageLock", dependencies: ["CLinux", "CCrypto"]),
        // Discovery and analysis: /proc, lock dirs, image mapping, holders, the snapshot model.
        .target(name: "LockInspector", dependencies: ["ImageLock", "CLinux"]),
        .executableTarget(
            name: "locksmith",
            dependencies: [
                "ImageLock",
                "LockInspector",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Helpers shared by the test targets: temp dirs, real lock-holding processes, the binary.
        .target(name: "_TestSupport", dependencies: ["ImageLock"], path: "Tests/_TestSupport"),
        .testTarget(name: "ImageLockTests", dependencies: ["ImageLock", "_TestSupport"]),
        .testTarget(name: "LockInspectorTests", dependencies: ["LockInspector", "_TestSupport"]),
        .testTarget(name: "locksmithTests", dependencies: ["ImageLock", "_TestSupport"]),
    ]
)
