import Foundation
import Testing

@Suite struct ConfigCheckCommand {
    @Test func validFilePrintsTheResolvedServiceAndExitsZero() async throws {
        let r = try await WarrenProcess.run(["config", "check", "-f", "examples/service.dstack.yml", "--secret", "GATEWAY_IP=23.100.30.60"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("23.100.30.60"))
        #expect(r.stdout.contains("5001 → 8000"))
        #expect(r.stdout.contains("python -m http.server 8000"))
    }

    @Test func jsonOutput() async throws {
        let r = try await WarrenProcess.run(["config", "check", "-f", "examples/guide-gateway-address.dstack.yml", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(object?["externalPort"] as? Int == 80)
        #expect(object?["appPort"] as? Int == 8000)
        #expect(object?["gateway"] as? String == "23.100.30.60")
    }

    @Test func invalidFileExitsOneWithFileLineColumn() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warren-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bad.yml")
        try "type: service\nport: \"1:2:3\"\ncommands: [x]\n".write(to: file, atomically: true, encoding: .utf8)
        let r = try await WarrenProcess.run(["config", "check", "-f", file.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("bad.yml:2:7: error: port \"1:2:3\" is not a port"))
        #expect(r.stdout.isEmpty)
    }

    @Test func unknownSecretExitsOneNamingIt() async throws {
        let r = try await WarrenProcess.run(["config", "check", "-f", "examples/service.dstack.yml", "--project", "web"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("unknown secret `GATEWAY_IP` in project `web`"))
    }

    @Test(arguments: [["config", "check"], ["config", "check", "-f", "x", "--bogus"], ["config", "check", "-f", "x", "--secret", "novalue"]])
    func usageErrorsExitTwo(_ args: [String]) async throws {
        let r = try await WarrenProcess.run(args)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("Usage:") || r.stderr.contains("Error:"))
    }
}
