import Foundation
import Gossip
@testable import Trust
import Sodium
import Testing
import TrustTestSupport

/// Projects and their secrets over a shared replica: who can read what, and key rotation.
@Suite struct ProjectSecretsTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let alice = TestNode(), bob = TestNode(), carol = TestNode()
    var replica = TestReplica()

    var book: ProjectBook { replica.book() }

    /// "web" with alice (creator) and bob, holding one secret.
    init() throws {
        replica.apply(try ProjectBook(entries: []).createProject("web", local: alice.local, now: t0), author: alice.id)
        replica.apply(try book.addMember(bob.id, to: "web", local: alice.local), author: alice.id)
        replica.apply(try book.putSecret("DB_PASSWORD", value: "hunter2-distinctive-plaintext", project: "web", local: alice.local), author: alice.id)
    }

    @Test func membersReadTheSecretAndTheCreatorIsTheFirstMember() throws {
        #expect(try book.members(of: "web") == [alice.id, bob.id].sorted())
        #expect(book.projects["web"]?.record.creator == alice.id)
        #expect(book.projectNames == ["web"])
        #expect(book.projects(of: bob.id) == ["web"] && book.projects(of: carol.id).isEmpty)
        #expect(try book.readSecret("DB_PASSWORD", project: "web", local: alice.local) == "hunter2-distinctive-plaintext")
        #expect(try book.readSecret("DB_PASSWORD", project: "web", local: bob.local) == "hunter2-distinctive-plaintext")
        #expect(try book.secretListing("web", reader: bob.id) == [.init(name: "DB_PASSWORD", version: 1, keyGeneration: 1)])
        #expect(try book.secretValues("web", local: bob.local) == ["DB_PASSWORD": "hunter2-distinctive-plaintext"])
        #expect(book.rejections.isEmpty)
    }

    @Test func aNodeOutsideTheProjectHoldsOnlyCiphertextAndIsToldItIsNotAMember() throws {
        // Carol's replica holds every entry of "web" (she relays them) …
        #expect(replica.snapshots.contains { $0.kind == .secret && $0.key == "web/DB_PASSWORD" })
        #expect(ProjectSecretsTests.contains(replica, "hunter2") == false)
        #expect(ProjectSecretsTests.contains(replica, "hunter2-distinctive-plaintext") == false)
        // … and the check above would see a plaintext value: it is not vacuous.
        var leaky = replica
        leaky.apply([.put(.secret, "web/LEAK", Array("xx hunter2 xx".utf8))], author: alice.id)
        #expect(ProjectSecretsTests.contains(leaky, "hunter2"))

        // None of the key entries opens with her keys, and the book says she is not a member.
        for entry in replica.snapshots where entry.key.hasPrefix("key/") {
            let sealed = try ProjectMemberKey(decoding: entry.value)
            #expect(throws: SodiumError.authenticationFailed) { _ = try sealed.open(with: carol.local.keyAgreement) }
        }
        let notMember = ProjectError.notAMember(carol.id, project: "web")
        #expect(notMember.description.hasPrefix("node \(carol.id) is not a member of project web"))
        #expect(throws: notMember) { _ = try book.secretListing("web", reader: carol.id) }
        #expect(throws: notMember) { _ = try book.readSecret("DB_PASSWORD", project: "web", local: carol.local) }
        #expect(throws: notMember) { _ = try book.openKey("web", local: carol.local) }
        #expect(throws: notMember) { _ = try book.putSecret("X", value: "v", project: "web", local: carol.local) }
        #expect(throws: notMember) { _ = try book.addMember(carol.id, to: "web", local: carol.local) }
    }

    static func contains(_ replica: TestReplica, _ plaintext: String) -> Bool {
        let needle = Array(plaintext.utf8)
        return replica.snapshots.contains { e in
            e.value.count >= needle.count && (0...(e.value.count - needle.count)).contains { Array(e.value[$0..<$0 + needle.count]) == needle }
        }
    }

    @Test func removingAMemberRotatesTheKeyAndItCannotReadWhatIsWrittenAfter() throws {
        var replica = self.replica
        let oldBobKey = try replica.book().openKey("web", local: bob.local)
        let intents = try replica.book().removeMember(bob.id, from: "web", local: alice.local)
        #expect(intents.contains { $0.key == "rotation/web/2/\(alice.id)" })
        #expect(!intents.contains { $0.key.contains(bob.id.description) })
        replica.apply(intents, author: alice.id)
        replica.apply(try replica.book().putSecret("API_TOKEN", value: "after-removal-secret", project: "web", local: alice.local), author: alice.id)

        let after = replica.book()
        #expect(try after.members(of: "web") == [alice.id])
        #expect(try after.project("web").generation == 2)
        // Alice still reads everything: the old secret was re-encrypted under generation 2.
        #expect(try after.readSecret("DB_PASSWORD", project: "web", local: alice.local) == "hunter2-distinctive-plaintext")
        #expect(try after.secretListing("web", reader: alice.id).map(\.keyGeneration) == [2, 2])
        // Bob is told he is not a member, and no key entry of the new generation opens for him.
        #expect(throws: ProjectError.notAMember(bob.id, project: "web")) {
            _ = try after.readSecret("API_TOKEN", project: "web", local: bob.local)
        }
        #expect(!replica.snapshots.contains { $0.key == "key/web/2/\(bob.id)" })
        let rotation = try ProjectRotation(decoding: try #require(replica.snapshots.first { $0.key.hasPrefix("rotation/") }).value)
        #expect(rotation.kept == [alice.id] && rotation.removed == [bob.id])
        // The only entry he can open is his old one, of generation 1: a key he already had.
        var opened: [UInt32] = []
        for entry in replica.snapshots where entry.key.hasPrefix("key/") {
            let sealed = try ProjectMemberKey(decoding: entry.value)
            if let key = try? sealed.open(with: bob.local.keyAgreement) { opened.append(key.generation) }
        }
        #expect(opened == [1])
        // Even with the old key he kept, the new secret's ciphertext does not open.
        let newSecret = try #require(after.projects["web"]?.secrets["API_TOKEN"])
        #expect(newSecret.keyGeneration == 2)
        #expect(throws: SodiumError.authenticationFailed) { _ = try newSecret.open(with: oldBobKey) }
        let forced = try ProjectKey(bytes: oldBobKey.bytes, generation: 2)
        #expect(throws: SodiumError.authenticationFailed) { _ = try newSecret.open(with: forced) }
        #expect(!ProjectSecretsTests.contains(replica, "after-removal-secret"))
    }

    @Test func entriesByNonMembersDoNotCount() throws {
        var replica = self.replica
        // Carol writes a key entry adding herself, and a secret, without being a member.
        let key = ProjectKey.generate(generation: 5)
        let selfAdded = try ProjectMemberKey.sealing(key, project: "web", to: carol.id, addedBy: carol.id)
        let planted = try SealedSecret.seal("planted", project: "web", name: "PLANTED", version: 9, key: key)
        replica.apply([selfAdded.intent, planted.intent], author: carol.id)
        // And a project record claiming alice's project under her own name.
        replica.apply([ProjectRecord(name: "other", creator: alice.id, created: t0).intent], author: carol.id)
        let b = replica.book()
        #expect(try b.members(of: "web") == [alice.id, bob.id].sorted())
        #expect(try b.project("web").generation == 1)
        #expect(b.projectNames == ["web"])
        #expect(b.rejections.count == 3)
        #expect(try b.readSecret("DB_PASSWORD", project: "web", local: bob.local) == "hunter2-distinctive-plaintext")
        #expect(try b.secretListing("web", reader: alice.id).map(\.name) == ["DB_PASSWORD"])

        // With a roster, a member's entries count only while the author is a mesh member.
        let (roster, founding) = try MeshRoster.found(addresses: [], at: t0, keys: alice.keys)
        var withMesh = replica
        withMesh.apply(founding, author: alice.id)
        let meshBook = withMesh.book(roster: withMesh.roster(roster.meshID))
        // Bob is in the project but not in the mesh: his key entry was written by alice, so it
        // counts, but adding him again requires mesh membership.
        #expect(meshBook.isMember(alice.id, of: "web"))
        #expect(throws: ProjectError.notAMeshMember(carol.id)) {
            _ = try meshBook.addMember(carol.id, to: "web", local: alice.local, roster: withMesh.roster(roster.meshID))
        }
        var byOutsider = withMesh
        byOutsider.apply(try meshBook.putSecret("FROM_BOB", value: "x", project: "web", local: bob.local), author: bob.id)
        #expect(byOutsider.book(roster: withMesh.roster(roster.meshID)).projects["web"]?.secrets["FROM_BOB"] == nil)
        #expect(byOutsider.book().projects["web"]?.secrets["FROM_BOB"] != nil)
    }

    @Test func versionsDeletesAndProjectOnFirstUse() throws {
        var replica = self.replica
        replica.apply(try replica.book().putSecret("DB_PASSWORD", value: "second", project: "web", local: bob.local), author: bob.id)
        #expect(try replica.book().secretListing("web", reader: alice.id).first?.version == 2)
        #expect(try replica.book().readSecret("DB_PASSWORD", project: "web", local: alice.local) == "second")
        replica.apply(try replica.book().deleteSecret("DB_PASSWORD", project: "web", local: alice.local), author: alice.id)
        #expect(try replica.book().secretListing("web", reader: alice.id).isEmpty)
        #expect(throws: ProjectError.noSuchSecret(project: "web", name: "DB_PASSWORD")) {
            _ = try replica.book().readSecret("DB_PASSWORD", project: "web", local: alice.local)
        }

        // Secrets added to a project that doesn't exist yet create it, carol its only member.
        let firstUse = try replica.book().putSecretCreatingProject("FIRST", value: "one", project: "solo", local: carol.local, now: t0)
        #expect(firstUse.count == 3)
        #expect(replica.submit(firstUse, author: carol.id).isEmpty)
        #expect(try replica.book().readSecret("FIRST", project: "solo", local: carol.local) == "one")
        #expect(try replica.book().putSecretCreatingProject("FIRST", value: "two", project: "solo", local: carol.local, now: t0).count == 1)

        let first = try replica.book().ensureProject("local", local: carol.local, now: t0)
        #expect(first.count == 2)
        replica.apply(first, author: carol.id)
        #expect(try replica.book().ensureProject("local", local: carol.local, now: t0).isEmpty)
        #expect(try replica.book().members(of: "local") == [carol.id])
        #expect(throws: ProjectError.projectExists("local")) { _ = try replica.book().createProject("local", local: alice.local, now: t0) }
        #expect(throws: ProjectError.lastMember(carol.id, project: "local")) { _ = try replica.book().removeMember(carol.id, from: "local", local: carol.local) }
        #expect(throws: ProjectError.invalidProjectName("a/b")) { _ = try replica.book().createProject("a/b", local: alice.local, now: t0) }
        #expect(throws: ProjectError.invalidSecretName("1X")) { _ = try replica.book().putSecret("1X", value: "v", project: "web", local: alice.local) }
        #expect(throws: ProjectError.noSuchProject("nope")) { _ = try replica.book().members(of: "nope") }
        #expect(throws: ProjectError.alreadyAMember(bob.id, project: "web")) { _ = try replica.book().addMember(bob.id, to: "web", local: alice.local) }
        let big = String(repeating: "x", count: ProjectBook.maxSecretBytes + 1)
        #expect(throws: ProjectError.secretTooLarge(name: "BIG", bytes: big.utf8.count)) { _ = try replica.book().putSecret("BIG", value: big, project: "web", local: alice.local) }
    }

    @Test func projectEntryValuesRoundTripAndGarbageNeverCrashes() throws {
        let record = ProjectRecord(name: "web", creator: alice.id, created: t0 + 0.5)
        let memberKey = try ProjectMemberKey.sealing(ProjectKey.generate(generation: 3), project: "web", to: bob.id, addedBy: alice.id)
        let secret = try SealedSecret.seal("v", project: "web", name: "A_B", version: 7, key: ProjectKey.generate())
        #expect(try ProjectRecord(decoding: record.encoded()) == record)
        #expect(try ProjectMemberKey(decoding: memberKey.encoded()) == memberKey)
        #expect(try SealedSecret(decoding: secret.encoded()) == secret)
        #expect(secret.entryKey == "web/A_B" && memberKey.entryKey == "key/web/3/\(bob.id)" && record.intent.key == "project/web")

        let decoders: [(EntryTag, [UInt8], ([UInt8]) throws -> [UInt8])] = [
            (.project, record.encoded(), { try ProjectRecord(decoding: $0).encoded() }),
            (.projectMemberKey, memberKey.encoded(), { try ProjectMemberKey(decoding: $0).encoded() }),
            (.sealedSecret, secret.encoded(), { try SealedSecret(decoding: $0).encoded() }),
        ]
        for (tag, valid, decode) in decoders {
            var refused = 0
            let inputs = GarbageInputs.random(count: 1000, maxLength: 300, tag: tag.rawValue) + GarbageInputs.mutations(of: valid, flips: 300)
            for bytes in inputs {
                do {
                    #expect(try decode(bytes) == bytes)
                } catch is EntryDecodingError {
                    refused += 1
                }
            }
            #expect(refused > inputs.count / 2)
        }
        // Garbage under every key shape leaves the book intact and reading.
        var noisy = replica
        for (i, bytes) in GarbageInputs.random(count: 300, maxLength: 200, tag: EntryTag.sealedSecret.rawValue).enumerated() {
            let keys = ["web/DB_PASSWORD", "key/web/1/\(bob.id)", "project/web", "web/N\(i)", "junk\(i)"]
            let kind: EntryKind = i % 2 == 0 ? .secret : .project
            // By a member (bob), so only the gate's checks of the value stand in the way.
            let refusals = noisy.submit([.put(kind, keys[i % keys.count], bytes)], author: bob.id)
            #expect(refusals.count == 1)
        }
        let b = noisy.book()
        #expect(try b.members(of: "web") == [alice.id, bob.id].sorted())
    }

    @Test func theGateKeepsNonMembersReplaysAndOldGenerationsOutOfTheReplica() throws {
        var replica = self.replica
        let original = try #require(replica.snapshots.first { $0.key == "web/DB_PASSWORD" })
        // A non-member overwriting, deleting or taking over the project: refused, nothing changes.
        let key = ProjectKey.generate(generation: 1)
        let overwrite = try SealedSecret.seal("planted", project: "web", name: "DB_PASSWORD", version: 9, key: key)
        let refusals = replica.submit([
            overwrite.intent,
            .delete(.secret, "web/DB_PASSWORD"),
            try ProjectMemberKey.sealing(key, project: "web", to: carol.id, addedBy: carol.id).intent,
            ProjectRecord(name: "web", creator: carol.id, created: t0).intent,
            .delete(.project, "project/web"),
            ProjectRecord(name: "other", creator: alice.id, created: t0).intent,
        ], author: carol.id)
        #expect(refusals.count == 6)
        #expect(refusals.first?.description.contains("not a member of project web") == true)
        #expect(refusals.count == 6 && refusals[3].reason.contains("already exists, created by"))
        #expect(refusals.count == 6 && refusals[5].reason.contains("not by its creator"))
        #expect(replica.snapshots.first { $0.key == "web/DB_PASSWORD" } == original)
        #expect(try replica.book().readSecret("DB_PASSWORD", project: "web", local: bob.local) == "hunter2-distinctive-plaintext")

        // A replayed older version, even by a member, is refused.
        let v1 = original.value
        #expect(replica.submit(try replica.book().putSecret("DB_PASSWORD", value: "v2", project: "web", local: alice.local), author: alice.id).isEmpty)
        let replay = replica.submit([.put(.secret, "web/DB_PASSWORD", v1)], author: alice.id)
        #expect(replay.first?.reason.contains("version 1 is older than the current 2") == true)
        #expect(try replica.book().readSecret("DB_PASSWORD", project: "web", local: bob.local) == "v2")

        // After bob's removal, a secret sealed under the old generation (which bob can open) is
        // refused, and so is bob's own write.
        let oldKey = try replica.book().openKey("web", local: alice.local)
        #expect(replica.submit(try replica.book().removeMember(bob.id, from: "web", local: alice.local), author: alice.id).isEmpty)
        let stale = try SealedSecret.seal("readable-by-bob", project: "web", name: "NEW", version: 1, key: oldKey)
        let late = replica.submit([stale.intent], author: alice.id)
        #expect(late.first?.reason.contains("older than the project's 2") == true)
        #expect(replica.submit([stale.intent], author: bob.id).first?.reason.contains("not a member of project web") == true)
        #expect(!ProjectSecretsTests.contains(replica, "readable-by-bob"))
        #expect(replica.book().projects["web"]?.secrets["NEW"] == nil)

        // With a roster, writes by nodes outside the mesh are refused whatever they are.
        let (roster, _) = try MeshRoster.found(addresses: [], at: t0, keys: alice.keys)
        let outside = replica.submit(try replica.book().putSecret("X", value: "v", project: "web", local: alice.local), author: carol.id, roster: roster)
        #expect(outside.first?.reason.contains("is not a mesh member") == true)
    }

    @Test func aNodeRemovedFromTheMeshKeepsNothingNewAndItsProjectsSurviveIt() throws {
        // Carol founds the mesh and admits alice and bob; alice creates "web" with bob in it.
        let (founded, founding) = try MeshRoster.found(addresses: [], at: t0, keys: carol.keys)
        var replica = TestReplica()
        replica.apply(founding, author: carol.id)
        var verifier = InviteVerifier(roster: founded)
        for node in [alice, bob] {
            let token = try replica.roster(founded.meshID).issueInvite(role: .runner, ttl: 60, now: t0, inviterKeys: carol.keys)
            replica.apply(try verifier.admit(token.encoded, joining: node.id, addresses: [], now: t0, voucherKeys: carol.keys).intents, author: carol.id)
        }
        var roster: MeshRoster { replica.roster(founded.meshID) }
        #expect(roster.members.count == 3)
        #expect(replica.submit(try replica.book(roster: roster).createProject("web", local: alice.local, now: t0), author: alice.id, roster: roster).isEmpty)
        #expect(replica.submit(try replica.book(roster: roster).addMember(bob.id, to: "web", local: alice.local, roster: roster), author: alice.id, roster: roster).isEmpty)
        #expect(replica.book(roster: roster).staleMembers(roster: roster).isEmpty)

        // Carol removes alice, the project's creator, from the mesh.
        replica.apply([try roster.remove(alice.id, at: t0 + 1, adminKeys: carol.keys)], author: carol.id)
        let book = replica.book(roster: roster)
        #expect(try book.members(of: "web") == [alice.id, bob.id].sorted())
        let stale = book.staleMembers(roster: roster)
        #expect(stale.count == 1 && stale.first?.project == "web" && stale.first?.member == alice.id)
        // Alice can write nothing more; bob rotates the key away from her.
        let fromAlice = replica.submit(try book.putSecret("LATE", value: "v", project: "web", local: alice.local), author: alice.id, roster: roster)
        #expect(fromAlice.first?.reason.contains("was removed from this mesh") == true)
        #expect(fromAlice.first?.awaitsDependency == false)
        let rotation = replica.submit(try book.removeMember(alice.id, from: "web", local: bob.local), author: bob.id, roster: roster)
        #expect(rotation.isEmpty, "\(rotation)")
        let after = replica.book(roster: roster)
        #expect(try after.members(of: "web") == [bob.id])
        #expect(after.staleMembers(roster: roster).isEmpty)
        #expect(after.projects["web"]?.record.creator == alice.id)
    }

    @Test func keyHistoryMakesTheBookIndependentOfArrivalOrderAndTheGateKeepsItWhole() throws {
        var replica = self.replica
        // Bob adds carol, then alice removes bob: carol's generation-2 entry is written by alice,
        // her generation-1 entry by bob, who is no longer a member.
        replica.apply(try replica.book().addMember(carol.id, to: "web", local: bob.local), author: bob.id)
        replica.apply(try replica.book().removeMember(bob.id, from: "web", local: alice.local), author: alice.id)
        let book = replica.book()
        #expect(try book.members(of: "web") == [alice.id, carol.id].sorted())
        #expect(try book.readSecret("DB_PASSWORD", project: "web", local: carol.local) == "hunter2-distinctive-plaintext")
        for order in [replica.snapshots.reversed(), replica.snapshots.shuffled()] {
            let other = ProjectBook(entries: Array(order))
            #expect(try other.members(of: "web") == [alice.id, carol.id].sorted())
            #expect(try other.project("web").generation == 2)
        }
        // Key entries are not deleted, and a generation that skips ahead is refused (held back by
        // the replica, as the generations between may still be on their way).
        let refused = replica.submit([
            .delete(.project, "key/web/1/\(bob.id)"),
            try ProjectMemberKey.sealing(ProjectKey.generate(generation: 4), project: "web", to: alice.id, addedBy: alice.id).intent,
        ], author: alice.id)
        #expect(refused.map(\.reason) == [
            "key entries are kept as history; remove a member to rotate the key",
            "key generation 4 does not follow the project's 2 (yet)",
        ])
        #expect(refused.map(\.awaitsDependency) == [false, true])
        // Bob, removed, can't write generation 2 (he'd need to be a member of it) nor 3.
        let byBob = replica.submit([
            try ProjectMemberKey.sealing(ProjectKey.generate(generation: 2), project: "web", to: bob.id, addedBy: bob.id).intent,
            try ProjectMemberKey.sealing(ProjectKey.generate(generation: 3), project: "web", to: bob.id, addedBy: bob.id).intent,
        ], author: bob.id)
        #expect(byBob.count == 2 && byBob.allSatisfy { $0.reason.contains("not a member of project web") })
        // Sealed to himself: refused outright and counted, not held back for a membership to come.
        #expect(byBob.allSatisfy { $0.rule == "key_not_project_member" && !$0.awaitsDependency }, "\(byBob)")
    }
}
