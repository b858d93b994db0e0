import Foundation
import Gossip
import Link
import MeshNode
import Sodium
import Testing
import Trust

/// A hostile admitted member (`HostileMember`, a runner in the test process) against a founded
/// mesh of real `warren node` processes: a gateway and two runners, the first serving a service
/// through the gateway and holding project P with the second. Each attack is one test case: what
/// the member sends is refused on every node (the refusal counter on each node's metrics endpoint
/// grows for the rule that refused it, and each node logs it once per author and rule), nothing of
/// it is merged (what each node shows of leases, gateways, members and projects is unchanged), and
/// the victim's service answers through the gateway before and after.
@Suite(.serialized) struct HostileMemberProcessTests {
    enum Attack: String, CaseIterable, Sendable, CustomStringConvertible {
        case leaseCallsWithTheVictimsRunID, gatewayEntries, leaseEntryForAnotherAddress, domainClaimForAnotherHolder
        case removalByARunner, roleChange, projectItIsNotIn
        case futureDated, replayedAfterSuperseded, replayedAfterDelete, removedNodesEntriesRelayed, secretOfAProjectItIsNotIn

        var description: String { rawValue }
    }

    @Test("A hostile runner's write is refused on every node, counted, logged once, never merged; the victim keeps serving", arguments: Attack.allCases)
    func hostileWriteIsRefusedEverywhere(_ attack: Attack) async throws {
        let mesh = try await HostileMesh.shared.acquire()
        do {
            try await mesh.check(attack)
        } catch {
            await HostileMesh.shared.release()
            throw error
        }
        await HostileMesh.shared.release()
    }

    @Test("A node that joins after a delete's tombstone was collected gets its floor and refuses the deleted entry sent again")
    func aNodeJoiningAfterTheCollectionRefusesTheReplay() async throws {
        let mesh = try await HostileMesh.shared.acquire()
        do {
            try await mesh.checkLateJoiner()
        } catch {
            await HostileMesh.shared.release()
            throw error
        }
        await HostileMesh.shared.release()
    }
}

/// The mesh the attacks run against, made once for every case of the suite and torn down after
/// the last one.
actor HostileMesh {
    static let shared = HostileMesh()

    private var made: Task<HostileLab, any Error>?
    private var released = 0

    func acquire() async throws -> HostileLab {
        if made == nil { made = Task { try await HostileLab.make() } }
        return try await made!.value
    }

    func release() async {
        released += 1
        // One release per attack and one for the late joiner's test.
        guard released == HostileMemberProcessTests.Attack.allCases.count + 1 else { return }
        if let lab = try? await made?.value { await lab.tearDown() }
    }
}

final class HostileLab: Sendable {
    struct Node {
        var name: String
        var home: String
        var mesh: String
        var metrics: String
        var process: NodeProcess
        var log: String { process.log }
    }

    let lab: Lab
    let nodes: [Node]
    let gateway: String
    let servicePort: Int
    let victimID: String
    let victimRunID: String
    let victimRunName: String
    let hostile: HostileMember
    /// A member admitted, then removed by the admin, whose signed entries the hostile one relays.
    let removed: HostileMember

    private init(lab: Lab, nodes: [Node], gateway: String, servicePort: Int, victimID: String, victimRunID: String,
                 victimRunName: String, hostile: HostileMember, removed: HostileMember) {
        self.removed = removed
        self.lab = lab
        self.nodes = nodes
        self.gateway = gateway
        self.servicePort = servicePort
        self.victimID = victimID
        self.victimRunID = victimRunID
        self.victimRunName = victimRunName
        self.hostile = hostile
    }

    func tearDown() async {
        await hostile.shutdown()
        await removed.shutdown()
        await lab.tearDown()
    }

    static func make() async throws -> HostileLab {
        let lab = try Lab(leaseTTL: 600)
        do {
            return try await make(lab)
        } catch {
            await lab.tearDown()
            throw error
        }
    }

    private static func make(_ lab: Lab) async throws -> HostileLab {
        let net = "127.\(Int.random(in: 100...199)).\(Int.random(in: 1...254))"
        let gw = "\(net).1"
        let gwMesh = "\(gw):\(try freePort(on: gw))"
        let founded = try await lab.warren(["mesh", "init", "--advertise", gwMesh], home: lab.gatewayHome)
        try #require(founded.status == 0, "\(founded.stderr)")
        var nodes: [HostileLab.Node] = []
        let gwMetrics = "\(gw):\(try freePort(on: gw))"
        let gateway = try lab.startNode("gateway", [
            "--state-dir", lab.gatewayHome, "--listen", gwMesh, "--gateway", "--public-address", gw, "--name", "adv-gw",
            "--metrics", gwMetrics,
        ])
        nodes.append(Node(name: "gateway", home: lab.gatewayHome, mesh: gwMesh, metrics: gwMetrics, process: gateway))
        try #require(await eventually(within: 30) { try await lab.warren(["peers"], home: lab.gatewayHome).status == 0 }, "\(gateway.log)")
        for (name, host) in [("victim", "\(net).2"), ("other", "\(net).3")] {
            let token = try await lab.warren(["invite", "--role", "runner"], home: lab.gatewayHome)
            try #require(token.status == 0, "\(token.stderr)")
            let home = lab.root + "/" + name
            let (listen, metrics) = ("\(host):\(try freePort(on: host))", "\(host):\(try freePort(on: host))")
            let process = try lab.startNode(name, [
                "--state-dir", home, "--listen", listen, "--metrics", metrics,
                "--join", token.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            ])
            nodes.append(Node(name: name, home: home, mesh: listen, metrics: metrics, process: process))
        }
        for node in nodes.dropFirst() {
            let seesGateway = try await eventually(within: 30) {
                try await lab.warren(["gateway", "list"], home: node.home).stdout.contains("adv-gw")
            }
            try #require(seesGateway, "\(node.name) never listed the gateway\n\(node.log)")
        }
        let (victim, other) = (nodes[1], nodes[2])
        let victimID = try await lab.warren(["node", "id"], home: victim.home).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let otherID = try await lab.warren(["node", "id"], home: other.home).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        // The victim's service, through the gateway.
        let port = try freePort(on: gw)
        let run = try await lab.run("victim", gateway: gw, external: port, home: victim.home)
        try #require(await fetch("http://\(gw):\(port)/")?.contains("victim.txt") == true, "the victim's service does not answer")
        let leases = try await lab.warren(["leases", "--json"], home: lab.gatewayHome).stdout
        let runID = try #require(Self.objects(leases).first { $0["run"] as? String == run.name }?["runID"] as? String, "\(leases)")

        // The victim's project, shared with the other runner.
        #expect(try await lab.warren(["project", "create", "P"], home: victim.home).status == 0)
        let added = try await lab.warren(["project", "add-member", "P", otherID], home: victim.home)
        try #require(added.status == 0, "\(added.stderr)")
        #expect(try await lab.warren(["secrets", "add", "S", "victim-secret", "--project", "P"], home: victim.home).status == 0)

        // The hostile member: admitted as a runner with a genuine token, known to every node.
        let token = try await lab.warren(["invite", "--role", "runner"], home: lab.gatewayHome)
        try #require(token.status == 0, "\(token.stderr)")
        let text = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let hostile = try HostileMember(token: text, address: "\(net).4:\(try freePort(on: "\(net).4"))")
        try await hostile.join(token: text, member: gwMesh)
        for node in nodes {
            let known = try await eventually(within: 30) {
                let members = try await lab.warren(["mesh", "members", "--json"], home: node.home).stdout
                let projects = try await lab.warren(["project", "list", "--json"], home: node.home).stdout
                return members.contains(hostile.id.description) && projects.contains(otherID)
            }
            try #require(known, "\(node.name) never learned of the hostile member's admission or of project P\n\(node.log)")
        }

        // Its friend: admitted, then removed by the admin; every node knows of the removal.
        let friendToken = try await lab.warren(["invite", "--role", "runner"], home: lab.gatewayHome)
        try #require(friendToken.status == 0, "\(friendToken.stderr)")
        let friendText = friendToken.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let removed = try HostileMember(token: friendText, address: "\(net).5:\(try freePort(on: "\(net).5"))")
        try await removed.join(token: friendText, member: gwMesh)
        let removal = try await lab.warren(["mesh", "remove", removed.id.description], home: lab.gatewayHome)
        try #require(removal.status == 0, "\(removal.stderr)")
        for node in nodes {
            let knows = try await eventually(within: 30) {
                let roster = (try? JSONSerialization.jsonObject(with: Data(try await lab.warren(["mesh", "members", "--json"], home: node.home).stdout.utf8)))
                    as? [String: Any] ?? [:]
                return ((roster["removed"] as? [String]) ?? []).contains(removed.id.description)
            }
            try #require(knows, "\(node.name) never learned of the friend's removal\n\(node.log)")
        }
        return HostileLab(lab: lab, nodes: nodes, gateway: gw, servicePort: port, victimID: victimID, victimRunID: runID,
                          victimRunName: run.name, hostile: hostile, removed: removed)
    }

    // MARK: The attacks

    /// Sends what `attack` sends; returns the refusal rules every node must count.
    private func perform(_ attack: HostileMemberProcessTests.Attack) async throws -> [String] {
        let h = hostile
        let gatewayNode = nodes[0]
        let gatewayID = try await lab.warren(["node", "id"], home: gatewayNode.home).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let victimBinding = Binding(address: gateway, port: servicePort)
        let victimLeaseKey = "\(gateway)|\(servicePort)|"
        var entries: [Entry] = []
        var rules: [String] = []
        switch attack {
        case .leaseCallsWithTheVictimsRunID:
            // A run ID is a name, not a capability: grant and release with the victim's are refused
            // or ignored by the gateway, which takes the holder from the link.
            let hijack = LeaseRequest(binding: victimBinding, runID: victimRunID, runName: "hijack", holder: victimID, appPort: 1)
            let grant = try await h.leaseCall("/lease/grant", hijack, gateway: gatewayNode.mesh)
            #expect(grant["lease"] == nil && (grant["conflict"] != nil || grant["refused"] != nil), "grant with the victim's run ID: \(grant)")
            var fresh = hijack
            fresh.runID = "hostile-\(UUID().uuidString.prefix(8))"
            let port = try await h.leaseCall("/lease/grant", fresh, gateway: gatewayNode.mesh)
            #expect(port["lease"] == nil && port["conflict"] != nil, "grant of the victim's port: \(port)")
            _ = try await h.leaseCall("/lease/release", hijack, gateway: gatewayNode.mesh)
            // The same release gossiped: a tombstone of the victim's lease entry.
            entries = [h.entry(.lease, victimLeaseKey, nil)]
            rules = ["lease_not_its_gateway"]
        case .gatewayEntries:
            let gatewayEntry: (String, String) -> [UInt8] = { name, address in
                Array(#"{"name":"\#(name)","address":"\#(address)","domains":[],"meshAddress":"\#(h.address)","backend":"local"}"#.utf8)
            }
            entries = [
                h.entry(.gateway, gatewayID, gatewayEntry("adv-gw", "127.0.0.9")),  // the real gateway's, redirected
                h.entry(.gateway, h.id.description, gatewayEntry("evil-gw", "127.0.0.9")),  // its own, as a runner
            ]
            rules = ["gateway_not_its_node", "gateway_role"]
        case .leaseEntryForAnotherAddress:
            let stolen = Lease(binding: victimBinding, runID: victimRunID, runName: "hijack", holder: h.id.description, appPort: 1,
                               expires: Date().addingTimeInterval(600))
            let other = Binding(address: gateway, port: servicePort + 1)
            let extra = Lease(binding: other, runID: "hostile", runName: "hostile", holder: h.id.description, appPort: 1,
                              expires: Date().addingTimeInterval(600))
            entries = [
                h.entry(.lease, victimLeaseKey, Array(try JSONEncoder().encode(stolen))),
                h.entry(.lease, "\(gateway)|\(servicePort + 1)|", Array(try JSONEncoder().encode(extra))),
            ]
            rules = ["lease_not_its_gateway"]
        case .domainClaimForAnotherHolder:
            let claim = #"{"holder":"\#(victimID)","runID":"\#(victimRunID)"}"#
            entries = [h.entry(.domainClaim, "victim.e2e.test", Array(claim.utf8))]
            rules = ["domain_claim_not_own"]
        case .removalByARunner:
            let victim = try NodeID(victimID).orThrow("bad victim ID")
            let removal = MemberRemoval.signed(meshID: h.meshID, member: victim, at: Date(), adminKeys: h.identity.keyPair).intent
            entries = [h.entry(.member, removal.key, removal.value)]
            rules = ["member_invalid"]
        case .roleChange:
            // A token it signs itself, making itself an admin and the gateway a runner.
            let token = try InviteToken.issue(meshID: h.meshID, role: .admin, expires: Date().addingTimeInterval(600),
                                              addresses: [gatewayNode.mesh], inviterKeys: h.identity.keyPair)
            let promoted = try MembershipRecord.admitting(h.id, addresses: [h.address], token: token, at: Date(), voucherKeys: h.identity.keyPair)
            let demoting = try InviteToken.issue(meshID: h.meshID, role: .runner, expires: Date().addingTimeInterval(600),
                                                 addresses: [gatewayNode.mesh], inviterKeys: h.identity.keyPair)
            let gatewayNodeID = try NodeID(gatewayID).orThrow("bad gateway ID")
            let demoted = try MembershipRecord.admitting(gatewayNodeID, addresses: [gatewayNode.mesh], token: demoting, at: Date(),
                                                         voucherKeys: h.identity.keyPair)
            entries = [promoted.intent, demoted.intent].map { h.entry($0.kind, $0.key, $0.value) }
            rules = ["member_invalid"]
        case .projectItIsNotIn:
            // P's record rewritten with itself as creator, and a key of P's current generation for
            // itself (held back as "not a member yet", never merged).
            let record = ProjectRecord(name: "P", creator: h.id, created: Date()).intent
            let key = ProjectMemberKey(project: "P", member: h.id, generation: 1, addedBy: h.id,
                                       sealedKey: Sodium.randomBytes(80)).intent
            entries = [h.entry(record.kind, record.key, record.value), h.entry(key.kind, key.key, key.value)]
            rules = ["project_invalid", "key_not_project_member"]
            // And it asks a member of P, over its link, to remove the victim from P: a member acts
            // only for an admin or a member of the project.
            let link = try await h.link(to: nodes[2].mesh)
            let call = Array(#"{"project":"P","node":"\#(victimID)"}"#.utf8)
            let answer = String(decoding: try await LinkRPC.call(link, path: "/project/remove-member", body: call), as: UTF8.self)
            #expect(answer.contains("403") && answer.contains("neither a member of project P nor an admin"), "\(answer)")
        case .futureDated:
            // Its own claim, a writer rule it may write, but dated an hour ahead: let in, it would
            // win every later write at its key for that hour.
            let claim = Self.claim("future.e2e.test", by: h)
            entries = [h.entry(.domainClaim, claim.key, claim.value, at: Date().addingTimeInterval(3600))]
            rules = ["future_dated"]
        case .replayedAfterSuperseded:
            // Its own claim, then its withdrawal; then the claim sent again.
            let claim = Self.claim("replay.e2e.test", by: h)
            let first = h.entry(.domainClaim, claim.key, claim.value, at: Date().addingTimeInterval(-2))
            let withdrawn = h.entry(.domainClaim, claim.key, nil, at: Date().addingTimeInterval(-1))
            for node in nodes { try await h.send([first, withdrawn], to: node.mesh) }
            entries = [first]
            rules = ["superseded"]
        case .replayedAfterDelete:
            // Its own claim, written two days ago and withdrawn 25 hours ago: the withdrawal is
            // past gossip's 24-hour grace when it arrives, so a node takes it as the key's floor
            // (a collected tombstone) at once. It goes to the gateway only: the runners never hold
            // the claim nor its tombstone, as a node that joined after the collection, and learn
            // the floor from the gateway's gossip. Then the claim is sent again to every node.
            let claim = Self.claim("deleted.e2e.test", by: h)
            let first = h.entry(.domainClaim, claim.key, claim.value, at: Date().addingTimeInterval(-48 * 3600))
            let withdrawn = h.entry(.domainClaim, claim.key, nil, at: Date().addingTimeInterval(-25 * 3600))
            try await h.send([withdrawn], to: gatewayNode.mesh)
            // Until the floor reaches a runner, the claim sent there would be taken as new (that
            // node can't know of the delete): wait for each runner to refuse a copy, sent again
            // each second, before the copies every node is sent below.
            for node in nodes.dropFirst() {
                let before = Self.refused(await fetch("http://\(node.metrics)/metrics") ?? "", "replayed_after_delete")
                let refused = try await eventually(within: 20) {
                    try await h.send([first], to: node.mesh)
                    return Self.refused(await fetch("http://\(node.metrics)/metrics") ?? "", "replayed_after_delete") > before
                }
                #expect(refused, "\(node.name) never refused the deleted claim sent again\n\(node.log.suffix(2000))")
            }
            entries = [first]
            rules = ["replayed_after_delete"]
        case .removedNodesEntriesRelayed:
            // Entries its removed friend signed, a claim and a gateway entry of the friend's own.
            // The friend never spoke gossip, so each node's gossip drops them as an unknown
            // author's and the gate counts that as `removed_author` (`MeshGate.dropped`); the
            // gate's own check of a removed author is for one gossip still knows, covered by
            // `GossipRefusalTests`.
            let r = removed
            let claim = Self.claim("removed.e2e.test", by: r)
            let announce = Array(#"{"name":"removed-gw","address":"127.0.0.9","domains":[],"meshAddress":"\#(r.address)","backend":"local"}"#.utf8)
            entries = [r.entry(.domainClaim, claim.key, claim.value), r.entry(.gateway, r.id.description, announce)]
            rules = ["removed_author"]
        case .secretOfAProjectItIsNotIn:
            // A newer version of the victim's secret S of P and a secret of its own in P, sealed
            // under a key of its making: held back (not a member of P), counted, never merged.
            let key = ProjectKey.generate(generation: 1)
            let overwrite = try SealedSecret.seal("hostile", project: "P", name: "S", version: 1000, key: key).intent
            let added = try SealedSecret.seal("hostile", project: "P", name: "H", version: 1, key: key).intent
            entries = [overwrite, added].map { h.entry($0.kind, $0.key, $0.value) }
            rules = ["not_project_member"]
        }
        for node in nodes where !entries.isEmpty {
            try await h.send(entries, to: node.mesh)
        }
        return rules
    }

    func check(_ attack: HostileMemberProcessTests.Attack) async throws {
        #expect(await fetch("http://\(gateway):\(servicePort)/")?.contains("victim.txt") == true, "the victim's service did not answer before the attack")
        var before: [String: String] = [:], refusedBefore: [String: String] = [:]
        for node in nodes {
            let seen = try await state(node)
            // Not an empty comparison: the node shows the victim's lease, the gateway, every member
            // (the hostile one a runner) and project P.
            #expect(seen.contains(victimRunID) && seen.contains("adv-gw") && seen.contains("\(hostile.id)|runner")
                    && seen.contains(victimID) && seen.contains("P|") && (node.name == "gateway" || seen.contains("secrets [\"S|")),
                    "\(node.name) shows too little to compare: \(seen)")
            before[node.name] = seen
            refusedBefore[node.name] = await fetch("http://\(node.metrics)/metrics") ?? ""
        }
        let rules = try await perform(attack)

        for node in nodes {
            var text = ""
            let counted = try await eventually(within: 20) {
                text = await fetch("http://\(node.metrics)/metrics") ?? ""
                return rules.allSatisfy { rule in
                    Self.refused(text, rule) > Self.refused(refusedBefore[node.name] ?? "", rule)
                }
            }
            #expect(counted, "\(node.name) did not count a refusal for \(rules) of \(attack):\n\(text.split(separator: "\n").filter { $0.contains("refused") }.joined(separator: "\n"))\n--- log\n\(node.log.suffix(3000))")
            let log = node.log
            // A refusal names the entry's author: the removed friend for the entries relayed.
            let author = attack == .removedNodesEntriesRelayed ? removed.id : hostile.id
            for rule in rules {
                let lines = log.split(separator: "\n").filter {
                    $0.contains("refused an entry") && $0.contains("refusal.rule=\(rule)") && $0.contains("peer.id=\(author.short)")
                }
                #expect(lines.count == 1, "\(node.name) logged \(lines.count) refusals of rule \(rule) by \(author.short) (once expected)")
            }
            let after = try await state(node)
            #expect(after == before[node.name], "\(node.name)'s state changed after \(attack):\nbefore \(before[node.name] ?? "")\nafter  \(after)")
        }
        #expect(await fetch("http://\(gateway):\(servicePort)/")?.contains("victim.txt") == true, "the victim's service stopped answering after \(attack)")
    }

    /// A delete collected before a node joined: the hostile member's own claim, written two days
    /// ago and withdrawn 25 hours ago (past the grace), reaches the members; then a fourth node
    /// joins. Its seed's push-pull carries the floor, so the claim sent to it again is refused,
    /// counted and never shown.
    func checkLateJoiner() async throws {
        let h = hostile
        let claim = Self.claim("late.e2e.test", by: h)
        let first = h.entry(.domainClaim, claim.key, claim.value, at: Date().addingTimeInterval(-48 * 3600))
        let withdrawn = h.entry(.domainClaim, claim.key, nil, at: Date().addingTimeInterval(-25 * 3600))
        for node in nodes { try await h.send([withdrawn], to: node.mesh) }

        let token = try await lab.warren(["invite", "--role", "runner"], home: lab.gatewayHome)
        try #require(token.status == 0, "\(token.stderr)")
        let host = String(gateway.dropLast(2)) + ".6"
        let home = lab.root + "/late"
        let (listen, metrics) = ("\(host):\(try freePort(on: host))", "\(host):\(try freePort(on: host))")
        let process = try lab.startNode("late", [
            "--state-dir", home, "--listen", listen, "--metrics", metrics,
            "--join", token.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
        ])
        let ready = try await eventually(within: 30) {
            let gateways = try await lab.warren(["gateway", "list"], home: home).stdout
            let members = try await lab.warren(["mesh", "members", "--json"], home: home).stdout
            return gateways.contains("adv-gw") && members.contains(h.id.description)
        }
        try #require(ready, "the late node never listed the gateway and the hostile member\n\(process.log)")

        // Sent to it directly, by the hostile member alone: whatever the late node knows of the
        // delete came from its seed.
        try await h.send([first], to: listen)
        var text = ""
        let counted = try await eventually(within: 20) {
            text = await fetch("http://\(metrics)/metrics") ?? ""
            return Self.refused(text, "replayed_after_delete") > 0
        }
        #expect(counted, "the late node did not count the replay:\n\(text.split(separator: "\n").filter { $0.contains("refused") }.joined(separator: "\n"))\n--- log\n\(process.log.suffix(3000))")
        let domains = try await lab.warren(["domains", "--json"], home: home).stdout
        #expect(!domains.contains("late.e2e.test"), "the late node shows the deleted claim: \(domains)")
        let lines = process.log.split(separator: "\n").filter {
            $0.contains("refused an entry") && $0.contains("refusal.rule=replayed_after_delete") && $0.contains("peer.id=\(h.id.short)")
        }
        #expect(lines.count == 1, "the late node logged \(lines.count) refusals of the replay (once expected)")
    }

    // MARK: What a node shows

    /// A domain claim `member` may write: for a run of its own.
    static func claim(_ domain: String, by member: HostileMember) -> (key: String, value: [UInt8]) {
        let claim = DomainClaim(domain: domain, holder: member.id.description, runID: "r\(UUID().uuidString.prefix(8).lowercased())",
                                runName: "hostile", claimed: Date(), expires: Date().addingTimeInterval(600))
        return (claim.key, claim.encoded)
    }

    /// What a node shows of the state an attack aims at, in a stable form (no times, no liveness).
    private func state(_ node: Node) async throws -> String {
        func json(_ arguments: [String]) async throws -> [[String: Any]] {
            Self.objects(try await lab.warren(arguments + ["--json"], home: node.home).stdout)
        }
        func fields(_ rows: [[String: Any]], _ names: [String]) -> [String] {
            rows.map { row in names.map { name in row[name].map { "\($0)" } ?? "-" }.joined(separator: "|") }.sorted()
        }
        let leases = fields(try await json(["leases"]), ["gateway", "port", "host", "runID", "run", "node"])
        let gateways = fields(try await json(["gateway", "list"]), ["name", "address", "node"])
        // `mesh members --json` is one object: the members with their roles, and the removed.
        let roster = (try? JSONSerialization.jsonObject(with: Data(try await lab.warren(["mesh", "members", "--json"], home: node.home).stdout.utf8)))
            as? [String: Any] ?? [:]
        let members = fields(roster["members"] as? [[String: Any]] ?? [], ["id", "role"])
        let removed = ((roster["removed"] as? [String]) ?? []).sorted()
        let domains = fields(try await json(["domains"]), ["domain", "runID", "node"])
        // P's secrets, names and versions, on its members (the gateway is not one).
        let secrets = node.name == "gateway" ? [] : fields(try await json(["secrets", "list", "--project", "P"]), ["name", "version"])
        let projects = try await json(["project", "list"]).map { row in
            "\(row["name"] ?? "-")|\(((row["members"] as? [String]) ?? []).sorted())|\(row["generation"] ?? "-")"
        }.sorted()
        return "leases \(leases) gateways \(gateways) members \(members) removed \(removed) projects \(projects) domains \(domains) secrets \(secrets)"
    }

    static func objects(_ text: String) -> [[String: Any]] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]] ?? []
    }

    static func refused(_ metrics: String, _ rule: String) -> Double {
        MetricsProcessTests.value(metrics, "warren_entries_refused_total", ["reason": rule])
    }
}
