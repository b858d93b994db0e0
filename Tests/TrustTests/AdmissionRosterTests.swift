import Foundation
import Gossip
@testable import Trust
import Sodium
import Testing
import TrustTestSupport

/// The roster built from member entries: its root of trust, and the records it refuses.
@Suite struct AdmissionRosterTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let founder = TestNode()
    var replica = TestReplica()
    let mesh: MeshID

    init() throws {
        let (roster, intents) = try MeshRoster.found(addresses: ["127.0.0.2:7946"], at: t0, keys: founder.keys)
        mesh = roster.meshID
        replica.apply(intents, author: founder.id)
    }

    /// Admits `node` on a token from `inviter`, vouched by `voucher`; returns the intents.
    func admission(_ node: TestNode, role: MeshRole, inviter: TestNode, voucher: TestNode, at: Date? = nil) throws -> [EntryIntent] {
        let token = try InviteToken.issue(meshID: mesh, role: role, expires: t0 + 3600, addresses: [], inviterKeys: inviter.keys)
        let record = try MembershipRecord.admitting(node.id, addresses: [], token: token, at: at ?? t0, voucherKeys: voucher.keys)
        return [record.intent]
    }

    @Test func theFoundersSelfSignedRecordIsTheRoot() throws {
        let roster = replica.roster(mesh)
        #expect(roster.founder == founder.id)
        #expect(roster.members == [founder.id])
        #expect(roster.isAdmin(founder.id))
        #expect(roster.memberAddresses == ["127.0.0.2:7946"])
        #expect(mesh.description.count == 32)
        #expect(MeshID(mesh.description) == mesh)

        // Another self-signed admin record for the same mesh ID is an impostor: the ID does not
        // commit to it. It does not count, nor do the members it "admits".
        let impostor = TestNode(), friend = TestNode()
        let fake = try MembershipRecord.founding(addresses: [], at: t0, keys: impostor.keys)
        let forged = MembershipRecord(meshID: mesh, member: impostor.id, role: .admin, addresses: [], admittedAt: t0,
                                      origin: fake.origin, signer: impostor.id, signature: [])
        let resigned = MembershipRecord(meshID: mesh, member: impostor.id, role: .admin, addresses: [], admittedAt: t0, origin: fake.origin,
                                        signer: impostor.id, signature: impostor.keys.sign(MembershipRecord.signingContext + forged.body))
        #expect(resigned.isSignatureValid)
        var r = replica
        r.apply([resigned.intent], author: impostor.id)
        r.apply(try admission(friend, role: .admin, inviter: impostor, voucher: impostor), author: impostor.id)
        let after = r.roster(mesh)
        #expect(after.members == [founder.id])
        #expect(after.founder == founder.id)
        #expect(after.rejections.contains { $0.key == "member/\(impostor.id)" && $0.reason.contains("mesh ID does not commit") })
        #expect(after.rejections.contains { $0.key == "member/\(friend.id)" && $0.reason.contains("not a member of this mesh") })
    }

    @Test func membersChainToTheFounderThroughAdmins() throws {
        let admin2 = TestNode(), runner = TestNode(), late = TestNode()
        // Entries may arrive in any order: the runner, admitted by admin2, before admin2 itself.
        var r = replica
        r.apply(try admission(runner, role: .runner, inviter: admin2, voucher: admin2), author: admin2.id)
        #expect(!r.roster(mesh).isMember(runner.id))
        r.apply(try admission(admin2, role: .admin, inviter: founder, voucher: founder), author: founder.id)
        let roster = r.roster(mesh)
        #expect(roster.members == [founder.id, admin2.id, runner.id].sorted())
        #expect(roster.role(of: runner.id) == .runner && roster.isAdmin(admin2.id))
        #expect(roster.rejections.isEmpty)
        // Any member may vouch (it checked the token), but only an admin may sign the token.
        r.apply(try admission(late, role: .gateway, inviter: admin2, voucher: runner), author: runner.id)
        #expect(r.roster(mesh).role(of: late.id) == .gateway)
    }

    @Test func recordsOfNonAdminsAndNonMembersAreRefused() throws {
        let runner = TestNode(), byRunner = TestNode(), byStranger = TestNode(), stranger = TestNode()
        var r = replica
        r.apply(try admission(runner, role: .runner, inviter: founder, voucher: founder), author: founder.id)
        // A token signed by a runner (not an admin).
        r.apply(try admission(byRunner, role: .runner, inviter: runner, voucher: runner), author: runner.id)
        // A good admin token, but the record signed by a node outside the mesh.
        r.apply(try admission(byStranger, role: .runner, inviter: founder, voucher: stranger), author: stranger.id)
        let roster = r.roster(mesh)
        #expect(roster.members == [founder.id, runner.id].sorted())
        #expect(roster.rejections.contains { $0.key == "member/\(byRunner.id)" && $0.reason.contains("is not an admin") })
        #expect(roster.rejections.contains { $0.key == "member/\(byStranger.id)" && $0.reason.contains("its signer") })

        // A removal signed by a non-admin does not count.
        r.apply([MemberRemoval.signed(meshID: mesh, member: founder.id, at: t0, adminKeys: runner.keys).intent], author: runner.id)
        let after = r.roster(mesh)
        #expect(after.isMember(founder.id))
        #expect(after.rejections.contains { $0.key == "removed/\(founder.id)" && $0.reason.contains("not an admin") })
        #expect(throws: AdmissionError.notAnAdmin(runner.id)) { _ = try after.remove(founder.id, at: t0, adminKeys: runner.keys) }
    }

    @Test func aRecordWithARoleOtherThanItsTokensIsRefused() throws {
        let node = TestNode()
        let token = try InviteToken.issue(meshID: mesh, role: .runner, expires: t0 + 60, addresses: [], inviterKeys: founder.keys)
        let honest = try MembershipRecord.admitting(node.id, addresses: [], token: token, at: t0, voucherKeys: founder.keys)
        // The voucher raises the role to admin in its own record: the token says runner.
        let raised = MembershipRecord(meshID: mesh, member: node.id, role: .admin, addresses: [], admittedAt: honest.admittedAt,
                                      origin: honest.origin, signer: founder.id, signature: [])
        let signed = MembershipRecord(meshID: mesh, member: node.id, role: .admin, addresses: [], admittedAt: honest.admittedAt, origin: honest.origin,
                                      signer: founder.id, signature: founder.keys.sign(MembershipRecord.signingContext + raised.body))
        var r = replica
        r.apply([signed.intent], author: founder.id)
        #expect(!r.roster(mesh).isMember(node.id))
        // Made after the token's expiry: refused too.
        let late = try MembershipRecord.admitting(node.id, addresses: [], token: token, at: t0 + 61, voucherKeys: founder.keys)
        r.apply([late.intent], author: founder.id)
        #expect(!r.roster(mesh).isMember(node.id))
        r.apply([honest.intent], author: founder.id)
        #expect(r.roster(mesh).role(of: node.id) == .runner)
    }

    @Test func aTokenAdmitsOneNodeEvenWhenTwoMembersAcceptItAtOnce() throws {
        let first = TestNode(), second = TestNode()
        let token = try InviteToken.issue(meshID: mesh, role: .runner, expires: t0 + 60, addresses: [], inviterKeys: founder.keys)
        var r = replica
        r.apply([try MembershipRecord.admitting(second.id, addresses: [], token: token, at: t0 + 2, voucherKeys: founder.keys).intent], author: founder.id)
        r.apply([try MembershipRecord.admitting(first.id, addresses: [], token: token, at: t0 + 1, voucherKeys: founder.keys).intent], author: founder.id)
        let roster = r.roster(mesh)
        #expect(roster.isMember(first.id))
        #expect(!roster.isMember(second.id))
        #expect(roster.spentTokenIDs.contains(token.id))
    }

    @Test func removalIsFinalAndAReplayedAdmissionDoesNotUndoIt() throws {
        let runner = TestNode()
        let admitted = try admission(runner, role: .runner, inviter: founder, voucher: founder)
        var r = replica
        r.apply(admitted, author: founder.id)
        let removal = try r.roster(mesh).remove(runner.id, at: t0 + 10, adminKeys: founder.keys)
        #expect(removal.key == "removed/\(runner.id)")
        r.apply([removal], author: founder.id)
        #expect(!r.roster(mesh).isMember(runner.id))
        // The old admission record gossiped again (by anyone) changes nothing.
        r.apply(admitted, author: runner.id)
        let roster = r.roster(mesh)
        #expect(!roster.isMember(runner.id) && roster.isRemoved(runner.id))
        // Nor can the removed node be admitted again with a fresh token.
        let token = try roster.issueInvite(role: .runner, ttl: 60, now: t0, inviterKeys: founder.keys)
        var verifier = InviteVerifier(roster: roster)
        let refusal = try #require(throws: AdmissionRefusal.self) {
            _ = try verifier.admit(token.encoded, joining: runner.id, addresses: [], now: t0, voucherKeys: founder.keys)
        }
        #expect(refusal == .removedNode(runner.id))
        #expect(refusal.description.contains("was removed from this mesh"))
        #expect(throws: AdmissionError.notAMember(runner.id)) { _ = try roster.remove(runner.id, at: t0, adminKeys: founder.keys) }

        // A removed member can't vouch for anyone after its removal, even with a good token.
        let joiner = TestNode()
        let fresh = try roster.issueInvite(role: .runner, ttl: 60, now: t0 + 20, inviterKeys: founder.keys)
        r.apply([try MembershipRecord.admitting(joiner.id, addresses: [], token: fresh, at: t0 + 30, voucherKeys: runner.keys).intent], author: runner.id)
        let final = r.roster(mesh)
        #expect(!final.isMember(joiner.id))
        #expect(final.rejections.contains { $0.key == "member/\(joiner.id)" && $0.reason.contains("was removed") })
    }

    @Test func singleEntriesAreCheckedAgainstTheirKeyMeshAndSignature() throws {
        let record = try #require(replica.snapshots.first)
        guard case .success(.member(let decoded)) = MeshRoster.check(meshID: mesh, key: record.key, value: record.value) else {
            Issue.record("the founding record did not check"); return
        }
        #expect(decoded.member == founder.id)
        var flipped = record.value
        flipped[flipped.count - 1] ^= 1
        let other = TestNode()
        let otherMesh = MeshID(bytes: Array(repeating: 7, count: 16))!
        let bad: [(String, [UInt8], MeshID, String)] = [
            (record.key, flipped, mesh, "signature does not verify"),
            ("member/\(other.id)", record.value, mesh, "differs from its key"),
            (record.key, record.value, otherMesh, "it is for mesh"),
            ("members/\(founder.id)", record.value, mesh, "unknown key"),
            ("removed/\(founder.id)", record.value, mesh, "type tag"),
        ]
        for (key, value, id, why) in bad {
            guard case .failure(let error) = MeshRoster.check(meshID: id, key: key, value: value) else {
                Issue.record("\(key) was accepted"); continue
            }
            #expect(error.description.contains(why), "\(error)")
        }
    }

    @Test func memberEntryValuesRoundTripAndGarbageNeverCrashes() throws {
        let runner = TestNode()
        let token = try InviteToken.issue(meshID: mesh, role: .runner, expires: t0 + 60, addresses: ["a:1"], inviterKeys: founder.keys)
        let record = try MembershipRecord.admitting(runner.id, addresses: ["127.0.0.9:7946", "[::1]:1"], token: token, at: t0 + 0.1234, voucherKeys: founder.keys)
        let founding = try MembershipRecord(decoding: try #require(replica.snapshots.first).value)
        let removal = MemberRemoval.signed(meshID: mesh, member: runner.id, at: t0 + 5.5, adminKeys: founder.keys)
        let spent = SpentToken(meshID: mesh, tokenID: token.id, member: runner.id, at: t0)

        #expect(try MembershipRecord(decoding: record.encoded()) == record)
        #expect(try MembershipRecord(decoding: record.encoded()).isSignatureValid)
        #expect(try MembershipRecord(decoding: founding.encoded()) == founding)
        #expect(try MemberRemoval(decoding: removal.encoded()) == removal)
        #expect(try MemberRemoval(decoding: removal.encoded()).isSignatureValid)
        #expect(try SpentToken(decoding: spent.encoded()) == spent)
        #expect(MemberEntryKey(spent.entryKey) == .spent(tokenID: token.id))
        #expect(MemberEntryKey("spent/xyz") == nil && MemberEntryKey("member/nope") == nil && MemberEntryKey("") == nil)

        let decoders: [(EntryTag, [UInt8], ([UInt8]) throws -> [UInt8])] = [
            (.membership, record.encoded(), { try MembershipRecord(decoding: $0).encoded() }),
            (.membership, founding.encoded(), { try MembershipRecord(decoding: $0).encoded() }),
            (.removal, removal.encoded(), { try MemberRemoval(decoding: $0).encoded() }),
            (.spentToken, spent.encoded(), { try SpentToken(decoding: $0).encoded() }),
        ]
        for (tag, valid, decode) in decoders {
            var refused = 0
            let inputs = GarbageInputs.random(count: 1000, maxLength: 400, tag: tag.rawValue) + GarbageInputs.mutations(of: valid, flips: 300)
            for bytes in inputs {
                do {
                    #expect(try decode(bytes) == bytes, "a decoded value re-encodes to its bytes")
                } catch is EntryDecodingError {
                    refused += 1
                }
                // And the roster, given it as an entry, neither crashes nor lets it in unverified.
                let roster = MeshRoster(meshID: mesh, entries: [(founding.entryKey, founding.encoded()), ("member/\(runner.id)", bytes), ("removed/\(founder.id)", bytes)])
                #expect(roster.isMember(founder.id))
                #expect(!roster.isMember(runner.id))
            }
            #expect(refused > inputs.count / 2)
        }
    }

    @Test func theGateForMemberEntriesRefusesDeletesForeignSpentTokensAndBadRecords() throws {
        let roster = replica.roster(mesh)
        let runner = TestNode(), stranger = TestNode()
        let admitted = try admission(runner, role: .runner, inviter: founder, voucher: founder)
        let spent = SpentToken(meshID: mesh, tokenID: String(repeating: "ab", count: 16), member: runner.id, at: t0)
        var r = replica
        // A joining node takes records in from anyone: their signatures speak for them.
        #expect(r.submit(admitted, author: stranger.id, roster: roster).isEmpty)
        #expect(r.roster(mesh).isMember(runner.id))
        let refused = r.submit([
            .delete(.member, "member/\(founder.id)"),
            spent.intent,
            .put(.member, "member/\(stranger.id)", admitted[0].value!),
        ], author: stranger.id, roster: r.roster(mesh))
        #expect(refused.map(\.reason) == [
            "member entries are never deleted",
            "its author \(stranger.id.short)… is not a member of this mesh (yet)",
            "malformed membership record: its member differs from its key",
        ])
        #expect(r.submit([spent.intent], author: runner.id, roster: r.roster(mesh)).isEmpty)

        // A member can't replace another's record with one that doesn't chain to the founder,
        // nor reuse a token, nor remove anyone without being an admin.
        let selfMade = try MembershipRecord.founding(addresses: [], at: t0, keys: runner.keys)
        let usurper = MembershipRecord(meshID: mesh, member: founder.id, role: .admin, addresses: [], admittedAt: t0,
                                       origin: selfMade.origin, signer: runner.id, signature: [])
        let usurping = MembershipRecord(meshID: mesh, member: founder.id, role: .admin, addresses: [], admittedAt: t0, origin: selfMade.origin,
                                        signer: runner.id, signature: runner.keys.sign(MembershipRecord.signingContext + usurper.body))
        guard case .invited(let usedToken) = try MembershipRecord(decoding: admitted[0].value!).origin else { Issue.record("not invited"); return }
        let reuse = try MembershipRecord.admitting(stranger.id, addresses: [], token: usedToken, at: t0, voucherKeys: founder.keys)
        let byRunner = MemberRemoval.signed(meshID: mesh, member: founder.id, at: t0, adminKeys: runner.keys)
        let before = r.snapshots
        let attacks = r.submit([usurping.intent, reuse.intent, byRunner.intent], author: runner.id, roster: r.roster(mesh))
        #expect(attacks.map(\.reason) == [
            "a self-signed record that the mesh ID does not commit to",
            "its invite token already admitted node \(runner.id.short)…",
            "signed by \(runner.id.short)…, which is not an admin",
        ])
        #expect(r.snapshots == before)
        #expect(r.roster(mesh).isAdmin(founder.id))
        #expect(r.roster(mesh).spentTokenIDs.contains(spent.tokenID))

        r.apply([try r.roster(mesh).remove(runner.id, at: t0 + 1, adminKeys: founder.keys)], author: founder.id)
        let changes = r.roster(mesh).changes(since: roster)
        #expect(changes.joined.isEmpty && changes.removed.isEmpty)
        #expect(r.roster(mesh).changes(since: replica.roster(mesh)).joined.isEmpty)
        var joinedOnly = replica
        joinedOnly.apply(admitted, author: founder.id)
        #expect(joinedOnly.roster(mesh).changes(since: roster).joined == [runner.id])
        #expect(r.roster(mesh).changes(since: joinedOnly.roster(mesh)).removed == [runner.id])
    }
}
