import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Proxy

/// The addresses the gateway hands its connector reach an app as a PROXY protocol v2 header that
/// a real parser (python, following HAProxy's spec) reads back, on IPv4 and IPv6 listeners. The
/// connector here does what a runner does for a service with `proxy_protocol: true`: dial the app
/// and write the header first (`AppDialer`'s preamble).
@Suite("Gateway: PROXY protocol v2", .serialized, .timeLimit(.minutes(3)))
struct GatewayProxyProtocolTests {
    /// Reads a PROXY v2 header if the connection starts with one, then a line; answers
    /// `proxy SRC SPORT DST DPORT | LINE` or `none | LINE`. Prints its port when ready.
    static let app = #"""
import ipaddress, signal, socket, struct, sys, threading
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

def fill(conn, n, buf):
    while len(buf) < n:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    return buf

def serve(conn):
    with conn:
        buf = b""
        while len(buf) < 16 and b"\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        report = "none"
        if buf.startswith(SIGNATURE):
            buf = fill(conn, 16, buf)
            ver_cmd, fam, length = struct.unpack("!BBH", buf[12:16])
            buf = fill(conn, 16 + length, buf)
            block, buf = buf[16:16 + length], buf[16 + length:]
            if ver_cmd == 0x21 and fam == 0x11 and length == 12:
                src, dst = ipaddress.IPv4Address(block[0:4]), ipaddress.IPv4Address(block[4:8])
                sport, dport = struct.unpack("!HH", block[8:12])
                report = "proxy %s %d %s %d" % (src, sport, dst, dport)
            elif ver_cmd == 0x21 and fam == 0x21 and length == 36:
                src, dst = ipaddress.IPv6Address(block[0:16]), ipaddress.IPv6Address(block[16:32])
                sport, dport = struct.unpack("!HH", block[32:36])
                report = "proxy %s %d %s %d" % (src, sport, dst, dport)
            else:
                report = "bad %#x %#x %d" % (ver_cmd, fam, length)
        while b"\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
        conn.sendall(("%s | %s\n" % (report, buf.split(b"\n", 1)[0].decode("latin-1"))).encode())

server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
server.settimeout(120)  # bounded, in case nobody stops it
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""#

    /// Dials the app on 127.0.0.1 directly and, when `header` is set, writes the PROXY v2 header
    /// made of the addresses the gateway passed.
    struct HeaderWritingConnector: UpstreamConnector {
        let header: Bool

        func connect(
            to route: Route,
            clientAddress: SocketAddress?,
            serverAddress: SocketAddress?,
            on eventLoop: any EventLoop,
            initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
        ) -> EventLoopFuture<any Channel> {
            let preamble = self.header ? clientAddress.flatMap { client in
                serverAddress.flatMap { ProxyProtocolHeader(source: client, destination: $0)?.bytes }
            } : nil
            return ClientBootstrap(group: eventLoop)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer(initializer)
                .connect(host: "127.0.0.1", port: route.appPort)
                .flatMap { channel in
                    guard let preamble else { return eventLoop.makeSucceededFuture(channel) }
                    return channel.writeAndFlush(preamble).map { channel }
                }
        }
    }

    static func withApp(_ body: (Int) async throws -> Void) async throws {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.app]
        process.standardOutput = pipe
        try process.run()
        defer { process.terminate() }
        let port = try #require(Int(try await firstLine(of: pipe, within: 30).trimmingCharacters(in: .whitespacesAndNewlines)))
        try await body(port)
    }

    /// One connection from `source` to `address` that sends a line; the client's port and the answer.
    static func exchange(from source: String, to address: SocketAddress) async throws -> (port: Int, answer: String) {
        try await withTimeout(30) {
            let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(to: try SocketAddress(ipAddress: source, port: 0))
                .connect(to: address) { channel in
                    channel.eventLoop.makeCompletedFuture { try TestClient.Connection(wrappingChannelSynchronously: channel) }
                }
            let port = connection.channel.localAddress?.port ?? -1
            let answer = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "hello\n"))
                var received = ""
                for try await chunk in inbound { received += String(buffer: chunk) }
                return received
            }
            return (port, answer)
        }
    }

    @Test(arguments: [("127.0.0.1", "127.0.0.1"), ("::1", "::1")])
    func theAppReadsTheClientAndTheGatewayAddress(listenHost: String, clientHost: String) async throws {
        try await Self.withApp { appPort in
            for header in [true, false] {
                let gateway = GatewayIngress(group: MultiThreadedEventLoopGroup.singleton, connector: HeaderWritingConnector(header: header))
                let listen = ListenAddress(host: listenHost, port: 0)
                var table = RoutingTable()
                try table.addExclusive(Route(runID: "pp", upstream: "r", appPort: appPort), on: listen)
                #expect(await gateway.apply(table).isEmpty)
                let address = try #require(await gateway.localAddress(of: listen))
                let (clientPort, answer) = try await Self.exchange(from: clientHost, to: address)
                let listenPort = try #require(address.port)
                if header {
                    #expect(answer == "proxy \(clientHost) \(clientPort) \(listenHost) \(listenPort) | hello\n")
                } else {
                    #expect(answer == "none | hello\n")
                }
                await gateway.shutdown()
            }
        }
    }
}
