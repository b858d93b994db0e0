// Runs Warren's Proxy standalone for `bench/tunnel`: a gateway ingress and a runner, as two
// processes joined by the loopback tunnel (one TCP connection per stream, no Noise, no HTTP/2).
//
//   proxy-bench runner  LISTEN_HOST:PORT
//   proxy-bench gateway RUNNER_HOST:PORT [exclusive LISTEN_HOST:PORT APP_PORT]... [host NAME LISTEN_HOST:PORT APP_PORT]...
//       [https NAME LISTEN_HOST:PORT CHAIN.pem KEY.pem APP_PORT]...   (TLS terminated by the gateway)
//
// Both run until SIGTERM/SIGINT.

import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Proxy
import ProxyTestSupport

#if canImport(Glibc)
import Glibc
#endif

struct UsageError: Error, CustomStringConvertible {
    let description: String
}

func hostPort(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
        throw UsageError(description: "expected HOST:PORT, got \"\(text)\"")
    }
    return (String(text[..<colon]), port)
}

/// Returns when SIGTERM or SIGINT arrives.
func waitForSignal() async {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let queue = DispatchQueue(label: "proxy-bench.signals")
    var sources: [any DispatchSourceSignal] = []
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = NIOLockedValueBox(Optional(continuation))
        for number in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                once.withLockedValue { pending in
                    pending?.resume()
                    pending = nil
                }
            }
            source.resume()
            sources.append(source)
        }
    }
    withExtendedLifetime(sources) {}
}

func printError(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
}

@main
struct ProxyBench {
    static func main() async {
        do {
            try await self.run(Array(CommandLine.arguments.dropFirst()))
        } catch {
            printError("proxy-bench: \(error)\n")
            exit(2)
        }
    }

    static func run(_ arguments: [String]) async throws {
        var logger = Logger(label: "proxy-bench")
        logger.logLevel = .warning
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        switch arguments.first {
        case "runner":
            guard arguments.count == 2 else { throw UsageError(description: "runner LISTEN_HOST:PORT") }
            let (host, port) = try hostPort(arguments[1])
            let runner = try await LoopbackTunnelRunner.start(group: group, host: host, port: port)
            print("runner listening on \(runner.localAddress!)")
            await waitForSignal()
            try await runner.close()
        case "gateway":
            guard arguments.count >= 2 else { throw UsageError(description: "gateway RUNNER_HOST:PORT BINDINGS...") }
            let (runnerHost, runnerPort) = try hostPort(arguments[1])
            let runnerAddress = try SocketAddress(ipAddress: runnerHost, port: runnerPort)
            var table = RoutingTable()
            var configuration = ProxyConfiguration()
            // 0 splices exclusive ports as bytes (no HTTP parsing, no X-Forwarded-*), to compare the two.
            if let wait = ProcessInfo.processInfo.environment["PROXY_BENCH_SNIFF_WAIT_MS"].flatMap({ Int64($0) }) {
                configuration.exclusiveSniffWait = .milliseconds(wait)
            }
            var rest = arguments.dropFirst(2)[...]
            while let kind = rest.popFirst() {
                switch kind {
                case "exclusive":
                    guard let listen = rest.popFirst(), let app = rest.popFirst().flatMap({ Int($0) }) else {
                        throw UsageError(description: "exclusive LISTEN_HOST:PORT APP_PORT")
                    }
                    let (host, port) = try hostPort(listen)
                    try table.addExclusive(
                        Route(runID: "bench-\(app)", upstream: "runner", appPort: app),
                        on: ListenAddress(host: host, port: port)
                    )
                case "host":
                    guard let name = rest.popFirst(), let listen = rest.popFirst(),
                        let app = rest.popFirst().flatMap({ Int($0) })
                    else { throw UsageError(description: "host NAME LISTEN_HOST:PORT APP_PORT") }
                    let (host, port) = try hostPort(listen)
                    try table.addHost(
                        name,
                        route: Route(runID: "bench-\(name)", upstream: "runner", appPort: app),
                        on: ListenAddress(host: host, port: port)
                    )
                case "https":
                    guard let name = rest.popFirst(), let listen = rest.popFirst(), let chain = rest.popFirst(), let key = rest.popFirst(),
                        let app = rest.popFirst().flatMap({ Int($0) })
                    else { throw UsageError(description: "https NAME LISTEN_HOST:PORT CHAIN.pem KEY.pem APP_PORT") }
                    let (host, port) = try hostPort(listen)
                    let tls = configuration.tls ?? TLSCertificates(httpsPort: port)
                    try tls.install(chainPEM: String(contentsOfFile: chain, encoding: .utf8), privateKeyPEM: String(contentsOfFile: key, encoding: .utf8), for: [name])
                    configuration.tls = tls
                    try table.addHost(
                        name,
                        route: Route(runID: "bench-\(name)", upstream: "runner", appPort: app, terminatesTLS: true),
                        on: ListenAddress(host: host, port: port)
                    )
                default:
                    throw UsageError(description: "unknown binding kind \"\(kind)\" (exclusive, host, https)")
                }
            }
            let gateway = GatewayIngress(
                group: group,
                connector: LoopbackTunnelConnector { _ in runnerAddress },
                configuration: configuration,
                logger: logger
            )
            let failures = await gateway.apply(table)
            guard failures.isEmpty else {
                throw UsageError(description: failures.map(\.description).joined(separator: "; "))
            }
            print("gateway listening on \(await gateway.listening.map(\.description).sorted().joined(separator: ", "))")
            await waitForSignal()
            await gateway.shutdown()
        default:
            throw UsageError(description: "usage: proxy-bench runner HOST:PORT | gateway RUNNER_HOST:PORT BINDINGS...")
        }
        try await group.shutdownGracefully()
    }
}

