import Foundation
import Gossip
@testable import Trust
import Sodium
import Testing
import TrustTestSupport

/// Two members rotate one project's key at the same moment, each from the same generation, and
/// then receive each other's entries: every replica settles alike, all remaining members end on
/// one generation that reads every secret, and no removed member holds its key.
@Suite struct ConcurrentRotationTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let alice = TestNode(), bob = TestNode(), carol = TestNode(), dave = TestNode()
    var replica = TestReplica()

    /// "web" with all four as members of generation 1, holding two secrets.
    init() throws {
        replica.apply(try ProjectBook(entries: []).createProject("web", local: alice.local, now: t0), author: alice.id)
        for node in [bob, carol, dave] { replica.apply(try replica.book().addMember(node.id, to: "web", local: alice.local), author: alice.id) }
        replica.apply(try replica.book().putSecret("DB_PASSWORD", value: "first-value", project: "web", local: alice.local), author: alice.id)
        replica.apply(try replica.book().putSecret("API_TOKEN", value: "second-value", project: "web", local: bob.local), author: bob.id)
    }

    /// Both rotations made from the same book, merged in either order (the later write wins each
    /// shared key, as last-writer-wins would pick either side).
    func concurrently(_ a: (TestNode, [EntryIntent]), _ b: (TestNode, [EntryIntent])) -> [TestReplica] {
        var ab = replica, ba = replica
        ab.apply(a.1, author: a.0.id); ab.apply(b.1, author: b.0.id)
        ba.apply(b.1, author: b.0.id); ba.apply(a.1, author: a.0.id)
        return [ab, ba]
    }

    func readsEverything(_ book: ProjectBook, _ node: TestNode) -> Bool {
        (try? book.secretValues("web", local: node.local)) == ["DB_PASSWORD": "first-value", "API_TOKEN": "second-value"]
    }

    /// Every key of generation `g` or later that `node` can open, from any entry of the replica.
    func keysOpenable(by node: TestNode, in replica: TestReplica, from g: UInt32) -> [ProjectKey] {
        replica.snapshots.flatMap { e -> [ProjectKey] in
            if e.key.hasPrefix("key/"), let k = try? ProjectMemberKey(decoding: e.value), k.generation >= g, k.member == node.id {
                return (try? k.open(with: node.local.keyAgreement)).map { [$0] } ?? []
            }
            if e.key.hasPrefix("rotation/"), let r = try? ProjectRotation(decoding: e.value), r.generation >= g {
                return (try? r.memberKey(node.id)?.open(with: node.local.keyAgreement)).flatMap { $0 }.map { [$0] } ?? []
            }
            return []
        }
    }

    @Test func twoRemovalsOfDifferentMembersBothHoldAndOneMoreRotationSettlesTheKey() throws {
        // Alice removes carol while bob removes dave.
        let before = replica.book()
        let byAlice = try before.removeMember(carol.id, from: "web", local: alice.local)
        let byBob = try before.removeMember(dave.id, from: "web", local: bob.local)
        for var merged in concurrently((alice, byAlice), (bob, byBob)) {
            let book = merged.book()
            let web = try book.project("web")
            // Neither removal is undone by the other rotation: both removed nodes are out.
            #expect(web.generation == 2 && web.isContested)
            #expect(web.members == [alice.id, bob.id].sorted())
            #expect(web.removedAtThisGeneration == [carol.id, dave.id])
            // The remaining members read every secret, whichever rotation re-sealed it.
            #expect(readsEverything(book, alice) && readsEverything(book, bob))
            for removed in [carol, dave] {
                #expect(throws: ProjectError.notAMember(removed.id, project: "web")) { _ = try book.secretValues("web", local: removed.local) }
            }
            // Nothing new is sealed under a contested generation…
            #expect(throws: ProjectError.keyRotationContested(project: "web")) {
                _ = try book.putSecret("LATER", value: "v", project: "web", local: alice.local)
            }
            // … until the member with the smallest node ID rotates again, alone.
            let healer = [alice, bob].min { $0.id < $1.id }!, other = healer.id == alice.id ? bob : alice
            #expect(book.projectsToRekey(by: healer.local) == ["web"])
            #expect(book.projectsToRekey(by: other.local).isEmpty)
            merged.apply(try book.rekey("web", local: healer.local), author: healer.id)

            let settled = merged.book()
            let after = try settled.project("web")
            #expect(after.generation == 3 && !after.isContested)
            #expect(after.members == [alice.id, bob.id].sorted())
            #expect(readsEverything(settled, alice) && readsEverything(settled, bob))
            #expect(try settled.secretListing("web", reader: bob.id).map(\.keyGeneration) == [3, 3])
            // One key for both, and neither removed node can open any key of that generation, so
            // not a secret written from now on.
            #expect(try settled.openKey("web", local: alice.local) == settled.openKey("web", local: bob.local))
            merged.apply(try settled.putSecret("LATER", value: "after-both-removals", project: "web", local: other.local), author: other.id)
            #expect(try merged.book().readSecret("LATER", project: "web", local: healer.local) == "after-both-removals")
            for removed in [carol, dave] { #expect(keysOpenable(by: removed, in: merged, from: 3).isEmpty) }
        }
    }

    @Test func twoRemovalsOfTheSameMemberSettleOnOneKeyToo() throws {
        let before = replica.book()
        let byAlice = try before.removeMember(dave.id, from: "web", local: alice.local)
        let byBob = try before.removeMember(dave.id, from: "web", local: bob.local)
        var books: [ProjectBook] = []
        for var merged in concurrently((alice, byAlice), (bob, byBob)) {
            let book = merged.book()
            #expect(try book.project("web").isContested)
            #expect(try book.members(of: "web") == [alice.id, bob.id, carol.id].sorted())
            for node in [alice, bob, carol] { #expect(readsEverything(book, node)) }
            let healer = [alice, bob, carol].min { $0.id < $1.id }!
            merged.apply(try book.rekey("web", local: healer.local), author: healer.id)
            let settled = merged.book()
            #expect(try settled.project("web").generation == 3)
            for node in [alice, bob, carol] { #expect(readsEverything(settled, node)) }
            #expect(keysOpenable(by: dave, in: merged, from: 2).isEmpty)
            books.append(settled)
        }
        // Both merge orders give the same project.
        #expect(try books[0].members(of: "web") == books[1].members(of: "web"))
    }

    @Test func aHealerThatIsDownIsStoodInForByTheSmallestMemberSeenAlive() throws {
        let before = replica.book()
        let byAlice = try before.removeMember(dave.id, from: "web", local: alice.local)
        let byBob = try before.removeMember(dave.id, from: "web", local: bob.local)
        for var merged in concurrently((alice, byAlice), (bob, byBob)) {
            let book = merged.book()
            let sorted = [alice, bob, carol].sorted { $0.id < $1.id }
            let (first, second, third) = (sorted[0], sorted[1], sorted[2])
            // Liveness unknown, or no member known alive: the smallest member, as before.
            #expect(try book.project("web").healer() == first.id)
            #expect(try book.project("web").healer(isAlive: { _ in false }) == first.id)
            #expect(book.projectsToRekey(by: second.local).isEmpty)
            // The smallest is down: the next one seen alive heals, and only it.
            let firstDown: (NodeID) -> Bool = { $0 != first.id }
            #expect(try book.project("web").healer(isAlive: firstDown) == second.id)
            #expect(book.projectsToRekey(by: second.local, isAlive: firstDown) == ["web"])
            #expect(book.projectsToRekey(by: third.local, isAlive: firstDown).isEmpty)
            // A node always counts itself alive, whatever it was told of others.
            #expect(book.projectsToRekey(by: first.local, isAlive: firstDown) == ["web"])

            // Both rotate (the first came back before the second saw it): one more contested
            // generation, settled by the same rule.
            let byFirst = try book.rekey("web", local: first.local), bySecond = try book.rekey("web", local: second.local)
            merged.apply(byFirst, author: first.id)
            merged.apply(bySecond, author: second.id)
            let again = merged.book()
            #expect(try again.project("web").generation == 3 && again.project("web").isContested)
            #expect(again.projectsToRekey(by: first.local, isAlive: { _ in true }) == ["web"])
            merged.apply(try again.rekey("web", local: first.local), author: first.id)
            let settled = merged.book()
            #expect(try settled.project("web").generation == 4 && !settled.project("web").isContested)
            for node in sorted { #expect(readsEverything(settled, node)) }
            #expect(keysOpenable(by: dave, in: merged, from: 2).isEmpty)
        }
    }

    /// Five members (erin joins), s0 < s1 < s2 < s3 by node ID besides carol: s1 and s2 remove
    /// carol at the same moment, and so does s3 remove `x` (s1, or s0, the member that settles
    /// the contest), its rotation arriving `late` (after the contest was settled by a rotation
    /// that kept `x`) or with the others. Returns the replica once settled, the members sorted
    /// (carol aside), and `x`.
    func threeRotations(late: Bool, removingTheHealer: Bool) throws -> (TestReplica, [TestNode], TestNode) {
        let erin = TestNode()
        var r = replica
        r.apply(try r.book().addMember(erin.id, to: "web", local: alice.local), author: alice.id)
        let s = [alice, bob, dave, erin].sorted { $0.id < $1.id }
        let x = removingTheHealer ? s[0] : s[1]
        let before = r.book()
        let first = try before.removeMember(carol.id, from: "web", local: s[1].local)
        let second = try before.removeMember(carol.id, from: "web", local: s[2].local)
        let third = try before.removeMember(x.id, from: "web", local: s[3].local)
        #expect(r.submit(first, author: s[1].id).isEmpty)
        #expect(r.submit(second.filter { $0.key.hasPrefix("rotation/") }, author: s[2].id).isEmpty)
        if !late { r.submit(third, author: s[3].id) }
        let contested = r.book()
        let healer = s.first { contested.projectsToRekey(by: $0.local) == ["web"] }!
        r.apply(try contested.rekey("web", local: healer.local), author: healer.id)
        guard late else { return (r, s, x) }

        #expect(try r.book().members(of: "web").contains(x.id), "the settling rotation kept x: it never saw its removal")
        // The third rotation of generation 2 arrives: let in (its rotator is still a member),
        // its secrets re-sealed under generation 2 are not.
        let refused = r.submit(third, author: s[3].id)
        #expect(refused.count == 2 && !refused.contains { $0.key.hasPrefix("rotation/") }, "\(refused)")
        let book = r.book()
        let web = try book.project("web")
        // The generation made since stays (even when made by x), but x must go.
        #expect(web.generation == 3 && !web.isContested && web.unsettledRemovals == [x.id] && web.needsRekey)
        // X holds the key of generation 3: nothing new is sealed under it.
        #expect(throws: ProjectError.keyRotationContested(project: "web")) {
            _ = try book.putSecret("LATER", value: "v", project: "web", local: s[2].local)
        }
        // X can't vouch for itself: its own key entry of generation 3 is no addition.
        let selfAdd = try ProjectMemberKey.sealing(book.openKeys("web", local: x.local)[0], project: "web", to: x.id, addedBy: x.id)
        r.apply([selfAdd.intent], author: x.id)
        #expect(try r.book().project("web").unsettledRemovals == [x.id])
        // The healer (never x, even with the smallest ID) rotates it out.
        let healers = s.filter { r.book().projectsToRekey(by: $0.local) == ["web"] }
        #expect(healers.map(\.id) == [s.first { $0.id != x.id }!.id])
        r.apply(try r.book().rekey("web", local: healers[0].local), author: healers[0].id)
        return (r, s, x)
    }

    @Test(arguments: [(true, false), (true, true), (false, false), (false, true)])
    func aRemovalInARotationThatArrivesAfterTheContestWasSettledStillHolds(late: Bool, removingTheHealer: Bool) throws {
        var (r, all, x) = try threeRotations(late: late, removingTheHealer: removingTheHealer)
        let remaining = all.filter { $0.id != x.id }
        let book = r.book()
        let web = try book.project("web")
        #expect(web.members == remaining.map(\.id))
        #expect(!web.needsRekey && web.unsettledRemovals.isEmpty)
        // The book is a function of the set of entries, not of their order.
        #expect(ProjectBook(entries: r.snapshots.reversed()).projects == book.projects)
        for node in remaining { #expect(readsEverything(book, node)) }
        r.apply(try book.putSecret("LATER", value: "after-the-removal", project: "web", local: remaining[0].local), author: remaining[0].id)
        #expect(try r.book().readSecret("LATER", project: "web", local: remaining[2].local) == "after-the-removal")
        #expect(throws: ProjectError.notAMember(x.id, project: "web")) { _ = try r.book().readSecret("LATER", project: "web", local: x.local) }
        #expect(keysOpenable(by: x, in: r, from: web.generation).isEmpty)
        // X, out of the project, can't write a rotation of a generation it belonged to.
        let backdated = try ProjectRotation.sealing(ProjectKey.generate(generation: 2), project: "web", to: [x.id], removed: [remaining[0].id], rotator: x.id)
        #expect(r.submit([backdated.intent], author: x.id).first?.reason.contains("no longer a member") == true)
    }

    @Test func aNodeAddedBackAfterARemovalInAContestedGenerationStaysAMember() throws {
        let before = replica.book()
        let byAlice = try before.removeMember(dave.id, from: "web", local: alice.local)
        let byBob = try before.removeMember(carol.id, from: "web", local: bob.local)
        for var merged in concurrently((alice, byAlice), (bob, byBob)) {
            // Added back while contested (a rotation, and his key entry), or after the heal (a key entry).
            var whileContested = merged
            whileContested.apply(try merged.book().addMember(dave.id, to: "web", local: bob.local), author: bob.id)
            let healer = [alice, bob].min { $0.id < $1.id }!
            merged.apply(try merged.book().rekey("web", local: healer.local), author: healer.id)
            merged.apply(try merged.book().addMember(dave.id, to: "web", local: alice.local), author: alice.id)
            for r in [whileContested, merged] {
                let web = try r.book().project("web")
                #expect(web.members == [alice.id, bob.id, dave.id].sorted() && !web.needsRekey)
                #expect(readsEverything(r.book(), dave))
            }
        }
    }

    @Test func theGateLetsTheSecondRotationInBesideTheFirst() throws {
        let before = replica.book()
        let byAlice = try before.removeMember(carol.id, from: "web", local: alice.local)
        let byBob = try before.removeMember(dave.id, from: "web", local: bob.local)
        var r = replica
        #expect(r.submit(byAlice, author: alice.id).isEmpty)
        // Bob's rotation of generation 2 arrives after alice's: let in, as he was a member of 1.
        let late = r.submit(byBob.filter { $0.key.hasPrefix("rotation/") }, author: bob.id)
        #expect(late.isEmpty, "\(late)")
        #expect(try r.book().project("web").isContested)
        // Carol, removed by alice's rotation, rotating generation 2 herself at the same moment
        // does not bring her back: a removal by any rotation of the generation holds.
        let byCarol = try before.rekey("web", local: carol.local)
        #expect(r.submit(byCarol.filter { $0.key.hasPrefix("rotation/") }, author: carol.id).isEmpty)
        #expect(try r.book().members(of: "web") == [alice.id, bob.id].sorted())
        // A node that was never a member can't rotate it at all.
        let eve = TestNode()
        let byEve = try ProjectRotation.sealing(ProjectKey.generate(generation: 2), project: "web", to: [eve.id], removed: [], rotator: eve.id)
        let refused = r.submit([byEve.intent], author: eve.id)
        #expect(refused.map(\.reason) == ["rotated by \(eve.id.short)…, not a member of project web at generation 1"])
    }

    @Test func aMemberRemovedAtThisGenerationIsAddedBackByANewRotation() throws {
        var r = replica
        r.apply(try r.book().removeMember(carol.id, from: "web", local: alice.local), author: alice.id)
        let readd = try r.book().addMember(carol.id, to: "web", local: bob.local)
        #expect(readd.first?.key == "rotation/web/3/\(bob.id)")
        r.apply(readd, author: bob.id)
        let book = r.book()
        #expect(try book.project("web").generation == 3)
        #expect(try book.members(of: "web") == [alice.id, bob.id, carol.id, dave.id].sorted())
        #expect(readsEverything(book, carol))
        // A plain key entry of generation 2 for her (the old way of adding) does not count.
        let sneaked = try ProjectMemberKey.sealing(ProjectKey.generate(generation: 2), project: "web", to: carol.id, addedBy: alice.id)
        var s = replica
        s.apply(try s.book().removeMember(carol.id, from: "web", local: alice.local), author: alice.id)
        let refusals = s.submit([sneaked.intent], author: alice.id)
        #expect(refusals.first?.reason.contains("was removed at generation 2") == true)
        s.apply([sneaked.intent], author: alice.id)
        #expect(try !s.book().members(of: "web").contains(carol.id))
    }

    @Test func aRotationWrittenByAnEarlierVersionStillCounts() throws {
        // Then a rotation was one key entry per remaining member, written by the rotator.
        var r = replica
        let key = ProjectKey.generate(generation: 2)
        r.apply(try [alice, bob, dave].map { try ProjectMemberKey.sealing(key, project: "web", to: $0.id, addedBy: alice.id).intent }, author: alice.id)
        let book = r.book()
        #expect(try book.project("web").generation == 2)
        #expect(try book.members(of: "web") == [alice.id, bob.id, dave.id].sorted())
        #expect(try book.openKey("web", local: bob.local) == key)
        #expect(book.rejections.isEmpty)
    }

    @Test func rotationValuesRoundTripAndGarbageNeverCrashes() throws {
        let rotation = try ProjectRotation.sealing(ProjectKey.generate(generation: 7), project: "web", to: [alice.id, bob.id], removed: [carol.id], rotator: alice.id)
        let decoded = try ProjectRotation(decoding: rotation.encoded())
        #expect(decoded == rotation)
        #expect(decoded.entryKey == "rotation/web/7/\(alice.id)")
        #expect(try decoded.memberKey(bob.id)?.open(with: bob.local.keyAgreement).generation == 7)
        #expect(decoded.memberKey(carol.id) == nil)
        for bytes in GarbageInputs.mutations(of: rotation.encoded(), flips: 200) + GarbageInputs.random(count: 200, maxLength: 600, tag: EntryTag.projectRotation.rawValue) {
            _ = try? ProjectRotation(decoding: bytes)
        }
        // A member both kept and removed is malformed.
        let both = ProjectRotation(project: "web", generation: 2, rotator: alice.id, removed: [bob.id], sealedKeys: [bob.id: [1, 2, 3]])
        #expect(throws: EntryDecodingError.self) { _ = try ProjectRotation(decoding: both.encoded()) }
    }
}
