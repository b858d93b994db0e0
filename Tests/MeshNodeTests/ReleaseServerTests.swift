import Foundation
import Logging
@testable import MeshNode
import Provisioning
import Testing

/// A gateway serves the release it was installed from, by hash, to the gateways made after it.
@Suite struct ReleaseServerTests {
    /// A state directory as a first boot leaves it: the tarball and the SHA-256 it was checked against.
    static func installedState(_ bytes: [UInt8], recorded: String? = nil) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wrs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory + "/" + FirstBootScript.releaseTarballFile, contents: Data(bytes))
        let sha = recorded ?? ReleaseServer.Release(bytes: bytes).sha256
        try (sha + "\n").write(toFile: directory + "/" + FirstBootScript.releaseSHA256File, atomically: true, encoding: .utf8)
        return directory
    }

    /// `curl` the URL to a file: its exit status and the bytes.
    static func download(_ url: String) throws -> (status: Int32, bytes: [UInt8]) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("wrs-get-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "-sS", "--fail", "--max-time", "10", "-o", out, url]
        curl.standardError = FileHandle.nullDevice
        try curl.run()
        curl.waitUntilExit()
        return (curl.terminationStatus, FileManager.default.contents(atPath: out).map { Array($0) } ?? [])
    }

    @Test func theReleaseIsServedByItsHashAndAnotherHashIsNotFound() async throws {
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let directory = try Self.installedState(bytes)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let release = try #require(try ReleaseServer.installed(stateDirectory: directory))
        #expect(release.sha256 == ReleaseServer.hex(SHA256Check.digest(bytes)))
        #expect(release.size == bytes.count)

        let host = "127.\(Int.random(in: 16...250)).\(Int.random(in: 1...250)).\(Int.random(in: 1...250))"
        let server = try await ReleaseServer.bind(host: host, port: 0, release: release, logger: Logger(label: "test.release"))
        defer { Task { await server.close() } }
        let port = try #require(server.port)
        let served = try Self.download("http://\(host):\(port)\(ReleaseServer.path(sha256: release.sha256))")
        #expect(served.status == 0 && served.bytes == bytes)
        // Another hash is another release: not this node's, so not found (curl --fail: 22).
        let other = String(repeating: "ab", count: 32)
        #expect(try Self.download("http://\(host):\(port)\(ReleaseServer.path(sha256: other))").status == 22)
        await server.close()
    }

    /// A tarball that no longer has the hash the first boot checked is not served, and the
    /// refusal names both hashes; a node a first boot did not install has nothing to serve.
    @Test func aChangedTarballIsNotServed() throws {
        let recorded = String(repeating: "0f", count: 32)
        let directory = try Self.installedState([1, 2, 3], recorded: recorded)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let actual = ReleaseServer.Release(bytes: [1, 2, 3]).sha256
        do {
            _ = try ReleaseServer.installed(stateDirectory: directory)
            Issue.record("a changed tarball was accepted")
        } catch {
            #expect(error.description.contains(recorded) && error.description.contains(actual) && error.description.contains("not served"), "\(error)")
        }
        try FileManager.default.removeItem(atPath: directory + "/" + FirstBootScript.releaseTarballFile)
        #expect(try ReleaseServer.installed(stateDirectory: directory) == nil)
    }
}

/// SHA-256 computed apart from the server's own code, with `sha256sum`.
enum SHA256Check {
    static func digest(_ bytes: [UInt8]) -> [UInt8] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wrs-sum-\(UUID().uuidString.prefix(8))").path
        FileManager.default.createFile(atPath: file, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let sum = Process(), pipe = Pipe()
        sum.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sum.arguments = ["sha256sum", file]
        sum.standardOutput = pipe
        try? sum.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        sum.waitUntilExit()
        let hex = Array(text.prefix(64))
        return stride(from: 0, to: hex.count, by: 2).compactMap { UInt8(String(hex[$0...$0 + 1]), radix: 16) }
    }
}
