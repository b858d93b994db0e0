// A gateway's certificates end to end against pebble: the names of its HTTP-port leases get
// certificates, HTTPS serves them, a restart reuses the stored one, a failed order says why.

import AcmeTestSupport
import Foundation
import Logging
@testable import MeshNode
import NIOPosix
import Proxy
import ProxyTestSupport
import Testing
import Trust

@Suite(.serialized)
struct CertificateManagerTests {
    @Test func aNameOnTheHTTPPortIsAlsoServedOnTheHTTPSPortWithTermination() {
        let acme = AcmeSettings(directoryURL: "https://ca.invalid/dir", httpPort: 8080, httpsPort: 8443)
        let expires = Date().addingTimeInterval(60)
        let leases = [
            Lease(binding: Trust.Binding(address: "1.2.3.4", port: 8080, host: "Web.Example.test"), runID: "web", runName: "web", holder: "n1", appPort: 3000, expires: expires),
            Lease(binding: Trust.Binding(address: "1.2.3.4", port: 8443, host: "own-tls.example.test"), runID: "tls", runName: "tls", holder: "n1", appPort: 3001, expires: expires),
            Lease(binding: Trust.Binding(address: "1.2.3.4", port: 9000), runID: "tcp", runName: "tcp", holder: "n1", appPort: 3002, expires: expires),
        ]
        let table = NodeAgent.routingTable(leases, bindHost: "127.0.0.1", acme: acme)
        let https = ListenAddress(host: "127.0.0.1", port: 8443)
        #expect(table.lookup(https, host: "web.example.test") == .route(Route(runID: "web", upstream: "n1", appPort: 3000, terminatesTLS: true)))
        #expect(table.lookup(https, host: "own-tls.example.test") == .route(Route(runID: "tls", upstream: "n1", appPort: 3001)), "passthrough stays")
        #expect(table.lookup(ListenAddress(host: "127.0.0.1", port: 8080), host: "web.example.test") == .route(Route(runID: "web", upstream: "n1", appPort: 3000)))
        #expect(NodeAgent.terminatedNames(leases, acme: acme) == ["web.example.test"])
        // Without ACME settings nothing is terminated.
        #expect(NodeAgent.routingTable(leases, bindHost: "127.0.0.1").lookup(https, host: "web.example.test") == .unknownHost("web.example.test"))
    }

    @Test func theClaimLifetimeIsFiveMinutesUnlessTheEnvironmentSetsIt() {
        #expect(CertificateSharing.claimLifetime(environment: [:]) == .seconds(300))
        #expect(CertificateSharing.claimLifetime(environment: ["WARREN_CERT_CLAIM_LIFETIME_SECONDS": "8"]) == .seconds(8))
        #expect(CertificateSharing.claimLifetime(environment: ["WARREN_CERT_CLAIM_LIFETIME_SECONDS": "0.5"]) == .milliseconds(500))
        for bad in ["0", "-3", "soon", "inf"] {
            #expect(CertificateSharing.claimLifetime(environment: ["WARREN_CERT_CLAIM_LIFETIME_SECONDS": bad]) == .seconds(300), "\(bad)")
        }
    }

    @Test func aServiceWithHTTPSFalseIsServedPlainAndGetsNoCertificate() {
        let acme = AcmeSettings(directoryURL: "https://ca.invalid/dir", httpPort: 8080, httpsPort: 8443)
        let expires = Date().addingTimeInterval(60)
        let leases = [
            Lease(binding: Trust.Binding(address: "1.2.3.4", port: 8080, host: "tls.example.test"), runID: "a", runName: "a", holder: "n1", appPort: 3000, expires: expires),
            Lease(binding: Trust.Binding(address: "1.2.3.4", port: 8080, host: "plain.example.test"), runID: "b", runName: "b", holder: "n1", appPort: 3001,
                  expires: expires, https: false),
        ]
        let table = NodeAgent.routingTable(leases, bindHost: "127.0.0.1", acme: acme)
        let https = ListenAddress(host: "127.0.0.1", port: 8443), http = ListenAddress(host: "127.0.0.1", port: 8080)
        #expect(table.lookup(https, host: "plain.example.test") == .unknownHost("plain.example.test"))
        #expect(table.lookup(http, host: "plain.example.test") == .route(Route(runID: "b", upstream: "n1", appPort: 3001)))
        #expect(table.lookup(https, host: "tls.example.test") == .route(Route(runID: "a", upstream: "n1", appPort: 3000, terminatesTLS: true)))
        #expect(NodeAgent.terminatedNames(leases, acme: acme) == ["tls.example.test"])
        // The opt-out travels in the lease as gossip and the state database carry it; older
        // nodes' leases (no field) are terminated as before.
        let decoded = try? JSONDecoder().decode(Lease.self, from: JSONEncoder().encode(leases[1]))
        #expect(decoded?.https == false && decoded?.terminatesTLS == false)
        let old = try? JSONDecoder().decode(Lease.self, from: Data(#"{"binding":{"address":"1.2.3.4","port":8080,"host":"x"},"runID":"r","runName":"r","holder":"n","appPort":1,"expires":0}"#.utf8))
        #expect(old?.https == nil && old?.terminatesTLS == true)
    }

    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func aGatewayOrdersServesAndReusesItsCertificate() async throws {
        let gatewayHost = randomLoopback()
        let httpPort = try freePort(on: gatewayHost)
        let httpsPort = try freePort(on: gatewayHost)
        let pebble = try Pebble(challengeHost: gatewayHost, httpPort: httpPort)
        defer { pebble.stop() }
        let state = pebble.directory.appendingPathComponent("gateway-state").path
        let settings = AcmeSettings(directoryURL: pebble.directoryURL, email: "ops@example.com", caBundlePath: pebble.listenerCA,
                                    httpPort: httpPort, httpsPort: httpsPort)
        let app = ChallengeServer()
        let appHost = randomLoopback()
        let appPort = try freePort(on: appHost)
        try await app.start(host: appHost, port: appPort)
        let runner = try await LoopbackTunnelRunner.start(group: MultiThreadedEventLoopGroup.singleton, host: randomLoopback(), dialer: AppDialer(host: appHost))
        let runnerAddress = runner.localAddress
        let name = "blog.example.test"
        let leases = [Lease(binding: Trust.Binding(address: gatewayHost, port: httpPort, host: name), runID: "blog", runName: "blog",
                            holder: "runner", appPort: appPort, expires: Date().addingTimeInterval(600))]

        var failure: String?
        var firstExpiry: Date?
        for round in 1...2 {
            // Round 2 is a restart: a new manager on the same state directory.
            let manager = CertificateManager(settings: settings, stateDirectory: state, gatewayName: "gw1", logger: Logger(label: "test"),
                                             firstRetry: .milliseconds(200), maxRetry: .seconds(1))
            var configuration = ProxyConfiguration()
            configuration.tls = manager.tls
            let ingress = GatewayIngress(group: MultiThreadedEventLoopGroup.singleton,
                                         connector: LoopbackTunnelConnector { _ in runnerAddress }, configuration: configuration)
            #expect(await ingress.apply(NodeAgent.routingTable(leases, bindHost: gatewayHost, acme: settings)).isEmpty)
            await manager.serve(NodeAgent.terminatedNames(leases, acme: settings))
            var served = false
            for _ in 0..<300 where !served {
                served = await manager.status.first?.notAfter != nil
                if !served { try await Task.sleep(for: .milliseconds(100)) }
            }
            let status = await manager.status
            if served, let first = status.first {
                #expect(first.name == name && first.gateway == "gw1")
                #expect(first.issuer?.contains("Pebble") == true, "\(first)")
                #expect(first.lastError == nil)
                if round == 1 { firstExpiry = first.notAfter } else {
                    #expect(first.notAfter == firstExpiry, "the restarted gateway serves the stored certificate, no new order")
                }
                let root = pebble.directory.appendingPathComponent("root.pem").path
                try pebble.rootPEM().write(toFile: root, atomically: true, encoding: .utf8)
                let answer = try curl(["https://\(name):\(httpsPort)/r\(round)"], resolve: (name, httpsPort, gatewayHost), cacert: root)
                #expect(answer.output.contains("proto=https path=/r\(round)"), "\(answer.output)")
            } else {
                failure = "round \(round): no certificate within 30 s: \(status)\npebble log:\n\(pebble.log)"
            }
            await manager.shutdown()
            await ingress.shutdown()
            if failure != nil { break }
        }
        try? await runner.close()
        await app.stop()
        if let failure { Issue.record(Comment(rawValue: failure)) }
    }

    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func aFailedOrderIsRetriedAndItsReasonShown() async throws {
        let gatewayHost = randomLoopback()
        let httpPort = try freePort(on: gatewayHost)
        let pebble = try Pebble(challengeHost: gatewayHost, httpPort: httpPort)
        defer { pebble.stop() }
        // No listener on the HTTP port: the CA can't fetch the challenge.
        let settings = AcmeSettings(directoryURL: pebble.directoryURL, caBundlePath: pebble.listenerCA,
                                    httpPort: httpPort, httpsPort: try freePort(on: gatewayHost))
        let manager = CertificateManager(settings: settings, stateDirectory: pebble.directory.appendingPathComponent("gw").path,
                                         gatewayName: "gw1", logger: Logger(label: "test"), firstRetry: .milliseconds(100), maxRetry: .milliseconds(500))
        await manager.serve(["unreachable.example.test"])
        var status: [CertificateStatus] = []
        for _ in 0..<300 {
            status = await manager.status
            if status.first?.lastError != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        await manager.shutdown()
        let error = try #require(status.first?.lastError, "no error after 30 s: \(status)")
        #expect(error.contains("unreachable.example.test") && error.contains("port 80"), "\(error)")
        #expect(status.first?.notAfter == nil)
    }
}
