import Foundation
import Testing

/// A node whose state database was emptied, removed or swapped under its identity refuses to
/// start, says what happened and how to recover, and writes nothing.
@Suite struct LostStateProcessTests {
    @Test func anEmptiedDatabaseUnderAnExistingIdentityIsRefusedAtStart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wls-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = "127.\(Int.random(in: 1...254)).\(Int.random(in: 1...254)).\(Int.random(in: 2...254))"
        let founded = try await WarrenProcess.run(["mesh", "init", "--state-dir", dir, "--advertise", "\(host):7946"], timeout: 60)
        #expect(founded.status == 0, "\(founded.stderr)")
        let database = dir + "/state.sqlite"
        // Truncated to 0 bytes, as a full disk or a careless copy leaves it.
        let handle = try #require(FileHandle(forWritingAtPath: database))
        try handle.truncate(atOffset: 0)
        try handle.close()
        let r = try await WarrenProcess.run(["node", "start", "--state-dir", dir, "--listen", "\(host):0"], timeout: 60)
        #expect(r.status == 1)
        #expect(r.stderr.contains("is empty (0 bytes)"), "\(r.stderr)")
        #expect(r.stderr.contains("Nothing was changed"), "\(r.stderr)")
        #expect(r.stderr.contains("join again with a new invite token"), "\(r.stderr)")
        let size = try FileManager.default.attributesOfItem(atPath: database)[.size] as? Int
        #expect(size == 0)

        // Removed altogether: refused too, and not created again.
        try FileManager.default.removeItem(atPath: database)
        let gone = try await WarrenProcess.run(["node", "start", "--state-dir", dir, "--listen", "\(host):0"], timeout: 60)
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("is missing"), "\(gone.stderr)")
        #expect(!FileManager.default.fileExists(atPath: database))
    }
}
