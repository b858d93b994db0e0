import Foundation
@testable import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

/// The marker beside `node.key` that records a node's mesh and role outside its database.
@Suite struct StateMarkerTests {
    @Test func aForeignOrMeshlessDatabaseUnderAMarkedIdentityIsRefused() async throws {
        let dir = try StateTestDirectory("warren-marker")
        defer { dir.remove() }
        let id = try await MeshSetup.initialize(stateDirectory: dir.path, addresses: ["127.0.0.1:1"], logger: .quiet("init"))
        let marker = try #require(try MeshSetup.readMarker(stateDirectory: dir.path))
        #expect(marker == MeshSetup.StateMarker(meshID: id, role: .admin))
        try MeshSetup.checkDatabase(stateDirectory: dir.path)
        try MeshSetup.checkMarker(stateDirectory: dir.path, stored: id)

        // A database of no mesh (a fresh one) or of another mesh.
        #expect(throws: MeshSetupError.self) { try MeshSetup.checkMarker(stateDirectory: dir.path, stored: nil) }
        let otherDir = try StateTestDirectory("warren-marker-other")
        defer { otherDir.remove() }
        let other = try await MeshSetup.initialize(stateDirectory: otherDir.path, addresses: [], logger: .quiet("other"))
        do {
            try MeshSetup.checkMarker(stateDirectory: dir.path, stored: other)
            Issue.record("a database of another mesh was taken")
        } catch {
            #expect("\(error)".contains("belongs to another mesh, \(other)"))
            #expect("\(error)".contains("mesh \(id) as admin"))
        }
        // `mesh init` again on the emptied state: refused before anything is written.
        try Data().write(to: URL(fileURLWithPath: dir.path + "/state.sqlite"))
        await #expect(throws: MeshSetupError.self) {
            _ = try await MeshSetup.initialize(stateDirectory: dir.path, addresses: [], logger: .quiet("again"))
        }
        #expect(try FileManager.default.attributesOfItem(atPath: dir.path + "/state.sqlite")[.size] as? Int == 0)
    }

    @Test func stateFromBeforeTheMarkerGetsOne() async throws {
        let dir = try StateTestDirectory("warren-marker-old")
        defer { dir.remove() }
        let id = try await MeshSetup.initialize(stateDirectory: dir.path, addresses: [], logger: .quiet("init"))
        try FileManager.default.removeItem(atPath: MeshSetup.markerPath(dir.path))
        try MeshSetup.checkMarker(stateDirectory: dir.path, stored: id)
        #expect(try MeshSetup.readMarker(stateDirectory: dir.path)?.meshID == id)
    }
}
