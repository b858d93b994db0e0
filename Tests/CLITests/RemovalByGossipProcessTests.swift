import Foundation
import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

/// A removal is acted on by every node that learns of it by gossip, not only by the admin that
/// wrote it: real `warren` processes, a founded mesh of four nodes on random loopback addresses.
@Suite(.serialized)
struct RemovalByGossipProcessTests {
    typealias Lab = AdmissionProcessTests

    @Test("Four nodes: an admin outside the project removes a member; the others close its links, rotate the key without it, and a later secret is unreadable by it")
    func removalActedOnByEveryNode() async throws {
        let root = try Lab.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let net = "127.\(Int.random(in: 100...199)).\(Int.random(in: 1...254))"
        let (dirA, dirC, dirD, dirR) = (root + "/a", root + "/c", root + "/d", root + "/r")
        let a = try Lab.found(dirA, host: "\(net).1")
        var nodes = [a]
        defer { for n in nodes { n.stop() } }
        for (dir, host) in [(dirC, "\(net).2"), (dirD, "\(net).3"), (dirR, "\(net).4")] {
            let node = try WarrenNodeProcess(stateDirectory: dir, listen: "\(host):\(Lab.port)", join: [try Lab.invite(dirA)], logLevel: "info")
            nodes.append(node)
            #expect(node.waitUntilServing())
        }
        let (idC, idD, idR) = (try Lab.nodeID(dirC), try Lab.nodeID(dirD), try Lab.nodeID(dirR))
        #expect(try Lab.pollUntil {
            let members = try Lab.warren(["mesh", "members", "--state-dir", dirD, "--json"]).stdout
            return [idC, idD, idR].allSatisfy { members.contains($0) }
        })

        // C's project, with D and R; A (the admin) is not a member, so it can't rotate the key.
        #expect(try Lab.warren(["project", "create", "P", "--state-dir", dirC]).status == 0)
        for id in [idD, idR] {
            let added = try Lab.warren(["project", "add-member", "P", id, "--state-dir", dirC])
            #expect(added.status == 0, "\(added.stderr)")
        }
        #expect(try Lab.pollUntil { try Self.project(dirR)?.isMember == true })
        let before = try #require(try Self.project(dirC)).generation

        let removal = try Lab.warren(["mesh", "remove", idR, "--state-dir", dirA])
        #expect(removal.status == 0, "\(removal.stderr)")
        // C or D (whichever has the smallest ID) rotates P's key without R, having heard of the
        // removal by gossip only.
        #expect(try Lab.pollUntil(timeout: 30) {
            guard let p = try Self.project(dirD) else { return false }
            return p.generation > before && !p.members.contains(idR)
        })
        // Every other node closes R's links and keeps them closed.
        for dir in [dirC, dirD] {
            #expect(try Lab.pollUntil(timeout: 30) {
                let peers = try JSONDecoder().decode([PeerInfo].self, from: Data(Lab.warren(["peers", "--state-dir", dir, "--json"]).stdout.utf8))
                return peers.first { $0.id == idR }.map { !$0.linked && $0.state == "removed" } ?? true
            })
        }
        let later = "after-removal-\(UUID().uuidString)"
        #expect(try Lab.warren(["secrets", "add", "LATER", later, "--project", "P", "--state-dir", dirC]).status == 0)
        #expect(try Lab.pollUntil { try Lab.warren(["secrets", "list", "--project", "P", "--state-dir", dirD]).stdout.contains("LATER") })
        try await Task.sleep(for: .seconds(2))
        for n in nodes { n.stop() }
        nodes = []

        // R's database holds no key that opens the later secret, and no file of it holds the value.
        let localR = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dirR).keyPair)
        let bookR = try await Lab.book(dirR)
        #expect(throws: ProjectError.self) { try bookR.readSecret("LATER", project: "P", local: localR) }
        for file in try Lab.files(under: dirR) {
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)).range(of: Data(later.utf8)) == nil)
        }
        // D, a member, reads it from its own database.
        let localD = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dirD).keyPair)
        #expect(try await Lab.book(dirD).readSecret("LATER", project: "P", local: localD) == later)
    }

    static func project(_ dir: String) throws -> ProjectInfo? {
        let out = try AdmissionProcessTests.warren(["project", "list", "--json", "--state-dir", dir]).stdout
        return (try? JSONDecoder().decode([ProjectInfo].self, from: Data(out.utf8)))?.first { $0.name == "P" }
    }
}
