// swift-tools-version:6.0
// Switchyard: supervised AI-agent runs from a durable task queue.
// No Swift package dependencies: Foundation, Dispatch, XCTest, and two system C libraries.
import PackageDescription

let releaseOptimization: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "Switchyard",
    products: [
        .executable(name: "switchyard-gate", targets: ["switchyard-gate"]),
        .executable(name: "switchyard-scheduler", targets: ["switchyard-scheduler"]),
        .executable(name: "switchyard-poller", targets: ["switchyard-poller"]),
        .executable(name: "switchyard-supervisor", targets: ["switchyard-supervisor"]),
        .executable(name: "switchyard-demo-agent", targets: ["switchyard-demo-agent"]),
    ],
    targets: [
        // Thin C fences: one per C library, plus a header-only shim for Linux calls Glibc hides.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CSystemd", path: "Sources/CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),

        // Cross-module optimization: the daemons' hot paths call Shared's generic store functions
        // (query, write, apply); without it they run unspecialized across the module boundary
        // (measured: about 12 % of the poller's time under the write lock).
        .target(name: "Shared", dependencies: ["CSQLite", "CSystemd", "CLinux"], path: "Sources/Shared",
                swiftSettings: releaseOptimization),

        .executableTarget(name: "switchyard-gate", dependencies: ["Shared"], path: "Sources/gate",
                          swiftSettings: releaseOptimization),
        .executableTarget(name: "switchyard-scheduler", dependencies: ["Shared"], path: "Sources/scheduler",
                          swiftSettings: releaseOptimization),
        .executableTarget(name: "switchyard-poller", dependencies: ["Shared"], path: "Sources/poller",
                          swiftSettings: releaseOptimization),
        .executableTarget(name: "switchyard-supervisor", dependencies: ["Shared"], path: "Sources/supervisor",
                          swiftSettings: releaseOptimization),
        // The embedded default's agent and the tests' workhorse: Switchyard JSONL, rpc and oneshot.
        .executableTarget(name: "switchyard-demo-agent", dependencies: ["Shared"], path: "Sources/demo-agent"),
        // Benchmarks: `swift run -c release switchyard-bench` prints figures for every target.
        .executableTarget(name: "switchyard-bench", dependencies: ["Shared"], path: "bench", exclude: ["run"]),
        // The chaos harness: the whole stack under SIGKILL and SIGSTOP, then an audit of the event log.
        .executableTarget(name: "switchyard-chaos", dependencies: ["Shared"], path: "chaos"),
        // Helper processes for the integration tests (concurrent writers, notify probes). Not installed.
        .executableTarget(name: "switchyard-testkit", dependencies: ["Shared"], path: "Sources/testkit"),

        .testTarget(name: "SwitchyardTests", dependencies: ["Shared"], path: "Tests/SwitchyardTests"),
    ],
    swiftLanguageModes: [.v6]
)
