// A real WebSocket echo server and real clients (python3's `websockets`), for the upgrade tests.

import Foundation
import NIOCore
import Testing

/// The python side of the WebSocket tests, run with `python3 -c`:
/// - `serve`: a `websockets` echo server on 127.0.0.1 (port printed on stdout) that greets each
///   connection with one binary message sent in the same TCP segment as its 101 (the socket is
///   corked from the handshake until the greeting is written), then echoes every message;
/// - `raw HOST PORT HOSTNAME COUNT`: a client on a plain socket that sends the upgrade request and
///   its first frame in one write, then exchanges COUNT messages;
/// - `lib HOST PORT HOSTNAME COUNT`: the same exchange with the `websockets` client.
/// Message i has a size from 1 byte to 1 MiB on a geometric scale and content that depends on i;
/// every echoed message is compared in full. A mismatch exits 1 naming the message.
enum WebSocketEcho {
    static let script = #"""
import asyncio, base64, hashlib, os, signal, socket, sys

# The test process blocks SIGTERM in its threads, and children inherit the mask.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])

GREETING = b"greeting from the app, right after its 101"

def sizes(count):
    return [max(1, round(2 ** (20 * i / max(1, count - 1)))) for i in range(count)]

def payload(i, size):
    seed = hashlib.blake2b(str(i).encode(), digest_size=64).digest()
    return (seed * (size // 64 + 1))[:size]

def fail(text):
    print("FAIL: " + text, flush=True)
    sys.exit(1)

async def serve():
    import websockets
    import websockets.legacy.server as legacy

    class Corked(legacy.WebSocketServerProtocol):
        async def process_request(self, path, headers):
            self.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            return None

    async def echo(ws):
        await ws.send(GREETING)
        ws.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0, create_protocol=Corked, max_size=None,
                                compression=None, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(900)  # bounded, in case nobody stops it

def frame(data, opcode=2):
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    keys = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(data, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big") if n else b""
    return head + mask + masked

class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()
    def need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                fail("the connection closed after %d buffered bytes (wanted %d)" % (len(self.buf), n))
            self.buf += chunk
    def take(self, n):
        self.need(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out
    def head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail("the connection closed before the response head: %r" % bytes(self.buf))
            self.buf += chunk
        end = self.buf.index(b"\r\n\r\n") + 4
        return self.take(end).decode("latin-1")
    def message(self):
        data = bytearray()
        while True:
            b0, b1 = self.take(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self.take(2), "big")
            elif n == 127:
                n = int.from_bytes(self.take(8), "big")
            if b1 & 0x80:
                fail("the server masked a frame")
            body = self.take(n)
            if b0 & 0x0F == 8:
                fail("the server closed the WebSocket: %r" % body)
            if b0 & 0x0F in (9, 10):
                continue
            data += body
            if b0 & 0x80:
                return bytes(data)

def raw(host, port, hostname, count):
    sock = socket.create_connection((host, port), timeout=120)
    key = base64.b64encode(os.urandom(16)).decode()
    request = ("GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (hostname, key)).encode()
    all_sizes = sizes(count)
    # The first frame goes in the same write (and segment) as the upgrade request.
    sock.sendall(request + frame(payload(0, all_sizes[0])))
    reader = Reader(sock)
    head = reader.head()
    if not head.startswith("HTTP/1.1 101"):
        fail("no 101: %r" % head)
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    if accept.lower() not in head.lower():
        fail("wrong Sec-WebSocket-Accept in %r" % head)
    greeting = reader.message()
    if greeting != GREETING:
        fail("the app's first message after its 101 arrived as %r" % greeting[:80])
    total = 0
    for i, size in enumerate(all_sizes):
        if i > 0:
            sock.sendall(frame(payload(i, size)))
        echoed = reader.message()
        if echoed != payload(i, size):
            fail("message %d (%d bytes) came back as %d different bytes" % (i, size, len(echoed)))
        total += size
    sock.sendall(frame(b"\x03\xe8", opcode=8))
    sock.close()
    print("OK raw %d messages %d bytes each way" % (count, total), flush=True)

async def lib(host, port, hostname, count):
    import websockets
    total = 0
    async with websockets.connect("ws://%s/echo" % hostname, host=host, port=port, max_size=None,
                                  compression=None, ping_interval=None, open_timeout=60) as ws:
        greeting = await ws.recv()
        if greeting != GREETING:
            fail("the app's first message after its 101 arrived as %r" % greeting[:80])
        for i, size in enumerate(sizes(count)):
            data = payload(i, size)
            await ws.send(data)
            echoed = await asyncio.wait_for(ws.recv(), 120)
            if echoed != data:
                fail("message %d (%d bytes) came back as %d different bytes" % (i, size, len(echoed)))
            total += size
    print("OK lib %d messages %d bytes each way" % (count, total), flush=True)

mode = sys.argv[1]
if mode == "serve":
    asyncio.run(serve())
elif mode == "raw":
    raw(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
else:
    asyncio.run(lib(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])))
"""#

    /// A python3 that has the `websockets` module: Debian's (`python3-websockets`, which
    /// scripts/deps.sh installs) when another python3 comes first on PATH.
    static let python: String? = {
        for candidate in ["/usr/bin/python3", "python3"] {
            if let probe = try? run([candidate, "-c", "import websockets"]), probe.status == 0 { return candidate }
        }
        return nil
    }()

    static func requirePython() throws -> String {
        guard let python else {
            Issue.record("python3 with the websockets module is missing; run scripts/deps.sh (Debian: apt-get install python3-websockets)")
            throw CancellationError()
        }
        return python
    }

    /// A running echo server process.
    struct Server {
        let process: Process
        let port: Int

        func stop() async {
            self.process.terminate()
            await waitForExit(self.process)
        }
    }

    static func startServer() async throws -> Server {
        let python = try self.requirePython()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // No `timeout` wrapper: it would keep SIGTERM blocked, and `stop()` could not end it.
        process.arguments = [python, "-c", self.script, "serve"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let line = try await firstLine(of: pipe, within: 60)
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw TestFailure("the WebSocket echo server did not print its port (got \"\(line)\")")
        }
        return Server(process: process, port: port)
    }

    /// Runs a client (`raw` or `lib`) to the end; its output, or a failure naming what it saw.
    static func client(_ mode: String, address: SocketAddress, hostName: String, count: Int) async throws -> String {
        let python = try self.requirePython()
        let result = try await runAsync([
            "timeout", "900", python, "-c", self.script, mode,
            address.ipAddress!, "\(address.port!)", hostName, "\(count)",
        ])
        guard result.status == 0 else {
            throw TestFailure("the \(mode) WebSocket client exited \(result.status): \(result.output.suffix(2000))")
        }
        return result.output
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The first line a helper process prints on `pipe` (its "ready" line), read on a thread of its
/// own so the blocking read holds no task; everything up to the end if it exits first.
func firstLine(of pipe: Pipe, within seconds: Double) async throws -> String {
    let handle = pipe.fileHandleForReading
    return try await withTimeout(seconds) {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            Thread.detachNewThread {
                var bytes = Data()
                while !bytes.contains(UInt8(ascii: "\n")) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    bytes.append(chunk)
                }
                continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
            }
        }
    }
}
