import Foundation
import Glibc
import Gossip
import Link
import NIOCore
@testable import MeshNode
@testable import Trust
import TrustTestSupport
import Provisioning
import Testing

/// The local backend's process and address handling, with a stand-in for `warren` (a shell script
/// that records its arguments and sleeps), so no mesh is needed. The CLI tests run the real thing.
@Suite struct LocalBackendTests {
    final class Sandbox {
        let root: String
        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("wlb-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }
        deinit {
            // A test that failed half-way leaves no fake gateway running.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/gateways")) ?? [] {
                if let text = try? String(contentsOfFile: root + "/gateways/" + name + "/gateway.pid", encoding: .utf8),
                   let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                    kill(-pid, SIGKILL)
                }
            }
            try? FileManager.default.removeItem(atPath: root)
        }

        /// A fake `warren` that writes its arguments beside its state and then sleeps; with
        /// `ignoreTERM` it has to be killed.
        func fakeWarren(ignoreTERM: Bool = false) throws -> String {
            let path = root + "/fake-warren"
            let script = """
            #!/bin/sh
            \(ignoreTERM ? "trap '' TERM" : "")
            dir=""
            prev=""
            for a in "$@"; do [ "$prev" = "--state-dir" ] && dir="$a"; prev="$a"; done
            printf '%s\\n' "$@" > "$dir/arguments"
            printf '%s\\n' "${WARREN_JOIN_TOKEN:-}" > "$dir/join-token-env"
            echo "fake gateway up"
            while true; do sleep 1; done
            """
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
            return path
        }

        /// `grace`: long enough for a busy machine to run the SIGTERM, unless the test wants a kill.
        func backend(binary: String, address: String? = nil, candidates: [String] = ["127.0.0.64"], grace: Duration = .seconds(10)) -> LocalBackend {
            LocalBackend(configuration: .init(
                directory: root + "/gateways", binary: binary, address: address, candidates: candidates, stopGrace: grace))
        }
    }

    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [ProvisioningEvent] = []
        func append(_ event: ProvisioningEvent) { lock.withLock { list.append(event) } }
        var all: [ProvisioningEvent] { lock.withLock { list } }
    }

    static func waitForFile(_ path: String) async throws {
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: path) {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func createStartsADetachedGatewayNodeAndDeleteStopsItAndRemovesItsState() async throws {
        let sandbox = try Sandbox()
        let backend = sandbox.backend(binary: try sandbox.fakeWarren())
        let events = Events()
        let spec = GatewaySpec(name: "gw-unit-a", joinToken: "127.0.0.63:7420", meshPort: 47_420, domains: ["a.example.com"])
        let made = try await backend.create(spec) { events.append($0) }

        #expect(made.backend == "local")
        #expect(made.address == "127.0.0.64")
        #expect(made.resources["listen"] == "127.0.0.64:47420")
        let pid = try #require(made.resources["pid"].flatMap { pid_t($0) })
        let dir = backend.directory(of: "gw-unit-a")
        try await Self.waitForFile(dir + "/arguments")
        let arguments = try String(contentsOfFile: dir + "/arguments", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(arguments == [
            "node", "start", "--state-dir", dir, "--listen", "127.0.0.64:47420", "--gateway", "--public-address", "127.0.0.64",
            "--name", "gw-unit-a", "--domain", "a.example.com", "--join", "127.0.0.63:7420",
        ])
        // Its own session: a Ctrl-C in the creator's terminal never reaches it.
        #expect(getsid(pid) == pid)
        // The node's identity was made first, so the caller knows which member to wait for.
        let identity = try NodeIdentity.loadOrCreate(directory: dir)
        #expect(made.resources["node"] == identity.id.description)
        #expect(events.all.contains(.created(kind: "state directory", id: dir)))
        #expect(events.all.contains(.addressAssigned("127.0.0.64")))

        let listed = try await backend.list()
        #expect(listed.map(\.name) == ["gw-unit-a"])
        #expect(listed.first?.status == "running")
        #expect(backend.logTail("gw-unit-a").contains("fake gateway up"))

        try await backend.delete(made) { events.append($0) }
        #expect(!ProcessGroup.isAlive(pgid: pid))
        #expect(!FileManager.default.fileExists(atPath: dir))
        #expect(events.all.contains(.deleted(kind: "process", id: "pid \(pid)")))
        #expect(try await backend.list().isEmpty)
        await #expect(throws: ProvisioningError.notFound("gw-unit-a")) { try await backend.delete(made) { _ in } }
    }

    @Test func anInviteTokenReachesTheGatewayThroughItsEnvironmentNeverItsArguments() async throws {
        let sandbox = try Sandbox()
        let backend = sandbox.backend(binary: try sandbox.fakeWarren())
        let token = InviteToken.prefix + "AAAAsecretpartOfTheToken_-"
        let made = try await backend.create(GatewaySpec(name: "gw-unit-t", joinToken: token, meshPort: 47_423)) { _ in }
        let pid = try #require(made.resources["pid"].flatMap { pid_t($0) })
        let dir = backend.directory(of: "gw-unit-t")
        try await Self.waitForFile(dir + "/join-token-env")
        try await Task.sleep(for: .milliseconds(100))
        // What `ps` shows every user: the process's command line, NUL-separated.
        let cmdline = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")), as: UTF8.self)
        #expect(cmdline.contains("gw-unit-t"), "read the gateway's command line: \(cmdline)")
        #expect(!cmdline.contains(token) && !cmdline.contains("--join"), "\(cmdline)")
        let arguments = try String(contentsOfFile: dir + "/arguments", encoding: .utf8)
        #expect(!arguments.contains(token), "\(arguments)")
        // The node reads it from WARREN_JOIN_TOKEN.
        #expect(try String(contentsOfFile: dir + "/join-token-env", encoding: .utf8) == token + "\n")
        try await backend.delete(made) { _ in }
    }

    @Test func aGatewayThatIgnoresSIGTERMIsKilledAfterTheGrace() async throws {
        let sandbox = try Sandbox()
        let backend = sandbox.backend(binary: try sandbox.fakeWarren(ignoreTERM: true), candidates: ["127.0.0.65"], grace: .milliseconds(300))
        let made = try await backend.create(GatewaySpec(name: "gw-unit-b", joinToken: "127.0.0.63:7420", meshPort: 47_421)) { _ in }
        let pid = try #require(made.resources["pid"].flatMap { pid_t($0) })
        try await Self.waitForFile(backend.directory(of: "gw-unit-b") + "/arguments")
        let events = Events()
        try await backend.delete(made) { events.append($0) }
        #expect(!ProcessGroup.isAlive(pgid: pid))
        #expect(events.all.first.map { "\($0)".contains("killed") } == true, "\(events.all)")
    }

    @Test func addressesInUseAreSkippedAndAGivenOneIsChecked() async throws {
        let sandbox = try Sandbox()
        let binary = try sandbox.fakeWarren()
        // 127.0.0.66:47422 is held by someone else; a local gateway holds 127.0.0.67.
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        // NIO's address, as `LocalBackend` binds: sockaddr_in's members are not visible here.
        let bound = try SocketAddress(ipAddress: "127.0.0.66", port: 47_422).withSockAddr { bind(holder, $0, socklen_t($1)) }
        try #require(bound == 0)
        let first = sandbox.backend(binary: binary, candidates: ["127.0.0.67"])
        let made = try await first.create(GatewaySpec(name: "gw-unit-c", joinToken: "127.0.0.63:7420", meshPort: 47_422)) { _ in }

        let picker = sandbox.backend(binary: binary, candidates: ["127.0.0.66", "127.0.0.67", "127.0.0.68"])
        #expect(try picker.pickAddress(port: 47_422) == "127.0.0.68")

        let exhausted = sandbox.backend(binary: binary, candidates: ["127.0.0.66", "127.0.0.67"])
        #expect(throws: ProvisioningError.self) { try exhausted.pickAddress(port: 47_422) }

        for (address, wording) in [("127.0.0.67", "another local gateway uses 127.0.0.67"), ("127.0.0.66", "127.0.0.66:47422 is in use"),
                                   ("10.0.0.1", "is not a loopback IPv4 address")] {
            let given = sandbox.backend(binary: binary, address: address)
            #expect {
                try given.pickAddress(port: 47_422)
            } throws: { error in
                "\(error)".contains(wording)
            }
        }
        await #expect(throws: ProvisioningError.self) {
            _ = try await picker.create(GatewaySpec(name: "gw-unit-c", joinToken: "127.0.0.63:7420", meshPort: 47_422)) { _ in }
        }
        await #expect(throws: ProvisioningError.self) {
            _ = try await picker.create(GatewaySpec(name: "Bad Name", joinToken: "127.0.0.63:7420", meshPort: 47_422)) { _ in }
        }
        try await first.delete(made) { _ in }
    }
}
