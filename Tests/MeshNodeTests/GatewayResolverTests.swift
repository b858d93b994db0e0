@testable import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

@Suite struct GatewayResolverTests {
    let gateways = [
        KnownGateway(name: "warren-gateway-fast-walrus", address: "127.0.0.2"),
        KnownGateway(name: "edge", address: "127.0.0.3", domains: ["declared.example.com"]),
    ]
    let hosts: GatewayResolver.Lookup = { host in
        ["api.example.com": ["127.0.0.2"], "www.example.com": ["127.0.0.2"], "elsewhere.example.com": ["192.0.2.1"]][host] ?? []
    }

    @Test func byAddressOrNameHoldsTheWholePort() throws {
        let r = GatewayResolver(gateways: gateways, lookup: hosts)
        #expect(try r.binding(gateway: "127.0.0.2", domain: nil, port: 5001) == Binding(address: "127.0.0.2", port: 5001))
        #expect(try r.binding(gateway: "edge", domain: nil, port: 80) == Binding(address: "127.0.0.3", port: 80))
    }

    @Test func byDomainIsHostRouted() throws {
        let r = GatewayResolver(gateways: gateways, lookup: hosts)
        let b = try r.binding(gateway: "API.example.com.", domain: nil, port: 80)
        #expect(b == Binding(address: "127.0.0.2", port: 80, host: "api.example.com"))
        #expect(!b.isExclusive)
        #expect(try r.binding(gateway: "declared.example.com", domain: nil, port: 80).host == "declared.example.com")
        #expect(try r.binding(gateway: "127.0.0.2", domain: "www.example.com", port: 80).host == "www.example.com")
    }

    @Test func unknownGatewaysAreExplained() {
        let r = GatewayResolver(gateways: gateways, lookup: hosts)
        #expect(throws: GatewayResolver.Failure.self) { try r.binding(gateway: "elsewhere.example.com", domain: nil, port: 80) }
        do {
            _ = try r.binding(gateway: "nope.invalid", domain: nil, port: 80)
        } catch {
            #expect(error.description.contains("it does not resolve as resolved on the node running the service, in "))
            #expect(error.description.contains("warren-gateway-fast-walrus (127.0.0.2)"))
        }
    }

    @Test func noGatewayNamedPicksTheOnlyOne() throws {
        #expect(try GatewayResolver(gateways: [gateways[0]], lookup: hosts).binding(gateway: nil, domain: nil, port: 80).address == "127.0.0.2")
        #expect(throws: GatewayResolver.Failure.self) { try GatewayResolver(gateways: gateways, lookup: hosts).binding(gateway: nil, domain: nil, port: 80) }
        #expect(throws: GatewayResolver.Failure.self) { try GatewayResolver(gateways: [], lookup: hosts).binding(gateway: nil, domain: nil, port: 80) }
    }

    @Test func aRunWithoutADomainIsNamedUnderItsGatewaysDomainOnItsHTTPPort() throws {
        let apps = KnownGateway(name: "apps-gw", address: "127.0.0.4", domains: ["Apps.Example.com", "other.example.com"], httpPort: 8080)
        let r = GatewayResolver(gateways: [apps], lookup: hosts)
        // The only gateway, or named by name or address: <run-name>.<first domain>, host-routed.
        for gateway in [nil, "apps-gw", "127.0.0.4"] {
            #expect(try r.bindings(gateway: gateway, domain: nil, port: 8080, runName: "shop")
                    == [Binding(address: "127.0.0.4", port: 8080, host: "shop.apps.example.com")])
        }
        // Two runs share the port by name.
        let other = try r.bindings(gateway: "apps-gw", domain: nil, port: 8080, runName: "Blog_2")
        #expect(other == [Binding(address: "127.0.0.4", port: 8080, host: "blog-2.apps.example.com")])
        #expect(!other[0].conflicts(with: Binding(address: "127.0.0.4", port: 8080, host: "shop.apps.example.com")))
        // An explicit name wins: `domain:`, or `gateway:` naming a domain.
        #expect(try r.bindings(gateway: nil, domain: "shop.example.org", port: 8080, runName: "shop")[0].host == "shop.example.org")
        #expect(try r.bindings(gateway: "other.example.com", domain: nil, port: 8080, runName: "shop")[0].host == "other.example.com")
        // Another port may carry any protocol: the whole port, as before.
        #expect(try r.bindings(gateway: nil, domain: nil, port: 5432, runName: "db") == [Binding(address: "127.0.0.4", port: 5432)])
        // A gateway without a domain: the whole port.
        #expect(try GatewayResolver(gateways: [gateways[0]], lookup: hosts).bindings(gateway: nil, domain: nil, port: 80, runName: "shop")
                == [Binding(address: "127.0.0.2", port: 80)])
    }

    @Test func theURLIsHTTPSWhereTheGatewayTerminatesTLS() {
        let tls = KnownGateway(name: "g", address: "127.0.0.4", domains: ["apps.test"], httpPort: 80, httpsPort: 443)
        let named = Binding(address: "127.0.0.4", port: 80, host: "shop.apps.test")
        #expect(RunManager.url(for: named, gateway: tls) == "https://shop.apps.test")
        #expect(RunManager.url(for: named, https: false, gateway: tls) == "http://shop.apps.test")
        var odd = tls
        odd.httpPort = 8080
        odd.httpsPort = 8443
        #expect(RunManager.url(for: Binding(address: "127.0.0.4", port: 8080, host: "shop.apps.test"), gateway: odd) == "https://shop.apps.test:8443")
        // No ACME on the gateway, or a whole-port binding: plain HTTP.
        #expect(RunManager.url(for: named, gateway: KnownGateway(name: "g", address: "127.0.0.4", domains: ["apps.test"])) == "http://shop.apps.test")
        #expect(RunManager.url(for: Binding(address: "127.0.0.4", port: 80), gateway: tls) == "http://127.0.0.4")
    }

    @Test func hostsFileFormat() {
        let text = "# comment\n127.0.0.2 api.example.com www.example.com\n\n127.0.0.3\tother.example.com # tail\n"
        #expect(GatewayResolver.hostsFile(text, "www.example.com") == ["127.0.0.2"])
        #expect(GatewayResolver.hostsFile(text, "other.example.com") == ["127.0.0.3"])
        #expect(GatewayResolver.hostsFile(text, "missing.example.com").isEmpty)
        // Numeric addresses come back as they are, without asking /etc/hosts or DNS (the test
        // machine's resolver is not the test's to rely on).
        #expect(GatewayResolver.dns("127.0.0.2") == ["127.0.0.2"])
        #expect(GatewayResolver.dns("::1") == ["::1"])
    }
}

/// A domain several gateways serve is a group: the service is published on each.
@Suite struct GatewayGroupTests {
    let gateways = [
        KnownGateway(name: "gw-b", address: "127.0.0.3", domains: ["multi.example.com"]),
        KnownGateway(name: "gw-a", address: "127.0.0.2", domains: ["multi.example.com"]),
        KnownGateway(name: "gw-c", address: "127.0.0.4"),
    ]
    let hosts: GatewayResolver.Lookup = { host in
        ["dns.example.com": ["127.0.0.4", "127.0.0.3", "192.0.2.9"], "one.example.com": ["127.0.0.4"]][host] ?? []
    }

    @Test func aDomainAnnouncedBySeveralGatewaysBindsOnEach() throws {
        let r = GatewayResolver(gateways: gateways, lookup: hosts)
        #expect(try r.bindings(gateway: "Multi.Example.com.", domain: nil, port: 80) == [
            Binding(address: "127.0.0.2", port: 80, host: "multi.example.com"), Binding(address: "127.0.0.3", port: 80, host: "multi.example.com"),
        ])
        // `domain:` alone names the group too, when gateways announce it.
        #expect(try r.bindings(gateway: nil, domain: "multi.example.com", port: 8080).map(\.address) == ["127.0.0.2", "127.0.0.3"])
    }

    @Test func aDomainResolvingToSeveralGatewaysBindsOnEach() throws {
        let r = GatewayResolver(gateways: gateways, lookup: hosts)
        #expect(try r.bindings(gateway: "dns.example.com", domain: nil, port: 80) == [
            Binding(address: "127.0.0.3", port: 80, host: "dns.example.com"), Binding(address: "127.0.0.4", port: 80, host: "dns.example.com"),
        ])
    }

    @Test func oneGatewayIsOneBinding() throws {
        let r = GatewayResolver(gateways: gateways, lookup: hosts)
        #expect(try r.bindings(gateway: "127.0.0.2", domain: nil, port: 5001) == [Binding(address: "127.0.0.2", port: 5001)])
        #expect(try r.bindings(gateway: "gw-c", domain: "multi.example.com", port: 80) == [Binding(address: "127.0.0.4", port: 80, host: "multi.example.com")])
        #expect(try r.bindings(gateway: "one.example.com", domain: nil, port: 80) == [Binding(address: "127.0.0.4", port: 80, host: "one.example.com")])
    }
}
