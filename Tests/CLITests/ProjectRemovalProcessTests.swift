import Foundation
import Gossip
import Link
import MeshNode
import Testing
@testable import Trust

/// `project remove-member` run by an admin outside the project: the remaining member with the
/// smallest node ID rotates the key (only members hold it). Real processes: a founder (admin) and
/// three runners, B, C and D, in project P; the admin removes D.
@Suite(.serialized) struct ProjectRemovalProcessTests {
    @Test("An admin outside a project removes a member: the smallest remaining member rotates the key without it")
    func adminOutsideTheProjectRemovesAMember() async throws {
        let lab = try Lab()
        do {
            try await remove(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
        await lab.tearDown()
    }

    private func remove(_ lab: Lab) async throws {
        let net = "127.\(Int.random(in: 100...199)).\(Int.random(in: 1...254))"
        let founder = "\(net).1:\(try freePort(on: "\(net).1"))"
        let founded = try await lab.warren(["mesh", "init", "--advertise", founder], home: lab.gatewayHome)
        try #require(founded.status == 0, "\(founded.stderr)")
        let a = try lab.startNode("admin", ["--state-dir", lab.gatewayHome, "--listen", founder])
        try #require(await eventually(within: 30) { try await lab.warren(["peers"], home: lab.gatewayHome).status == 0 }, "\(a.log)")
        var homes: [String] = []
        for (i, name) in ["b", "c", "d"].enumerated() {
            let token = try await lab.warren(["invite", "--role", "runner"], home: lab.gatewayHome)
            try #require(token.status == 0, "\(token.stderr)")
            let host = "\(net).\(i + 2)"
            let home = lab.root + "/" + name
            _ = try lab.startNode(name, ["--state-dir", home, "--listen", "\(host):\(try freePort(on: host))",
                                         "--join", token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
            homes.append(home)
        }
        var ids: [String] = []
        for home in homes {
            try #require(await eventually(within: 30) { try await lab.warren(["node", "id"], home: home).status == 0 })
            ids.append(try await lab.warren(["node", "id"], home: home).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let (homeB, homeD) = (homes[0], homes[2])
        let (idB, idC, idD) = (ids[0], ids[1], ids[2])
        for home in homes {
            let knowsAll = try await eventually(within: 30) {
                let members = try await lab.warren(["mesh", "members", "--json"], home: home).stdout
                return ids.allSatisfy { members.contains($0) }
            }
            try #require(knowsAll, "a runner never saw every member")
        }
        #expect(try await lab.warren(["project", "create", "P"], home: homeB).status == 0)
        for id in [idC, idD] {
            let added = try await lab.warren(["project", "add-member", "P", id], home: homeB)
            try #require(added.status == 0, "\(added.stderr)")
        }
        func project(_ home: String) async throws -> [String: Any]? {
            HostileLab.objects(try await lab.warren(["project", "list", "--json"], home: home).stdout).first { $0["name"] as? String == "P" }
        }
        let everyone = [lab.gatewayHome] + homes
        for home in everyone {
            let seen = try await eventually(within: 30) { (try await project(home)?["members"] as? [String])?.count == 3 }
            try #require(seen, "P with three members never reached \(home)")
        }
        let before = try #require(try await project(lab.gatewayHome)?["generation"] as? Int)

        // The admin is not in P: it cannot rotate P's key, a member must.
        let removal = try await lab.warren(["project", "remove-member", "P", idD], home: lab.gatewayHome)
        #expect(removal.status == 0, "\(removal.stderr)")
        for home in everyone {
            let rotated = try await eventually(within: 30) {
                guard let p = try await project(home), let g = p["generation"] as? Int, let members = p["members"] as? [String] else { return false }
                return g == before + 1 && Set(members) == [idB, idC]
            }
            let seen = String(describing: try await project(home))
            #expect(rotated, "\(home) never saw P rotated once without D: \(seen)")
        }
        let rotator = try #require([NodeID(idB), NodeID(idC)].compactMap { $0 }.min())
        let said = a.log.split(separator: "\n").filter { $0.contains("a project member rotated the key") }
        #expect(said.count == 1 && said.first?.contains("rotator=\(rotator.short)") == true, "\(said)")

        // D knows it is out: it holds no key of the new generation.
        #expect(try await project(homeD)?["isMember"] as? Bool == false)
    }
}
