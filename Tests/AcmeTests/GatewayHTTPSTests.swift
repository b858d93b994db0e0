// TLS termination at the gateway with a certificate from a real pebble: HTTPS over HTTP/1.1 and
// HTTP/2 (ALPN), SNI choosing the certificate, HTTP-01 answered and the rest redirected on HTTP.

import Acme
import AcmeTestSupport
import Foundation
import NIOCore
import NIOPosix
import Proxy
import ProxyTestSupport
import Testing

/// Hands the ACME client's challenges to the gateway's store, which answers them on its HTTP port.
struct GatewayChallenges: AcmeChallengeResponder {
    let tls: TLSCertificates
    func publish(token: String, keyAuthorization: String, for name: String) async {
        self.tls.publishChallenge(token: token, keyAuthorization: keyAuthorization)
    }
    func withdraw(token: String) async { self.tls.withdrawChallenge(token: token) }
}

@Suite(.serialized)
struct GatewayHTTPSTests {
    @Test(.enabled(if: pebbleBinary != nil, Comment(rawValue: pebbleMissing)))
    func aServiceWithADomainIsServedOverHTTPSWithPebblesCertificate() async throws {
        let gatewayHost = randomLoopback()
        let httpPort = try freePort(on: gatewayHost)
        let httpsPort = try freePort(on: gatewayHost)
        let pebble = try Pebble(challengeHost: gatewayHost, httpPort: httpPort)
        defer { pebble.stop() }

        // The app, behind a loopback tunnel (the stand-in for a runner's link).
        let app = ChallengeServer()
        let appHost = randomLoopback()
        let appPort = try freePort(on: appHost)
        try await app.start(host: appHost, port: appPort)
        let runner = try await LoopbackTunnelRunner.start(group: MultiThreadedEventLoopGroup.singleton, host: randomLoopback(), dialer: AppDialer(host: appHost))
        let runnerAddress = runner.localAddress
        let tls = TLSCertificates(httpsPort: httpsPort)
        var configuration = ProxyConfiguration()
        configuration.tls = tls
        let ingress = GatewayIngress(
            group: MultiThreadedEventLoopGroup.singleton,
            connector: LoopbackTunnelConnector { _ in runnerAddress }, configuration: configuration
        )
        let name = "shop.example.test"
        var table = RoutingTable()
        try table.addHost(name, route: Route(runID: "shop", upstream: "runner", appPort: appPort), on: ListenAddress(host: gatewayHost, port: httpPort))
        try table.addHost(name, route: Route(runID: "shop", upstream: "runner", appPort: appPort, terminatesTLS: true), on: ListenAddress(host: gatewayHost, port: httpsPort))
        #expect(await ingress.apply(table).isEmpty)

        let client = AcmeClient(
            directoryURL: pebble.directoryURL, contactEmail: "ops@example.com", accountKey: try AcmeKey(),
            caBundlePath: pebble.listenerCA, retry: AcmeRetryPolicy(attempts: 3, initialDelay: .milliseconds(100), pollLimit: .seconds(30))
        )
        let key = try AcmeKey()
        var failure: String?
        do {
            // Before the certificate: HTTPS has nothing to offer for the name.
            let early = try curl(["https://\(name):\(httpsPort)/"], resolve: (name, httpsPort, gatewayHost), cacert: nil)
            #expect(early.status != 0, "no handshake without a certificate")

            let issued = try await client.issue(names: [name], certificateKey: key, responder: GatewayChallenges(tls: tls))
            try tls.install(chainPEM: issued.chainPEM, privateKeyPEM: key.pem, for: [name])
            let root = pebble.directory.appendingPathComponent("root.pem").path
            try pebble.rootPEM().write(toFile: root, atomically: true, encoding: .utf8)
            let resolve = (name, httpsPort, gatewayHost)

            let h1 = try curl(["--http1.1", "https://\(name):\(httpsPort)/hello"], resolve: resolve, cacert: root)
            #expect(h1.status == 0, "curl over HTTP/1.1: \(h1.output)")
            #expect(h1.output.contains("hello from the app; proto=https path=/hello"), "\(h1.output)")
            #expect(h1.output.contains("version=1.1"), "\(h1.output)")

            let h2 = try curl(["--http2", "https://\(name):\(httpsPort)/two"], resolve: resolve, cacert: root)
            #expect(h2.status == 0, "curl over HTTP/2: \(h2.output)")
            #expect(h2.output.contains("hello from the app; proto=https path=/two"), "\(h2.output)")
            #expect(h2.output.contains("version=2"), "\(h2.output)")

            // Several requests on one HTTP/2 connection.
            let many = try curl(["--http2", "https://\(name):\(httpsPort)/a", "https://\(name):\(httpsPort)/b"], resolve: resolve, cacert: root)
            #expect(many.output.contains("path=/a") && many.output.contains("path=/b"), "\(many.output)")

            // Plain HTTP redirects to HTTPS now that the name has a certificate.
            let plain = try curl(["http://\(name):\(httpPort)/x?y=1"], resolve: (name, httpPort, gatewayHost), cacert: nil)
            #expect(plain.output.contains("code=308"), "\(plain.output)")
            #expect(plain.output.contains("location=https://\(name):\(httpsPort)/x?y=1"), "\(plain.output)")

            // A name without a route on the HTTPS port: no handshake.
            let other = try curl(["https://other.example.test:\(httpsPort)/"], resolve: ("other.example.test", httpsPort, gatewayHost), cacert: root)
            #expect(other.status != 0, "\(other.output)")
        } catch {
            failure = "\(error)\npebble log:\n\(pebble.log)"
        }
        await ingress.shutdown()
        try? await runner.close()
        await app.stop()
        if let failure { Issue.record(Comment(rawValue: failure)) }
    }
}

/// Runs curl against the gateway; the output ends with the status code, HTTP version and Location.
func curl(_ arguments: [String], resolve: (String, Int, String), cacert: String?) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    var args = ["-sS", "--max-time", "10", "--resolve", "\(resolve.0):\(resolve.1):\(resolve.2)",
                "-w", "\\ncode=%{http_code} version=%{http_version} location=%{redirect_url}\\n"]
    if let cacert { args += ["--cacert", cacert] }
    process.arguments = args + arguments
    var environment = ProcessInfo.processInfo.environment
    environment["NO_PROXY"] = "*"
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
