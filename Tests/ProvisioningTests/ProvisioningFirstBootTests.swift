import Foundation
@testable import Provisioning
import Testing

@Suite("First-boot script and gateway names")
struct ProvisioningFirstBootTests {
    @Test func scriptInstallsWarrenAndRunsTheGatewayUnit() throws {
        let script = try FirstBootScript(releaseURL: "https://github.com/example/warren/releases/download/v1.0.0/warren-linux-x86_64.tar.gz",
                                         joinToken: "wrn1.abc-DEF_123", publicAddress: .literal("203.0.113.10"), meshPort: 7946)
        let text = script.text
        #expect(text.hasPrefix("#!/bin/bash\n"))
        #expect(text.contains("set -euo pipefail"))
        #expect(text.contains("RELEASE_URL='https://github.com/example/warren/releases/download/v1.0.0/warren-linux-x86_64.tar.gz'"))
        #expect(text.contains(#"curl -fsSL --retry 5 -o /tmp/warren-release "$RELEASE_URL""#))
        #expect(text.contains("install -m 0755 /tmp/warren /usr/local/bin/warren"))
        #expect(text.contains(#"PUBLIC_ADDRESS="$(echo '203.0.113.10')""#))
        #expect(text.contains("cat > /etc/systemd/system/warren-gateway.service <<UNIT"))
        #expect(text.contains("ExecStart=/usr/local/bin/warren node start --gateway --public-address ${PUBLIC_ADDRESS} --join wrn1.abc-DEF_123\n"))
        #expect(text.contains("Environment=WARREN_HOME=/var/lib/warren"))
        #expect(text.contains("Restart=on-failure"))
        #expect(text.contains("LimitNOFILE=65536\n"))
        #expect(text.contains("WantedBy=multi-user.target"))
        #expect(text.contains("systemctl enable --now warren-gateway.service"))
        #expect(script.startArguments(publicAddress: "127.0.0.2", binary: "/tmp/warren")
                == ["/tmp/warren", "node", "start", "--gateway", "--public-address", "127.0.0.2", "--join", "wrn1.abc-DEF_123"])
    }

    @Test func scriptNamesTheGatewayAndEachOfItsDomains() throws {
        let spec = GatewaySpec(name: "gw-edge", joinToken: "warren1.abc", meshPort: 7420, domains: ["api.example.com", "www.example.com"])
        let script = try FirstBootScript(releaseURL: "https://r.example/w", spec: spec, publicAddress: .gcpMetadata)
        #expect(script.text.contains(
            "ExecStart=/usr/local/bin/warren node start --gateway --public-address ${PUBLIC_ADDRESS} --name gw-edge --domain api.example.com --domain www.example.com --join warren1.abc\n"))
        #expect(script.startArguments(publicAddress: "127.0.0.2", binary: "/tmp/warren") == [
            "/tmp/warren", "node", "start", "--gateway", "--public-address", "127.0.0.2",
            "--name", "gw-edge", "--domain", "api.example.com", "--domain", "www.example.com", "--join", "warren1.abc",
        ])
    }

    @Test(arguments: ["a b.example.com", "x.example.com;reboot", "$(id).example.com", "-a.example.com", "example..com", ""])
    func domainsAShellWouldInterpretAreRefused(domain: String) {
        #expect(throws: ProvisioningError.self) {
            _ = try FirstBootScript(releaseURL: "https://r/w", joinToken: "t", publicAddress: .awsMetadata, meshPort: 1, domains: [domain])
        }
    }

    @Test func scriptIsValidBash() throws {
        for address in [FirstBootScript.PublicAddress.awsMetadata, .azureMetadata, .gcpMetadata, .literal("198.51.100.7")] {
            let script = try FirstBootScript(releaseURL: "https://r.example/w", joinToken: "t", publicAddress: address, meshPort: 1)
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
            _ = try FirstBootScript(releaseURL: url, joinToken: "t", publicAddress: .awsMetadata, meshPort: 1)
        }
    }

    @Test func tokenWithShellCharactersIsRefused() {
        #expect(throws: ProvisioningError.self) {
            _ = try FirstBootScript(releaseURL: "https://r/w", joinToken: "a;rm -rf /", publicAddress: .awsMetadata, meshPort: 1)
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
