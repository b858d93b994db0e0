import Foundation
import Testing

/// `proxy_protocol: true` end to end: real `warren` processes (gateway and runner), an app that
/// parses the PROXY protocol v2 header itself, and clients on loopback addresses of their own.
@Suite(.serialized) struct ProxyProtocolProcessTests {
    /// An app that parses a PROXY v2 header when the connection starts with one (as HAProxy's spec
    /// says: signature, version and command, family, length, addresses) and answers, on HTTP or raw
    /// TCP, what it read: `proxy SRC_IP SRC_PORT DST_IP DST_PORT` or `none`, then the client's line.
    static let app = #"""
        import ipaddress, socket, struct, sys, threading
        SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

        def read_exactly(conn, n, buf):
            while len(buf) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError("closed after %d of %d bytes" % (len(buf), n))
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
                    buf = read_exactly(conn, 16, buf)
                    ver_cmd, fam, length = struct.unpack("!BBH", buf[12:16])
                    buf = read_exactly(conn, 16 + length, buf)
                    block, buf = buf[16:16 + length], buf[16 + length:]
                    if ver_cmd != 0x21:
                        report = "bad-version-command %#x" % ver_cmd
                    elif fam == 0x11 and length == 12:
                        src, dst = ipaddress.IPv4Address(block[0:4]), ipaddress.IPv4Address(block[4:8])
                        sport, dport = struct.unpack("!HH", block[8:12])
                        report = "proxy %s %d %s %d" % (src, sport, dst, dport)
                    elif fam == 0x21 and length == 36:
                        src, dst = ipaddress.IPv6Address(block[0:16]), ipaddress.IPv6Address(block[16:32])
                        sport, dport = struct.unpack("!HH", block[32:36])
                        report = "proxy %s %d %s %d" % (src, sport, dst, dport)
                    else:
                        report = "bad-family %#x length %d" % (fam, length)
                while b"\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                line = buf.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
                text = "%s | %s\n" % (report, line)
                if line.startswith("GET "):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(text), text.encode()))
                else:
                    conn.sendall(text.encode())

        server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        """#

    /// Connects from `source` (port picked by the kernel) to `target`, sends `payload`, and returns
    /// "SOURCE_PORT\n" followed by all it read until the close.
    static let client = #"""
        import socket, sys
        source, host, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode().decode("unicode_escape")
        conn = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
        print(conn.getsockname()[1])
        conn.sendall(payload.encode("latin-1"))
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        sys.stdout.write(data.decode("latin-1"))
        """#

    static func writeService(_ lab: Lab, _ name: String, external: Int, app: Int, proxyProtocol: Bool) throws -> (String, String) {
        let directory = "\(lab.root)/apps/\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.app.write(toFile: "\(directory)/app.py", atomically: true, encoding: .utf8)
        let file = "\(lab.root)/\(name).dstack.yml"
        try """
            type: service
            name: \(name)
            gateway: ${{ secrets.GATEWAY_IP }}
            port: "\(external):\(app)"
            proxy_protocol: \(proxyProtocol)
            commands:
              - exec python3 app.py \(app)

            """.write(toFile: file, atomically: true, encoding: .utf8)
        return (directory, file)
    }

    /// The client's source port and what the app answered.
    static func connect(from source: String, to host: String, port: Int, payload: String) async throws -> (port: Int, answer: String) {
        let script = "\(NSTemporaryDirectory())/warren-proxy-client-\(UUID().uuidString).py"
        try Self.client.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let result = try await launch(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script, source, host, "\(port)", payload],
                                      timeout: .seconds(20))
        try #require(result.status == 0, "the client failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        return (Int(lines[0]) ?? -1, lines.count > 1 ? String(lines[1]) : "")
    }

    @Test func theAppThatAskedReadsTheClientsAddressAndTheOtherReadsNoHeader() async throws {
        try await RunLifecycleProcessTests.withLab { lab in
            let mesh = try await RunLifecycleProcessTests.start(lab)
            let gw = mesh.gw
            // A client address of its own, neither the gateway's nor the runner's.
            let clientAddress = gw.dropLast(2) + ".\(Int.random(in: 10...250))"

            let withHeader = try freePort(on: gw), withoutHeader = try freePort(on: gw)
            for (name, external, flag) in [("pp-on", withHeader, true), ("pp-off", withoutHeader, false)] {
                let (directory, file) = try Self.writeService(lab, name, external: external, app: try freePort(on: "0.0.0.0"), proxyProtocol: flag)
                let started = try await lab.warren(["run", directory, "-f", file, "--project", "local", "-d"])
                try #require(started.status == 0, "\(started.stderr)\n\(mesh.runner.log)")
            }

            // Raw TCP (spliced) and HTTP (proxied, with X-Forwarded-For) on the exclusive port.
            let tcp = try await Self.connect(from: String(clientAddress), to: gw, port: withHeader, payload: "hello\\n")
            #expect(tcp.answer == "proxy \(clientAddress) \(tcp.port) \(gw) \(withHeader) | hello\n", "\(tcp)\n\(mesh.runner.log)")
            let http = try await Self.connect(from: String(clientAddress), to: gw, port: withHeader,
                                              payload: "GET /x HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n")
            #expect(http.answer.hasPrefix("HTTP/1.1 200"), "\(http.answer)")
            #expect(http.answer.hasSuffix("proxy \(clientAddress) \(http.port) \(gw) \(withHeader) | GET /x HTTP/1.1\n"), "\(http.answer)")

            // The service that did not ask reads the client's bytes first.
            let plain = try await Self.connect(from: String(clientAddress), to: gw, port: withoutHeader, payload: "hello\\n")
            #expect(plain.answer == "none | hello\n", "\(plain)")
        }
    }
}
