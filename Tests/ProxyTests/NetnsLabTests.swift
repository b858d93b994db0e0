import Foundation
import Testing

/// Runs a command to completion on a thread of its own, so that waiting never blocks the
/// concurrency pool the other tests run on (every command here is bounded by `timeout`).
@discardableResult
func runAsync(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try run(arguments, environment: environment) })
        }
    }
}

/// Waits for a started process on a thread of its own.
func waitForExit(_ process: Process) async {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            process.waitUntilExit()
            continuation.resume()
        }
    }
}

/// Runs a command to completion, blocking the calling thread.
@discardableResult
func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

enum NetnsLab {
    static let script = packageRoot.appendingPathComponent("scripts/netns.sh").path

    /// Namespaces need root and a kernel that lets us make them (not every container does).
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "not root" }
        let probe = "wrnprobe\(getpid())"
        guard let made = try? run(["ip", "netns", "add", probe]), made.status == 0 else {
            return "`ip netns add` does not work here"
        }
        _ = try? run(["ip", "netns", "del", probe])
        return nil
    }()
}

@Suite("NAT lab in network namespaces", .serialized)
struct NetnsLabTests {
    /// A python one-liner that accepts one connection and answers the peer's address.
    static let listener = """
        import socket,sys
        s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); s.settimeout(8)
        c,a=s.accept(); c.sendall(a[0].encode()); c.close()
        """
    static let connector = """
        import socket,sys
        s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print(s.recv(100).decode())
        """

    @Test func theSiteReachesOutButTheClientCannotReachIn() async throws {
        if let reason = NetnsLab.unavailableReason {
            print("skipping the NAT lab test: \(reason); it runs as root where `ip netns` works (CI)")
            return
        }
        // A prefix of this run only, so parallel runs and the host are never touched.
        let prefix = "wt\(String(getpid() % 1000, radix: 36))-"
        let env = ["WARREN_NETNS_PREFIX": prefix]
        let lab = NetnsLab.script
        do {
            try await self.exercise(lab: lab, env: env, prefix: prefix)
        } catch {
            _ = try? await runAsync([lab, "down"], environment: env)
            throw error
        }
        // "down" leaves nothing behind.
        _ = try await runAsync([lab, "down"], environment: env)
        let left = try await runAsync(["ip", "netns", "list"])
        #expect(!left.output.contains(prefix))
    }

    func exercise(lab: String, env: [String: String], prefix: String) async throws {
        let up = try await runAsync([lab, "up"], environment: env)
        try #require(up.status == 0, "netns.sh up failed: \(up.output)")

        // The site connects out to the public side, which sees the router's address (NAT).
        let publicListener = Process()
        publicListener.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        publicListener.arguments = [lab, "exec", "public", "timeout", "10", "python3", "-c", Self.listener, "198.18.0.10", "7000"]
        publicListener.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        try publicListener.run()
        var outbound = (status: Int32(-1), output: "")
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(200))
            outbound = try await runAsync([lab, "exec", "site", "timeout", "5", "python3", "-c", Self.connector, "198.18.0.10", "7000"], environment: env)
            if outbound.status == 0 { break }
        }
        await waitForExit(publicListener)
        #expect(outbound.status == 0, "the site could not reach the public side: \(outbound.output)")
        #expect(outbound.output.trimmingCharacters(in: .whitespacesAndNewlines) == "198.18.0.1")

        // The client can't open a connection to the site, though it has a route there.
        let siteListener = Process()
        siteListener.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        siteListener.arguments = [lab, "exec", "site", "timeout", "6", "python3", "-c", Self.listener, "10.213.0.2", "7001"]
        siteListener.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        try siteListener.run()
        try await Task.sleep(for: .milliseconds(500))
        let inbound = try await runAsync([lab, "exec", "client", "timeout", "5", "python3", "-c", Self.connector, "10.213.0.2", "7001"], environment: env)
        #expect(inbound.status != 0, "the client reached the site directly: \(inbound.output)")
        await waitForExit(siteListener)
    }
}
