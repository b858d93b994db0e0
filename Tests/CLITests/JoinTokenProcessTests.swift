import Foundation
import Testing

/// `node start --join-file` and `WARREN_JOIN_TOKEN`: a node joins with a token that never sits in
/// its argv, so `ps` and /proc/PID/cmdline show none. Real processes on a random loopback /24.
@Suite(.serialized) struct JoinTokenProcessTests {
    @Test("A token from --join-file or WARREN_JOIN_TOKEN admits the node and shows in no command line")
    func tokenOutOfArgv() async throws {
        let lab = try Lab()
        do {
            try await join(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
    }

    private func join(_ lab: Lab) async throws {
        let net = "127.\(Int.random(in: 100...199)).\(Int.random(in: 1...254))"
        let founder = "\(net).1:\(try freePort(on: "\(net).1"))"
        let founded = try await lab.warren(["mesh", "init", "--advertise", founder], home: lab.gatewayHome)
        try #require(founded.status == 0, "\(founded.stderr)")
        let a = try lab.startNode("a", ["--state-dir", lab.gatewayHome, "--listen", founder])
        try #require(await eventually(within: 30) { try await lab.warren(["peers"], home: lab.gatewayHome).status == 0 }, "\(a.log)")

        func invite() async throws -> String {
            let token = try await lab.warren(["invite", "--role", "runner"], home: lab.gatewayHome)
            try #require(token.status == 0, "\(token.stderr)")
            return token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // From a file, mode 0600.
        let fileToken = try await invite()
        let file = lab.root + "/join-token"
        try #require(FileManager.default.createFile(atPath: file, contents: Data((fileToken + "\n").utf8), attributes: [.posixPermissions: 0o600]))
        let bHome = lab.root + "/b"
        let b = try lab.startNode("b", ["--state-dir", bHome, "--listen", "\(net).2:\(try freePort(on: "\(net).2"))", "--join-file", file])
        // From the environment.
        let envToken = try await invite()
        lab.extraEnvironment["WARREN_JOIN_TOKEN"] = envToken
        let cHome = lab.root + "/c"
        let c = try lab.startNode("c", ["--state-dir", cHome, "--listen", "\(net).3:\(try freePort(on: "\(net).3"))"])
        lab.extraEnvironment["WARREN_JOIN_TOKEN"] = nil

        for (node, home, token) in [(b, bHome, fileToken), (c, cHome, envToken)] {
            let id = try await eventually(within: 30) { try await lab.warren(["node", "id"], home: home).status == 0 }
            try #require(id, "\(node.name) has no identity\n\(node.log)")
            let nodeID = try await lab.warren(["node", "id"], home: home).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let admitted = try await eventually(within: 30) {
                try await lab.warren(["mesh", "members", "--json"], home: lab.gatewayHome).stdout.contains(nodeID)
            }
            #expect(admitted, "\(node.name) was not admitted\n\(node.log)")
            // What `ps` shows: the command line, NUL-separated in /proc.
            let cmdline = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(node.pid)/cmdline")), as: UTF8.self)
            #expect(cmdline.contains("node") && !cmdline.isEmpty, "no command line read for \(node.name)")
            #expect(!cmdline.contains(token) && !cmdline.contains("warren1."), "\(node.name)'s command line holds its token: \(cmdline)")
            let ps = try await launch(URL(fileURLWithPath: "/usr/bin/env"), ["ps", "-ww", "-o", "args=", "-p", "\(node.pid)"])
            #expect(ps.status == 0 && ps.stdout.contains("node start"), "ps: \(ps.stdout) \(ps.stderr)")
            #expect(!ps.stdout.contains(token), "ps shows \(node.name)'s token: \(ps.stdout)")
        }

        // A file without a token is refused at start, saying what to do.
        try "not a token\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try await lab.warren(["node", "start", "--state-dir", lab.root + "/d", "--listen", "\(net).4:\(try freePort(on: "\(net).4"))",
                                        "--join-file", file])
        #expect(bad.status != 0 && bad.stderr.contains("does not hold an invite token"), "\(bad.status) \(bad.stderr)")
    }
}
