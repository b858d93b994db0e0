import Foundation
import Testing

/// A gateway installed from a release serves it to the gateways made after it: announced in the
/// mesh (`gateway list --json` on another node shows where), fetched by hash over loopback.
@Suite(.serialized) struct ReleaseServingProcessTests {
    @Test func aGatewayServesItsReleaseByHashAndAnnouncesWhere() async throws {
        try await RunLifecycleProcessTests.withLab { lab in
            let base = "127.\(Int.random(in: 100...250)).\(Int.random(in: 1...254))"
            let (gw, rn) = (base + ".1", base + ".2")
            // The state a first boot leaves: the checked tarball and its SHA-256.
            try FileManager.default.createDirectory(atPath: lab.gatewayHome, withIntermediateDirectories: true)
            let tarball = lab.root + "/warren-test.tar.gz"
            try "a stand-in release \(UUID())\n".write(toFile: lab.root + "/warren", atomically: true, encoding: .utf8)
            #expect(try await launch(URL(fileURLWithPath: "/usr/bin/env"), ["tar", "-C", lab.root, "-czf", tarball, "warren"]).status == 0)
            let bytes = try #require(FileManager.default.contents(atPath: tarball))
            try bytes.write(to: URL(fileURLWithPath: lab.gatewayHome + "/release.tar.gz"))
            let sum = try await launch(URL(fileURLWithPath: "/usr/bin/env"), ["sha256sum", tarball])
            let sha256 = String(sum.stdout.prefix(64))
            try (sha256 + "\n").write(toFile: lab.gatewayHome + "/release.sha256", atomically: true, encoding: .utf8)

            let releasePort = try freePort(on: gw)
            let gatewayListen = "\(gw):\(try freePort(on: gw))"
            let gateway = try lab.startNode("gateway", [
                "--state-dir", lab.gatewayHome, "--listen", gatewayListen, "--gateway", "--public-address", gw, "--name", "rel-gw",
                "--serve-release", "\(gw):\(releasePort)",
            ])
            let runner = try lab.startNode("runner", ["--state-dir", lab.runnerHome, "--listen", "\(rn):\(try freePort(on: rn))", "--join", gatewayListen])
            let url = "http://\(gw):\(releasePort)/release/\(sha256)"
            let announced = try await eventually(within: 30) {
                try await lab.warren(["gateway", "list", "--json"]).stdout.contains(url)
            }
            let listed = try await lab.warren(["gateway", "list", "--json"]).stdout
            try #require(announced, "the runner never saw where rel-gw serves its release:\n\(listed)\n\(gateway.log)\n\(runner.log)")
            #expect(listed.contains("\"releaseSHA256\" : \"\(sha256)\"") || listed.contains("\"releaseSHA256\":\"\(sha256)\""), "\(listed)")

            // Fetched by hash: the same bytes; another hash is not found.
            let copy = lab.root + "/fetched.tar.gz"
            let fetched = try await launch(URL(fileURLWithPath: "/usr/bin/env"), ["curl", "-sS", "--fail", "--max-time", "10", "-o", copy, url])
            #expect(fetched.status == 0, "\(fetched.stderr)")
            #expect(FileManager.default.contents(atPath: copy) == bytes)
            let wrong = try await launch(URL(fileURLWithPath: "/usr/bin/env"), [
                "curl", "-sS", "--fail", "--max-time", "10", "-o", "/dev/null", "http://\(gw):\(releasePort)/release/\(String(repeating: "0", count: 64))",
            ])
            #expect(wrong.status == 22, "a release of another hash was served: \(wrong.stderr)")
        }
    }
}
