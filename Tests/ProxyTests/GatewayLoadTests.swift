import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import Proxy

/// This process's resident set size in KiB (Linux), or nil.
func residentKiB() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }
    return nil
}

/// Holds many client connections in a python process of its own (so this process keeps its
/// descriptors for the gateway, runner and app ends): `count` connections to HOST:PORT from the
/// loopback addresses 127.SUBNET.x.y (at most two per address), each sending PAYLOAD (may be
/// empty); prints "ready N" once all are made, then holds them until stopped (at most 300 s).
enum ClientCrowd {
    static let script = #"""
import resource, signal, socket, sys, time
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
host, port, subnet, count, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].encode().decode("unicode_escape").encode("latin-1")
held = []
for i in range(count):
    s = socket.socket()
    s.bind(("127.%d.%d.%d" % (subnet, i // 200 + 1, i % 200 + 10), 0))
    try:
        s.connect((host, port))
        if payload:
            s.sendall(payload)
    except OSError:
        pass
    held.append(s)
print("ready %d" % len(held), flush=True)
time.sleep(300)
"""#

    static func start(_ count: Int, to address: SocketAddress, subnet: Int, payload: String) async throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", self.script, address.ipAddress!, "\(address.port!)", "\(subnet)", "\(count)", payload]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // A loaded machine's gateway accepts slowly, and connect() waits for a full backlog.
        let line = try await firstLine(of: pipe, within: 300)
        guard line.hasPrefix("ready \(count)") else {
            process.terminate()
            throw TestFailure("the client crowd did not open its \(count) connections (it said \"\(line)\")")
        }
        return process
    }

    static func stop(_ process: Process) async {
        process.terminate()
        await waitForExit(process)
    }
}

/// 5,000 idle connections to one exclusive port and 5,000 unfinished POSTs to one host, from many
/// loopback addresses: another service of the same runner still answers.
@Suite("Gateway: floods of one service leave the runner's others serving", .serialized, .timeLimit(.minutes(10)))
struct GatewayLoadTests {
    @Test func idleConnectionsAndUnfinishedPostsDoNotStarveAnotherService() async throws {
        // The clients are in python processes of their own; the gateway, tunnel, runner and app
        // ends of the connections the caps let through (5 descriptors each) are in this one.
        var configuration = ProxyConfiguration()
        configuration.maxConnectionsPerRoute = 1200
        let limit = try #require(OpenFileLimit.raise(toAtLeast: 65_536))
        try #require(limit >= 18_000, "this test needs ~16,000 open files; the limit here is \(limit) (root may raise it)")
        let lab = try await Lab.start(configuration: configuration)
        let echo = try await TestServer.echo()
        let busy = try await TestServer.http(name: "busy")
        let calm = try await TestServer.http(name: "calm")
        let tcp = lab.anyPort
        let http = ListenAddress(host: "127.0.0.4", port: 0)
        var table = RoutingTable()
        try table.addExclusive(lab.route(echo, run: "echo"), on: tcp)
        try table.addHost("busy.example", route: lab.route(busy, run: "busy"), on: http)
        try table.addHost("calm.example", route: lab.route(calm, run: "calm"), on: http)
        #expect(await lab.gateway.apply(table).isEmpty)
        let tcpAddress = try await lab.socketAddress(of: tcp)
        let httpAddress = try await lab.socketAddress(of: http)
        let expected = 2 * configuration.maxConnectionsPerRoute

        // Whatever fails, the crowds and servers are stopped: 10,000 connections left open would
        // starve every later test in this process of descriptors.
        var crowds: [Process] = []
        var failure: (any Error)?
        do {
            let before = residentKiB()
            let idle = try await ClientCrowd.start(5000, to: tcpAddress, subnet: 100, payload: "")
            crowds.append(idle)
            // Bounded wait until the gateway has placed what its caps allow (idle connections wait
            // out the exclusive port's sniff first).
            for _ in 0..<600 where lab.gateway.connectionCounts.upstreamConnections < configuration.maxConnectionsPerRoute {
                try await Task.sleep(for: .milliseconds(100))
            }
            let idleHeld = lab.gateway.connectionCounts.upstreamConnections
            let afterIdle = residentKiB()
            if let before, let afterIdle {
                // The gateway, tunnel, runner and app ends of each connection are in this process.
                print("load: RSS per 1,000 idle connections (gateway + tunnel + runner + app ends): \((afterIdle - before) * 1000 / max(1, idleHeld)) KiB (\(idleHeld) held, \(before) → \(afterIdle) KiB)")
            }
            let posts = try await ClientCrowd.start(
                5000, to: httpAddress, subnet: 101,
                payload: "POST /upload HTTP/1.1\\r\\nHost: busy.example\\r\\nContent-Length: 1000000\\r\\n\\r\\npart"
            )
            crowds.append(posts)
            // Bounded wait until every connection was placed or refused: while the gateway makes
            // progress (a loaded machine works through the kernel's backlog slowly), at most 300 s.
            var decided = 0, stalled = ContinuousClock.now
            for _ in 0..<3000 {
                let counts = lab.gateway.connectionCounts
                let now = counts.upstreamConnections + counts.refusedByRouteLimit
                if now >= 10_000 || ContinuousClock.now - stalled > .seconds(20) { break }
                if now > decided { decided = now; stalled = ContinuousClock.now }
                try await Task.sleep(for: .milliseconds(100))
            }
            let counts = lab.gateway.connectionCounts
            print("load: 5,000 idle + 5,000 POST connections: \(counts); RSS \(before ?? -1) → \(residentKiB() ?? -1) KiB")
            // The caps hold: never more than each route's cap reaches the apps, and the rest of the flood
            // is refused. Not exact counts: on a loaded machine a few of the python clients give up and
            // close (freeing a slot after the crowd has finished), or connect late.
            #expect(counts.upstreamConnections <= expected, "\(counts)")
            #expect(counts.upstreamConnections >= expected * 9 / 10, "\(counts)")
            #expect(counts.refusedByRouteLimit >= (10_000 - expected) * 9 / 10, "\(counts)")

            // Another service of the same runner answers (a bounded wait, from a fresh address; 5 s so a
            // shared machine's load does not decide it, the figure is printed).
            let asked = ContinuousClock.now
            let answer = try await withTimeout(5) {
                try await TestClient.http(httpAddress, host: "calm.example").response
            }
            print("load: the calm service answered in \(ContinuousClock.now - asked) during the flood")
            #expect(answer.hasPrefix("HTTP/1.1 200"))
            #expect(answer.contains("hello from calm"))
        } catch {
            failure = error
        }

        for crowd in crowds { await ClientCrowd.stop(crowd) }
        await echo.close()
        await busy.close()
        await calm.close()
        await lab.stop()
        if let failure { throw failure }
    }
}
