import Foundation
import Gossip
@testable import MeshNode
import Sodium
import Testing

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
            #expect(book.contestedProjects(rekeyedBy: healer.local) == ["web"])
            #expect(book.contestedProjects(rekeyedBy: other.local).isEmpty)
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
            #expect(book.contestedProjects(rekeyedBy: second.local).isEmpty)
            // The smallest is down: the next one seen alive heals, and only it.
            let firstDown: (NodeID) -> Bool = { $0 != first.id }
            #expect(try book.project("web").healer(isAlive: firstDown) == second.id)
            #expect(book.contestedProjects(rekeyedBy: second.local, isAlive: firstDown) == ["web"])
            #expect(book.contestedProjects(rekeyedBy: third.local, isAlive: firstDown).isEmpty)
            // A node always counts itself alive, whatever it was told of others.
            #expect(book.contestedProjects(rekeyedBy: first.local, isAlive: firstDown) == ["web"])

            // Both rotate (the first came back before the second saw it): one more contested
            // generation, settled by the same rule.
            let byFirst = try book.rekey("web", local: first.local), bySecond = try book.rekey("web", local: second.local)
            merged.apply(byFirst, author: first.id)
            merged.apply(bySecond, author: second.id)
            let again = merged.book()
            #expect(try again.project("web").generation == 3 && again.project("web").isContested)
            #expect(again.contestedProjects(rekeyedBy: first.local, isAlive: { _ in true }) == ["web"])
            merged.apply(try again.rekey("web", local: first.local), author: first.id)
            let settled = merged.book()
            #expect(try settled.project("web").generation == 4 && !settled.project("web").isContested)
            for node in sorted { #expect(readsEverything(settled, node)) }
            #expect(keysOpenable(by: dave, in: merged, from: 2).isEmpty)
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
