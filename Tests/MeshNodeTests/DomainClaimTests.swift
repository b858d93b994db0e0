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
