import Foundation
@testable import Provisioning
import Testing

@Suite("First-boot script and gateway names")
struct ProvisioningFirstBootTests {
    static let sha256 = String(repeating: "7f", count: 32)

    @Test(arguments: [nil, "abc", String(repeating: "g", count: 64), String(repeating: "a", count: 63)])
    func aMissingOrMalformedReleaseHashIsRefused(sha256: String?) {
        #expect {
            _ = try FirstBootScript(releaseURL: "https://r/w", releaseSHA256: sha256, joinToken: "t", publicAddress: .awsMetadata, meshPort: 1)
        } throws: { error in
            sha256 == nil ? "\(error)".contains("--release-sha256") : "\(error)".contains("64 hexadecimal digits")
        }
    }

    @Test func theHashIsKeptInLowerCase() throws {
        let script = try FirstBootScript(releaseURL: "https://r/w", releaseSHA256: String(repeating: "AB", count: 32), joinToken: "t",
                                         publicAddress: .awsMetadata, meshPort: 1)
        #expect(script.releaseSHA256 == String(repeating: "ab", count: 32))
    }

    @Test func scriptInstallsWarrenAndRunsTheGatewayUnit() throws {
        let script = try FirstBootScript(releaseURL: "https://github.com/example/warren/releases/download/v1.0.0/warren-linux-x86_64.tar.gz",
                                         releaseSHA256: Self.sha256, joinToken: "wrn1.abc-DEF_123", publicAddress: .literal("203.0.113.10"), meshPort: 7946)
        let text = script.text
        #expect(text.hasPrefix("#!/bin/bash\n"))
        #expect(text.contains("set -euo pipefail"))
        #expect(text.contains("RELEASE_URL='https://github.com/example/warren/releases/download/v1.0.0/warren-linux-x86_64.tar.gz'"))
        #expect(text.contains(#"curl -fsSL --retry 5 -o "$DOWNLOAD/release" "$RELEASE_URL""#))
        #expect(text.contains("RELEASE_SHA256='\(Self.sha256)'"))
        #expect(text.contains(#"if [ "$ACTUAL_SHA256" != "$RELEASE_SHA256" ]; then"#))
        #expect(text.contains("refusing to install the release from $RELEASE_URL: its SHA-256 is $ACTUAL_SHA256, not the expected $RELEASE_SHA256"))
        // The check comes before the install.
        let check = try #require(text.range(of: "ACTUAL_SHA256=")).lowerBound
        let install = try #require(text.range(of: #"install -m 0755 "$DOWNLOAD/warren" /usr/local/bin/warren"#)).lowerBound
        #expect(check < install)
        #expect(text.contains("apt-get install -y -q --no-install-recommends ca-certificates curl libcurl4 libsodium23 libsqlite3-0 libssl3 libxml2 libstdc++6 zlib1g"))
        #expect(text.contains("supports Debian and Ubuntu only"))
        #expect(text.contains("echo \"$RELEASE_SHA256\" > /var/lib/warren/release.sha256"))
        // The checked tarball is kept, for `--serve-release`.
        #expect(text.contains(#"install -m 0600 "$DOWNLOAD/release" /var/lib/warren/release.tar.gz"#))
        #expect(text.contains(#"PUBLIC_ADDRESS="$(echo '203.0.113.10')""#))
        #expect(text.contains("cat > /etc/systemd/system/warren-gateway.service <<UNIT"))
        #expect(text.contains("ExecStart=/usr/local/bin/warren node start --gateway --public-address ${PUBLIC_ADDRESS} --serve-release 0.0.0.0:7421 --join-file /var/lib/warren/join-token\n"))
        // The token goes to a file of mode 0600 (umask 077), never into the unit's command line.
        #expect(text.contains("(umask 077 && printf '%s\\n' 'wrn1.abc-DEF_123' > /var/lib/warren/join-token)\n"))
        #expect(text.components(separatedBy: "wrn1.abc-DEF_123").count == 2, "the token appears once, in the file's line")
        #expect(text.contains("Environment=WARREN_HOME=/var/lib/warren"))
        #expect(text.contains("Restart=on-failure"))
        #expect(text.contains("LimitNOFILE=65536\n"))
        #expect(text.contains("WantedBy=multi-user.target"))
        #expect(text.contains("systemctl enable --now warren-gateway.service"))
        #expect(script.startArguments(publicAddress: "127.0.0.2", binary: "/tmp/warren")
                == ["/tmp/warren", "node", "start", "--gateway", "--public-address", "127.0.0.2", "--serve-release", "0.0.0.0:7421", "--join-file", "/var/lib/warren/join-token"])
        #expect(script.startArguments(publicAddress: "127.0.0.2", binary: "/tmp/warren", joinFile: "/tmp/t").suffix(2) == ["--join-file", "/tmp/t"])
    }

    @Test func scriptNamesTheGatewayAndEachOfItsDomains() throws {
        let spec = GatewaySpec(name: "gw-edge", joinToken: "warren1.abc", meshPort: 7420, domains: ["api.example.com", "www.example.com"])
        let script = try FirstBootScript(releaseURL: "https://r.example/w", releaseSHA256: Self.sha256, spec: spec, publicAddress: .gcpMetadata)
        #expect(script.text.contains(
            "ExecStart=/usr/local/bin/warren node start --gateway --public-address ${PUBLIC_ADDRESS} --name gw-edge --domain api.example.com --domain www.example.com --serve-release 0.0.0.0:7421 --join-file /var/lib/warren/join-token\n"))
        #expect(script.startArguments(publicAddress: "127.0.0.2", binary: "/tmp/warren") == [
            "/tmp/warren", "node", "start", "--gateway", "--public-address", "127.0.0.2",
            "--name", "gw-edge", "--domain", "api.example.com", "--domain", "www.example.com", "--serve-release", "0.0.0.0:7421", "--join-file", "/var/lib/warren/join-token",
        ])
    }

    @Test(arguments: ["a b.example.com", "x.example.com;reboot", "$(id).example.com", "-a.example.com", "example..com", ""])
    func domainsAShellWouldInterpretAreRefused(domain: String) {
        #expect(throws: ProvisioningError.self) {
            _ = try FirstBootScript(releaseURL: "https://r/w", releaseSHA256: Self.sha256, joinToken: "t", publicAddress: .awsMetadata, meshPort: 1, domains: [domain])
        }
    }

    @Test func scriptIsValidBash() throws {
        for address in [FirstBootScript.PublicAddress.awsMetadata, .azureMetadata, .gcpMetadata, .literal("198.51.100.7")] {
            let script = try FirstBootScript(releaseURL: "https://r.example/w", releaseSHA256: Self.sha256, joinToken: "t", publicAddress: address, meshPort: 1)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("warren-firstboot-\(UUID().uuidString).sh")
            try script.text.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let bash = Process()
            bash.executableURL = URL(fileURLWithPath: "/bin/bash")
            bash.arguments = ["-n", file.path]  // parse only
            try bash.run()
            bash.waitUntilExit()
            #expect(bash.terminationStatus == 0, "bash -n rejected the script for \(address)")
        }
    }

    @Test(arguments: ["https://x/y'z", "https://x/$(reboot)", "", "ftp://x/y", "https://x/a b"])
    func shellInjectionAndBadURLsAreRefused(url: String) {
        #expect(throws: ProvisioningError.self) {
            _ = try FirstBootScript(releaseURL: url, releaseSHA256: Self.sha256, joinToken: "t", publicAddress: .awsMetadata, meshPort: 1)
        }
    }

    @Test func tokenWithShellCharactersIsRefused() {
        #expect(throws: ProvisioningError.self) {
            _ = try FirstBootScript(releaseURL: "https://r/w", releaseSHA256: Self.sha256, joinToken: "a;rm -rf /", publicAddress: .awsMetadata, meshPort: 1)
        }
    }

    @Test func generatedNamesHaveTheStyleAndAvoidTakenOnes() throws {
        var seen = Set<String>()
        for _ in 0..<200 {
            let name = GatewayName.generate()
            let parts = name.split(separator: "-")
            #expect(parts.count == 4)
            #expect(name.hasPrefix("warren-gateway-"))
            #expect(RandomName.adjectives.contains(String(parts[2])))
            #expect(RandomName.animals.contains(String(parts[3])))
            try GatewayName.validate(name)
            seen.insert(name)
        }
        #expect(seen.count > 50)  // random, not one fixed name

        let all = Set(RandomName.adjectives.flatMap { a in RandomName.animals.map { "warren-gateway-\(a)-\($0)" } })
        let last = GatewayName.generate(avoiding: all)
        #expect(!all.contains(last))
        #expect(last.hasSuffix("-2"))
    }

    @Test(arguments: ["Warren", "1abc", "a_b", "", String(repeating: "a", count: 64), "abc-"])
    func invalidNamesAreRefused(name: String) {
        #expect(throws: ProvisioningError.self) { try GatewayName.validate(name) }
    }
}

@Suite("Retries of cloud calls")
struct ProvisioningRetryingTests {
    @Test func aPassingRefusalIsRetriedAtMostTheGivenNumberOfTimesAndTheLastAnswerStands() async throws {
        let retrying = Retrying(attempts: 4, initialDelay: .milliseconds(1), maxDelay: .milliseconds(2))
        var seen: [Int] = []
        let last = try await retrying.run { attempt -> Retrying.Attempt<Int> in
            seen.append(attempt)
            return .again(attempt * 10, retryAfter: nil)
        }
        #expect(seen == [1, 2, 3, 4])
        #expect(last == 40)
        let early = try await retrying.run { attempt -> Retrying.Attempt<Int> in attempt == 2 ? .done(7) : .again(0, retryAfter: nil) }
        #expect(early == 7)
    }

    @Test func theDelayDoublesWithJitterAndTheCloudsRetryAfterIsTakenButCapped() {
        let retrying = Retrying(attempts: 8, initialDelay: .seconds(1), maxDelay: .seconds(20))
        for attempt in 1...6 {
            let full = min(Duration.seconds(1) * (1 << (attempt - 1)), .seconds(20))
            let delay = retrying.delay(after: attempt, retryAfter: nil)
            #expect(delay >= full / 2 && delay <= full, "attempt \(attempt): \(delay)")
        }
        #expect(retrying.delay(after: 1, retryAfter: .seconds(7)) == .seconds(7))
        #expect(retrying.delay(after: 1, retryAfter: .seconds(3600)) == .seconds(20))
        #expect(Retrying.retryAfter(" 12 ") == .seconds(12))
        #expect(Retrying.retryAfter("Wed, 21 Oct 2026 07:28:00 GMT") == nil)
    }
}

@Suite("Backend factory")
struct ProvisioningBackendsTests {
    @Test func makesEachCloudFromSettings() throws {
        let common = ["WARREN_RELEASE_URL": "https://r.example/w"]
        let aws = try GatewayBackends.make(kind: "aws", settings: BackendSettings(common.merging(
            ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"]) { $1 }, environment: [:]))
        #expect(aws.kind == "aws")
        let azure = try GatewayBackends.make(kind: "Azure", settings: BackendSettings(common.merging(
            ["AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s", "AZURE_SUBSCRIPTION_ID": "sub"]) { $1 }, environment: [:]))
        #expect(azure.kind == "azure")
        #expect((azure as? AzureBackend)?.configuration.location == "eastus")
        #expect {
            _ = try GatewayBackends.make(kind: "azure", settings: BackendSettings(common, environment: [:]))
        } throws: { error in
            "\(error)".contains("AZURE_TENANT_ID")
        }
        #expect {
            _ = try GatewayBackends.make(kind: "digitalocean", settings: BackendSettings([:], environment: [:]))
        } throws: { error in
            "\(error)".contains("unknown gateway backend \"digitalocean\"")
        }
    }
}
