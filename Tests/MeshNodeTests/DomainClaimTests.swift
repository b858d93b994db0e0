import Foundation
import Gossip
@testable import MeshNode
@testable import Trust
@testable import Link
import Testing

/// The rule every node applies to the domain claims it has heard: the earliest live claim owns
/// the domain, then the lowest run ID; so nodes that heard the same claims, in any order, agree.
@Suite struct DomainClaimTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func claim(_ run: String, at offset: Double, domain: String = "api.example.com", holder: String = "node-a", ttl: Double = 30) -> DomainClaim {
        DomainClaim(domain: domain, holder: holder, runID: run, runName: "svc-\(run)", claimed: t0.addingTimeInterval(offset),
                    expires: t0.addingTimeInterval(offset + ttl))
    }

    @Test func theEarliestClaimOwnsTheDomainThenTheLowestRunID() {
        let now = Self.t0.addingTimeInterval(5)
        let claims = [Self.claim("run-b", at: 1), Self.claim("run-c", at: 0.5), Self.claim("run-a", at: 2)]
        #expect(DomainClaims(claims).owner(of: "api.example.com", now: now)?.runID == "run-c")
        // The same millisecond: the lower run ID.
        let tied = [Self.claim("run-z", at: 1), Self.claim("run-k", at: 1.0004)]
        #expect(DomainClaims(tied).owner(of: "API.Example.com.", now: now)?.runID == "run-k")
    }

    @Test func everyOrderOfArrivalPicksTheSameOwner() {
        let now = Self.t0.addingTimeInterval(5)
        let claims = (0..<6).map { Self.claim("run-\($0)", at: Double(6 - $0) / 10, holder: "node-\($0 % 2)") }
        var owners = Set<String>()
        var g = SystemRandomNumberGenerator()
        for _ in 0..<50 { owners.insert(DomainClaims(claims.shuffled(using: &g)).owner(of: "api.example.com", now: now)!.runID) }
        #expect(owners == ["run-5"])
    }

    @Test func anExpiredClaimNoLongerCountsAndOtherDomainsAreApart() {
        let claims = [Self.claim("gone", at: 0, ttl: 3), Self.claim("later", at: 1), Self.claim("other", at: -5, domain: "www.example.com")]
        #expect(DomainClaims(claims).owner(of: "api.example.com", now: Self.t0.addingTimeInterval(2))?.runID == "gone")
        #expect(DomainClaims(claims).owner(of: "api.example.com", now: Self.t0.addingTimeInterval(4))?.runID == "later")
        #expect(DomainClaims(claims).owners(now: Self.t0.addingTimeInterval(4)).map(\.runID) == ["later", "other"])
        #expect(DomainClaims(claims).owner(of: "nobody.example.com", now: Self.t0) == nil)
    }

    @Test func aClaimRoundTripsToTheMillisecondAndPassesTheWriterRule() throws {
        let node = NodeIdentity.generate().id
        let claim = DomainClaim(domain: "Api.Example.com", holder: node.description, runID: "r1", runName: "api",
                                claimed: Self.t0.addingTimeInterval(0.1234567), expires: Self.t0.addingTimeInterval(30))
        let back = try #require(DomainClaim.decode(claim.encoded))
        #expect(back.domain == "api.example.com" && back.key == "api.example.com|r1")
        #expect(DomainClaim.milliseconds(back.claimed) == DomainClaim.milliseconds(claim.claimed))
        #expect(!back.precedes(claim) && !claim.precedes(back))
        #expect(back.heldText.contains("domain api.example.com is held by run \"api\" (ID r1)"))
        // The gate's rule: the holder is the author.
        #expect(throws: Never.self) { try MeshEntryGate.checkDomainClaim(key: claim.key, value: claim.encoded, author: node) }
        #expect(throws: EntryRefusal.self) {
            try MeshEntryGate.checkDomainClaim(key: claim.key, value: claim.encoded, author: NodeIdentity.generate().id)
        }
    }
}

/// Claims written on both sides of a partition, gossiped by the simulator (virtual time): while
/// split, each side gives the domain to the claim it has heard; once healed, every node gives it to
/// the earlier claim. 20 runs, each with its own seed, sides and order of the two claims.
@Suite struct DomainClaimPartitionTests {
    static let n = 40

    static func owners(_ sim: GossipSimulator, _ domain: String, now: Date) -> [String?] {
        sim.nodes.map { node in
            DomainClaims(node.entries(kind: .domainClaim).compactMap { $0.value.flatMap(DomainClaim.decode) }).owner(of: domain, now: now)?.runID
        }
    }

    @Test(arguments: 0..<20) func claimsOnBothSidesOfAPartitionEndWithTheEarlierOwnerEverywhere(round: Int) throws {
        var random = SeededRandom(seed: UInt64(100 + round))
        let sim = GossipSimulator(.init(nodeCount: Self.n, seed: UInt64(1000 + round), loss: 0.01))
        sim.run(until: .seconds(1))
        let cut = Int.random(in: 5..<(Self.n - 5), using: &random)
        sim.partition { $0 < cut ? 0 : 1 }
        sim.run(for: .seconds(1))
        let left = Int.random(in: 0..<cut, using: &random), right = Int.random(in: cut..<Self.n, using: &random)
        let now = Date(), domain = "split.example.com"
        // Which side claims first varies; the claim times differ by 1 to 500 ms.
        let leftFirst = Bool.random(using: &random)
        let gap = Double(Int.random(in: 1...500, using: &random)) / 1000
        func claim(on node: Int, run: String, at offset: Double) throws {
            let c = DomainClaim(domain: domain, holder: sim.nodes[node].id.description, runID: run, runName: run,
                                claimed: now.addingTimeInterval(offset), expires: now.addingTimeInterval(3600))
            try sim.put(on: node, kind: .domainClaim, key: c.key, value: c.encoded)
        }
        try claim(on: left, run: "left-\(round)", at: leftFirst ? 0 : gap)
        try claim(on: right, run: "right-\(round)", at: leftFirst ? gap : 0)
        sim.run(for: .seconds(3))
        let split = Self.owners(sim, domain, now: now)
        #expect(split[left] == "left-\(round)" && split[right] == "right-\(round)", "each side should own it while split: \(split)")
        sim.heal()
        let winner = leftFirst ? "left-\(round)" : "right-\(round)"
        let agreed = sim.run(step: .milliseconds(500), limit: .seconds(90)) {
            Self.owners(sim, domain, now: now).allSatisfy { $0 == winner }
        }
        #expect(agreed, "after the heal: \(Self.owners(sim, domain, now: now))")
    }
}

/// A gateway grants a domain's binding only to the run that owns the domain by the claims it has
/// heard; another run is told to ask again (its own claim may still be on its way), not refused.
@Suite struct GatewayClaimCheckTests {
    @Test func aGatewayWithholdsADomainFromARunThatDoesNotOwnIt() async throws {
        let dir = try StateTestDirectory("warren-claim-gw")
        defer { dir.remove() }
        let store = try StateStore(stateDirectory: dir.path, logger: .quiet("store"))
        let owner = DomainClaim(domain: "api.example.com", holder: "node-a", runID: "r-a", runName: "a", claimed: Date(), expires: Date().addingTimeInterval(60))
        var hooks = GatewayLeases.Hooks(changed: { _, _, _ in }, gossiped: { LeaseTable() })
        hooks.domainOwner = { $0 == "api.example.com" ? owner : nil }
        let leases = GatewayLeases(addresses: ["127.0.0.2"], store: store, hooks: hooks, logger: .quiet("l"))
        let binding = Binding(address: "127.0.0.2", port: 80, host: "api.example.com")
        await #expect(throws: LeaseUnavailable.self) {
            try await leases.grant(LeaseRequest(binding: binding, runID: "r-b", runName: "b", holder: "node-b", appPort: 8000))
        }
        // The owner's run ID from another node is not the owner either.
        await #expect(throws: LeaseUnavailable.self) {
            try await leases.grant(LeaseRequest(binding: binding, runID: "r-a", runName: "a", holder: "node-b", appPort: 8000))
        }
        #expect(try await leases.grant(LeaseRequest(binding: binding, runID: "r-a", runName: "a", holder: "node-a", appPort: 8000)).runID == "r-a")
        // Another domain, and a port held whole, are not claims' business.
        let other = Binding(address: "127.0.0.2", port: 80, host: "www.example.com")
        #expect(try await leases.grant(LeaseRequest(binding: other, runID: "r-c", runName: "c", holder: "node-c", appPort: 8001)).runID == "r-c")
        let whole = Binding(address: "127.0.0.2", port: 5001)
        #expect(try await leases.grant(LeaseRequest(binding: whole, runID: "r-d", runName: "d", holder: "node-d", appPort: 8002)).runID == "r-d")
    }
}
