import Foundation
import NIOCore
import Testing
@testable import Proxy

/// A real WebSocket echo server behind the gateway, reached by real clients: every byte after the
/// upgrade head (in the same segment too) and every byte the app sends after its 101 arrives.
@Suite("Gateway: byte-exact WebSocket upgrades", .serialized, .timeLimit(.minutes(20)))
struct GatewayWebSocketTests {
    static let messages = 1000

    /// Both clients through `address`: the raw one (first frame in the upgrade's segment) and the
    /// `websockets` library's; then several short raw connections, since a lost greeting or first
    /// frame depends on how the bytes are split.
    static func exchange(through address: SocketAddress, hostName: String) async throws {
        let raw = try await WebSocketEcho.client("raw", address: address, hostName: hostName, count: Self.messages)
        #expect(raw.contains("OK raw \(Self.messages) messages"))
        let lib = try await WebSocketEcho.client("lib", address: address, hostName: hostName, count: Self.messages)
        #expect(lib.contains("OK lib \(Self.messages) messages"))
        for _ in 0..<10 {
            let short = try await WebSocketEcho.client("raw", address: address, hostName: hostName, count: 3)
            #expect(short.contains("OK raw 3 messages"))
        }
    }

    @Test func upgradeOnAnExclusivePort() async throws {
        let server = try await WebSocketEcho.startServer()
        let lab = try await Lab.start()
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addExclusive(Route(runID: "ws", upstream: Lab.runnerName, appPort: server.port), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        let address = try await lab.socketAddress(of: listen)
        do {
            try await Self.exchange(through: address, hostName: "ws.example")
        } catch {
            Issue.record(error)
        }
        await server.stop()
        await lab.stop()
    }

    @Test func upgradeOnAnHTTPRoutedSharedPort() async throws {
        let server = try await WebSocketEcho.startServer()
        let lab = try await Lab.start()
        let listen = lab.anyPort
        var table = RoutingTable()
        try table.addHost("ws.example", route: Route(runID: "ws", upstream: Lab.runnerName, appPort: server.port), on: listen)
        try table.addHost("other.example", route: Route(runID: "other", upstream: Lab.runnerName, appPort: 1), on: listen)
        #expect(await lab.gateway.apply(table).isEmpty)
        let address = try await lab.socketAddress(of: listen)
        do {
            try await Self.exchange(through: address, hostName: "ws.example")
        } catch {
            Issue.record(error)
        }
        await server.stop()
        await lab.stop()
    }

    @Test func connectIsRefusedWith405() async throws {
        let app = try await TestServer.http(name: "app")
        let (lab, address) = try await Lab.hosting("a.example", app: app)
        let answer = try await withTimeout(30) {
            String(buffer: try await TestClient.exchange(
                address,
                send: ByteBuffer(string: "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
                halfClose: false
            ))
        }
        #expect(answer.hasPrefix("HTTP/1.1 405"))
        #expect(answer.lowercased().contains("allow: "))
        #expect(answer.contains("CONNECT"))
        await app.close()
        await lab.stop()
    }
}
