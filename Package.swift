// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "locksmith",
    products: [
        .library(name: "ImageLock", targets: ["ImageLock"]),
        .library(name: "LockInspector", targets: ["LockInspector"]),
        .library(name: "LocksmithTUI", targets: ["LocksmithTUI"]),
        .executable(name: "locksmith", targets: ["locksmith"]),
    ],
    // "Gluster": the gluster scheme through libgfapi. Build without it (no libgfapi on the
    // host) with `swift build --disable-default-traits`; gluster:// images then fail clearly.
    traits: [
        .default(enabledTraits: ["Gluster"]),
        .trait(name: "Gluster", description: "Lock and inspect images on GlusterFS volumes through libgfapi."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // _GNU_SOURCE fcntl (F_OFD_*), statfs magic numbers.
        .target(name: "CLinux"),
        // System libcrypto (SHA-1, SHA-256; openssl/sha.h from libssl-dev), the library loaded
        // on first use (CCrypto.h).
        .target(name: "CCrypto"),
        // System libgfapi: glfs.h's prototypes, the library loaded on first use (CGlusterAPI.h).
        .target(name: "CGlusterAPI"),
        // The locking core shared with other tools: schemes, lock paths, acquire/test/release.
        .target(
            name: "ImageLock",
            dependencies: [
                "CLinux",
                "CCrypto",
                .target(name: "CGlusterAPI", condition: .when(traits: ["Gluster"])),
            ]
        ),
        // Discovery and analysis: /proc, lock dirs, image mapping, holders, the snapshot model.
        .target(name: "LockInspector", dependencies: ["ImageLock"]),
        // System ncursesw (headers from libncursesw5-dev), the library loaded on first use
        // (CCurses.h).
        .target(name: "CCurses"),
        // The TUI: state, keys, layout and rendering into a screen buffer; the curses edge.
        .target(name: "LocksmithTUI", dependencies: ["CCurses", "ImageLock", "LockInspector"]),
        // The executable's start, before main: `list` and `audit` start reading the kernel's
        // lock table (start.c).
        .target(name: "LocksmithStart", dependencies: ["CLinux"]),
        .executableTarget(
            name: "locksmith",
            dependencies: [
                "LocksmithStart",
                "ImageLock",
                "LockInspector",
                "LocksmithTUI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Helpers shared by the test targets: temp dirs, real lock-holding processes, the binary.
        .target(name: "_TestSupport", dependencies: ["ImageLock"], path: "Tests/_TestSupport"),
        .testTarget(name: "ImageLockTests", dependencies: ["ImageLock", "_TestSupport"]),
        .testTarget(name: "LockInspectorTests", dependencies: ["LockInspector", "_TestSupport"]),
        .testTarget(name: "LocksmithStartTests", dependencies: ["LocksmithStart"]),
        .testTarget(name: "LocksmithTUITests", dependencies: ["LocksmithTUI", "LockInspector", "ImageLock", "_TestSupport"]),
        // Golden/: the pinned outputs GoldenOutputTests reads from the source tree.
        .testTarget(name: "locksmithTests", dependencies: ["ImageLock", "_TestSupport"], exclude: ["Golden"]),
    ]
)
