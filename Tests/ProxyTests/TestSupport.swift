// A gateway, a runner and a client on loopback, and helpers to talk through them.

import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Proxy
import ProxyTestSupport

struct TimeoutError: Error, CustomStringConvertible {
    let seconds: Double
    var description: String { "the test step did not finish within \(self.seconds) s" }
}

/// Runs `body`, failing with `TimeoutError` after `seconds`: every network step is bounded.
func withTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimeoutError(seconds: seconds)
        }
        let result = try await group.next()!
        group.cancelAll()
        return result
    }
}

/// The gateway + runner pair of one test, on their own loopback addresses.
struct Lab {
    static let runnerName = "runner-1"
    let runner: LoopbackTunnelRunner
    let gateway: GatewayIngress
    let gatewayHost: String

    static func start(
        gatewayHost: String = "127.0.0.2",
        configuration: ProxyConfiguration = .init(),
        upstreams: UpstreamLoops = .clientLoop
    ) async throws -> Lab {
        let runner = try await LoopbackTunnelRunner.start(group: MultiThreadedEventLoopGroup.singleton, host: "127.0.0.3")
        let runnerAddress = runner.localAddress!
        let connector = LoopbackTunnelConnector(
            runnerAddress: { name in name == Lab.runnerName ? runnerAddress : nil },
            upstreamGroup: upstreams == .anotherLoop ? Lab.upstreamGroup : nil
        )
        let gateway = GatewayIngress(
            group: MultiThreadedEventLoopGroup.singleton,
            connector: connector,
            configuration: configuration
        )
        return Lab(runner: runner, gateway: gateway, gatewayHost: gatewayHost)
    }

    /// Where the gateway's upstream connections live, relative to their client connections.
    enum UpstreamLoops: CaseIterable, Sendable {
        /// On the client's own event loop (a loopback tunnel's default).
        case clientLoop
        /// On a thread of their own, as a link's streams are: every event crosses threads.
        case anotherLoop
    }

    /// One thread no client connection is on.
    static let upstreamGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// A listen address on the gateway's loopback address with a port picked by the kernel.
    var anyPort: ListenAddress { ListenAddress(host: self.gatewayHost, port: 0) }

    func route(_ app: TestServer, run: String = "run-1", runner: String = Lab.runnerName) -> Route {
        Route(runID: run, upstream: runner, appPort: app.port)
    }

    /// A lab whose gateway routes `host` on a port of its own to `app`; the port's address.
    static func hosting(
        _ host: String, app: TestServer, configuration: ProxyConfiguration = .init(), upstreams: UpstreamLoops = .clientLoop
    ) async throws -> (Lab, SocketAddress) {
        let lab = try await Lab.start(configuration: configuration, upstreams: upstreams)
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost(host, route: lab.route(app), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        return (lab, try await lab.socketAddress(of: listen))
    }

    func socketAddress(of listen: ListenAddress) async throws -> SocketAddress {
        try #require(await self.gateway.localAddress(of: listen))
    }

    func stop() async {
        await self.gateway.shutdown()
        try? await self.runner.close()
    }
}

enum TestClient {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(_ address: SocketAddress) async throws -> Connection {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connect(to: address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Connection(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true)
                    )
                }
            }
    }

    /// Sends `data`, half-closes, and returns everything read until the other side closes.
    static func exchange(_ address: SocketAddress, send data: ByteBuffer, halfClose: Bool = true) async throws -> ByteBuffer {
        let connection = try await self.connect(address)
        return try await connection.executeThenClose { inbound, outbound in
            if data.readableBytes > 0 { try await outbound.write(data) }
            if halfClose { outbound.finish() }
            var received = ByteBuffer()
            for try await var chunk in inbound {
                received.writeBuffer(&chunk)
            }
            return received
        }
    }

    /// One HTTP/1.1 request with `Connection: close`; returns the status code and the raw response.
    static func http(
        _ address: SocketAddress,
        host: String?,
        path: String = "/hello",
        extraHeaders: String = ""
    ) async throws -> (status: Int, response: String) {
        var request = "GET \(path) HTTP/1.1\r\n"
        if let host { request += "Host: \(host)\r\n" }
        request += extraHeaders + "Connection: close\r\n\r\n"
        let bytes = try await self.exchange(address, send: ByteBuffer(string: request), halfClose: false)
        let text = String(buffer: bytes)
        let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, text)
    }
}

/// The package root, found from this file's path (for scripts and fixtures).
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
