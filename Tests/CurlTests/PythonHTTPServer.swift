import Foundation
import Testing

/// A small HTTP server in a python3 child process, on a loopback TCP port or a Unix socket, for
/// testing the client against a real peer. `/echo` answers JSON describing the request; `/status/N`
/// answers status N; `/stream/N` sends N chunks 50 ms apart; `/sleep/S` waits S seconds; `/bytes/N`
/// sends N bytes.
final class PythonHTTPServer {
    let process: Process
    /// `http://127.0.0.1:PORT` for TCP, `http://localhost` for a Unix socket.
    let baseURL: String
    let socketPath: String?
    private let directory: URL
    /// Held open for the server's life: it exits when this closes, even if the test process dies.
    private let stdin = Pipe()

    init(unixSocket: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("warren-curl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let script = directory.appendingPathComponent("server.py")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        let socket = unixSocket ? directory.appendingPathComponent("s.sock").path : nil
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path] + (socket.map { ["--unix", $0] } ?? [])
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = stdin
        try process.run()
        // The server prints its port (or "ready") once it listens.
        let line = Self.readLine(out.fileHandleForReading)
        socketPath = socket
        if unixSocket {
            #expect(line == "ready")
            baseURL = "http://localhost"
        } else {
            let port = try #require(Int(line), "the test server did not print a port: \(line)")
            baseURL = "http://127.0.0.1:\(port)"
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    private static func readLine(_ handle: FileHandle) -> String {
        var bytes: [UInt8] = []
        while bytes.count < 200, let byte = try? handle.read(upToCount: 1), let b = byte.first, b != 10 {
            bytes.append(b)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static let script = #"""
import json, os, signal, socket, socketserver, sys, threading, time
# The test process may block signals, which children inherit; and if it dies, stdin closes.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
def watch_parent():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch_parent, daemon=True).start()
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def address_string(self): return "test"
    def reply(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        parts = self.path.split("?")[0].split("/")
        if parts[1] == "echo":
            doc = {"method": self.command, "path": self.path,
                   "headers": [[k, v] for k, v in self.headers.items()],
                   "body": body.decode("latin-1")}
            self.reply(200, json.dumps(doc).encode(), extra=[("X-Echo", "yes"), ("X-Multi", "a"), ("X-Multi", "b")])
        elif parts[1] == "status":
            self.reply(int(parts[2]), b"status body")
        elif parts[1] == "bytes":
            self.reply(200, b"x" * int(parts[2]), "application/octet-stream")
        elif parts[1] == "sleep":
            time.sleep(float(parts[2]))
            self.reply(200, b"slept")
        elif parts[1] == "stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(parts[2])):
                data = ("line %d\n" % i).encode()
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.reply(404, b"no such path")
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any

class TCP(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True

class Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

if len(sys.argv) > 2 and sys.argv[1] == "--unix":
    server = Unix(sys.argv[2], Handler)
    print("ready", flush=True)
else:
    server = TCP(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
server.serve_forever()
"""#
}
