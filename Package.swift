// swift-tools-version:6.1
// Warren: a peer-to-peer mesh that puts applications on the public internet through gateways.
// The layout is the design card's (see DESIGN.md in the shared folder): MeshNode, Gossip, Proxy,
// CLI, with Link, Trust and Provisioning beside them (ARCHITECTURE.md draws the graph), plus
// system-library targets for libsodium, libcurl and libcrypto and their thin wrappers.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Dependency lists many targets repeat.
let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let nioHTTP2: Target.Dependency = .product(name: "NIOHTTP2", package: "swift-nio-http2")
let nioLocks: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let nioEmbedded: Target.Dependency = .product(name: "NIOEmbedded", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

/// The commit `warren --version` names: `$WARREN_COMMIT`, which the Makefile and scripts/release.sh
/// set from `git rev-parse --short HEAD`; "unknown" without it (a build outside git, or a bare
/// `swift build`). Not `Context.gitInformation`: SwiftPM caches the evaluated manifest, and after a
/// new commit it still answers the old one. Only hex digits pass into the C define.
let commit: String = {
    let given = Context.environment["WARREN_COMMIT"] ?? ""
    return !given.isEmpty && given.allSatisfy(\.isHexDigit) ? given : "unknown"
}()

let package = Package(
    name: "warren",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "warren", targets: ["CLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C libraries, found through pkg-config. Only the wrappers below import them.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // libcrypto's keys, PKCS#10 requests and certificate reading, for the ACME client.
        .systemLibrary(name: "CX509", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Thin Swift wrappers: Swift types, Swift errors, zeroing of secret memory.
        .target(name: "Sodium", dependencies: ["CSodium"], swiftSettings: strict),
        .target(name: "Curl", dependencies: ["CCurl"], swiftSettings: strict),
        .target(name: "LibCrypto", dependencies: ["CCrypto"], swiftSettings: strict),
        // The commit this binary was built from, defined at build time (see `commit` above).
        .target(name: "CBuildInfo", cSettings: [.define("WARREN_COMMIT", to: "\"\(commit)\"")]),

        // Pure state machines: membership, dissemination, the replicated map. No sockets.
        .target(
            name: "Gossip",
            dependencies: [logging],
            swiftSettings: strict
        ),
        // An ACME (RFC 8555) client: account, order, HTTP-01, finalize with a CSR, download.
        .target(
            name: "Acme",
            dependencies: ["Curl", "CX509", logging],
            swiftSettings: strict
        ),
        // The data plane: ingress listeners, routing table, HTTP/1.1 and SNI routing, splicing,
        // TLS termination (HTTP/1.1 and HTTP/2 towards clients).
        .target(
            name: "Proxy",
            dependencies: nio + [
                nioHTTP1, nioHTTP2, nioLocks, logging,
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Node-to-node links: identity, Noise handshakes, sealed records over TCP, HTTP/2 streams,
        // one-call RPC framing, and the sealing of gossip datagrams. Knows nothing of runs or leases.
        .target(
            name: "Link",
            dependencies: ["Gossip", "Sodium", "LibCrypto", nioLocks, nioHTTP2, logging] + nio,
            swiftSettings: strict
        ),
        // The mesh's trust rules as pure values: roster, invites, removals, projects, sealed
        // secrets, and the gate every replicated entry passes. No sockets, no NIO.
        .target(
            name: "Trust",
            dependencies: ["Gossip", "Sodium"],
            swiftSettings: strict
        ),
        // The cloud backends that make gateways (AWS, Azure, GCP over libcurl), their request
        // signing, first-boot script and polling; knows nothing of the mesh's state or API.
        .target(
            name: "Provisioning",
            dependencies: ["Curl", "LibCrypto", "Sodium"],
            swiftSettings: strict
        ),
        // The composition root: wiring, node state over gossip, runs, leases, configuration, store,
        // the local API (the one place where errors become HTTP statuses).
        .target(
            name: "MeshNode",
            dependencies: nio + [
                "Gossip", "Link", "Trust", "Provisioning", "Proxy", "Sodium", "LibCrypto", "Curl", "Acme", "CBuildInfo",
                nioHTTP1, nioHTTP2, logging,
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "CLI",
            dependencies: nio + [
                "MeshNode", "Link", "Trust", "Provisioning", "Curl", "Sodium",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                logging,
            ],
            swiftSettings: strict
        ),

        // Warren's Proxy alone (gateway and runner over a loopback tunnel) for bench/tunnel.
        .executableTarget(
            name: "proxy-bench",
            dependencies: ["Proxy", "ProxyTestSupport", nioLocks, logging] + nio,
            path: "bench/proxy-bench",
            swiftSettings: strict
        ),
        // Bench and test plumbing kept out of `warren`: bulk streams through one link between two
        // processes (`warren-bench link-serve` / `link-send`), for bench/link and LinkProcessTests.
        .executableTarget(
            name: "warren-bench",
            dependencies: ["Link", "Gossip", "Sodium", .product(name: "ArgumentParser", package: "swift-argument-parser")] + nio,
            path: "bench/warren-bench",
            swiftSettings: strict
        ),
        // Gossip simulator figures for BENCHMARKS.md: `swift build -c release --product gossip-sim`.
        .executableTarget(name: "gossip-sim", dependencies: ["Gossip"], path: "bench/gossip-sim", swiftSettings: strict),

        // Local fakes of the cloud APIs (Resource Manager, Compute Engine), for ProvisioningTests,
        // MeshNodeTests and CLITests; a library only the tests use.
        .target(
            name: "CloudFakes",
            dependencies: ["MeshNode", "Provisioning", nioHTTP1] + nio,
            path: "Tests/CloudFakes",
            swiftSettings: strict
        ),
        // Test nodes and a stand-in replica for the trust rules, shared by TrustTests and MeshNodeTests.
        .target(
            name: "TrustTestSupport",
            dependencies: ["Trust", "Gossip", "Sodium"],
            path: "Tests/TrustTestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "SodiumTests", dependencies: ["Sodium"], swiftSettings: strict),
        .testTarget(name: "CurlTests", dependencies: ["Curl"], swiftSettings: strict),
        .testTarget(name: "LibCryptoTests", dependencies: ["LibCrypto", "Sodium"], swiftSettings: strict),
        .testTarget(name: "GossipTests", dependencies: ["Gossip"], swiftSettings: strict),
        // The Proxy's stand-in for links (one loopback TCP connection per stream), for ProxyTests,
        // AcmeTests and proxy-bench.
        .target(name: "ProxyTestSupport", dependencies: ["Proxy"] + nio, path: "Tests/ProxyTestSupport", swiftSettings: strict),
        .testTarget(
            name: "ProxyTests",
            dependencies: nio + [
                "Proxy", "ProxyTestSupport", "Sodium", nioHTTP1, nioLocks, nioEmbedded,
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Two endpoints on loopback and the helpers around them, for LinkTests and MeshNodeTests.
        .target(
            name: "LinkTestSupport",
            dependencies: ["Link", "Gossip", nioLocks] + nio,
            path: "Tests/LinkTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "LinkTests",
            dependencies: ["Link", "LinkTestSupport", "Gossip", "Sodium", "LibCrypto", nioLocks, nioHTTP2, logging, nioEmbedded] + nio,
            swiftSettings: strict
        ),
        .testTarget(name: "ProvisioningTests", dependencies: ["Provisioning", "CloudFakes", "Curl", "LibCrypto", "Sodium"], swiftSettings: strict),
        .testTarget(name: "TrustTests", dependencies: ["Trust", "TrustTestSupport", "Gossip", "Sodium"], swiftSettings: strict),
        .testTarget(
            name: "MeshNodeTests",
            dependencies: nio + [
                "MeshNode", "Link", "LinkTestSupport", "Trust", "TrustTestSupport", "Provisioning", "Sodium", "LibCrypto", "Curl", "CloudFakes",
                nioHTTP1, logging, nioEmbedded,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // A real pebble (and its DNS) started per test, for AcmeTests and CLITests.
        .target(name: "AcmeTestSupport", dependencies: ["Curl"], path: "Tests/AcmeTestSupport", swiftSettings: strict),
        .testTarget(
            name: "AcmeTests",
            dependencies: nio + [
                "Acme", "AcmeTestSupport", "Proxy", "ProxyTestSupport", "Curl", "MeshNode", "Trust", "Gossip", "Sodium", nioHTTP1, nioLocks, logging,
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "CLITests", dependencies: ["CLI", "Link", "Trust", "Provisioning", "CloudFakes", "AcmeTestSupport"], swiftSettings: strict),
    ]
)

// Fuzzing (see Fuzz/README.md). The parsers' fuzz checks are a normal library, so `make test` feeds
// every saved input (seed corpus and past crashes) through them. The libFuzzer driver needs
// sanitizer flags and libFuzzer's `main`, so it is only part of the package when WARREN_FUZZ is set
// (scripts/fuzz.sh builds it in .build-fuzz).
package.targets += [
    .target(
        name: "FuzzTargets",
        dependencies: [
            "MeshNode", "Link", "Trust", "Gossip", "Proxy", "Sodium", "LibCrypto", nioHTTP1, nioEmbedded,
            .product(name: "NIOCore", package: "swift-nio"),
        ],
        path: "Fuzz/Targets",
        swiftSettings: strict
    ),
    .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzTargets"], swiftSettings: strict),
]
if Context.environment["WARREN_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "warren-fuzz", dependencies: ["FuzzTargets"], path: "Fuzz/Driver",
        swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]
    ))
    package.products.append(.executable(name: "warren-fuzz", targets: ["warren-fuzz"]))
}
