import Foundation
import Gossip
@testable import Trust
import Sodium
import Testing
import TrustTestSupport

/// The checks a contacted member makes on an invite token, one refusal per case.
@Suite struct AdmissionTokenTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let founder = TestNode()
    let runner = TestNode()
    let joiner = TestNode()
    var replica = TestReplica()
    let mesh: MeshID

    init() throws {
        let (roster, intents) = try MeshRoster.found(addresses: ["127.0.0.2:7946"], at: t0, keys: founder.keys)
        mesh = roster.meshID
        replica.apply(intents, author: founder.id)
        // A runner member, admitted by the founder.
        let token = try roster.issueInvite(role: .runner, ttl: 3600, now: t0, inviterKeys: founder.keys)
        var verifier = InviteVerifier(roster: roster)
        let admitted = try verifier.admit(token.encoded, joining: runner.id, addresses: ["127.0.0.3:7946"], now: t0, voucherKeys: founder.keys)
        replica.apply(admitted.intents, author: founder.id)
    }

    var roster: MeshRoster { replica.roster(mesh) }

    /// The refusal `text` gets, or nil when accepted.
    func refusal(_ text: String?, now: Date? = nil) -> AdmissionRefusal? {
        do {
            _ = try InviteVerifier(roster: roster).verify(text, now: now ?? t0)
            return nil
        } catch {
            return error
        }
    }

    @Test func theSetUpIsWhatTheOtherTestsAssume() {
        #expect(roster.founder == founder.id)
        #expect(roster.isAdmin(founder.id))
        #expect(roster.role(of: runner.id) == .runner)
        #expect(!roster.isAdmin(runner.id))
        #expect(!roster.isMember(joiner.id))
        #expect(roster.rejections.isEmpty)
    }

    @Test func aGoodTokenIsAcceptedOnceAndRefusedTheSecondTime() throws {
        let token = try roster.issueInvite(role: .gateway, ttl: 3600, now: t0, inviterKeys: founder.keys)
        #expect(token.addresses.contains("127.0.0.2:7946"))
        var verifier = InviteVerifier(roster: roster)
        let (record, intents) = try verifier.admit(token.encoded, joining: joiner.id, addresses: [], now: t0, voucherKeys: founder.keys)
        #expect(record.member == joiner.id && record.role == .gateway && record.admittedBy == founder.id)
        #expect(intents.map(\.key).sorted() == ["member/\(joiner.id)", "spent/\(token.id)"])

        // The same verifier refuses it at once, before any gossip.
        let again = TestNode()
        #expect(throws: AdmissionRefusal.reused(tokenID: token.id)) {
            _ = try verifier.admit(token.encoded, joining: again.id, addresses: [], now: t0, voucherKeys: founder.keys)
        }
        // Another member, once the entries reached it, refuses it too, with a message saying so.
        var elsewhere = replica
        elsewhere.apply(intents, author: founder.id)
        #expect(elsewhere.roster(mesh).role(of: joiner.id) == .gateway)
        let refusal = try #require(throws: AdmissionRefusal.self) {
            _ = try InviteVerifier(roster: elsewhere.roster(mesh)).verify(token.encoded, now: t0)
        }
        #expect(refusal == .reused(tokenID: token.id))
        #expect(refusal.description.contains("already used"))
    }

    @Test func noTokenIsRefused() {
        for text in [nil, "", "  \n"] as [String?] {
            #expect(refusal(text) == .noToken)
        }
        #expect(refusal(nil)?.description.contains("no invite token was presented") == true)
    }

    @Test func malformedTokensAreRefusedSayingSo() throws {
        let good = try roster.issueInvite(role: .runner, ttl: 60, now: t0, inviterKeys: founder.keys).encoded
        let cases = ["hello", "warren1.", "warren1.!!!!", "warren2." + good.dropFirst(8), String(good.dropLast(10)),
                     good + "AAAA", String(repeating: "A", count: 10_000)]
        for text in cases {
            guard case .malformed = refusal(text) else {
                Issue.record("\(text.prefix(30)) was not refused as malformed: \(String(describing: refusal(text)))")
                continue
            }
            #expect(refusal(text)?.description.contains("the invite token is malformed") == true)
        }
    }

    @Test func aTokenOfAnotherMeshIsRefused() throws {
        let other = try MeshRoster.found(addresses: [], at: t0, keys: founder.keys).roster
        let token = try other.issueInvite(role: .runner, ttl: 60, now: t0, inviterKeys: founder.keys)
        let r = refusal(token.encoded)
        #expect(r == .otherMesh(token: other.meshID, local: mesh))
        #expect(r?.description.contains("is for mesh \(other.meshID), but this member belongs to mesh \(mesh)") == true)
    }

    @Test func aForgedTokenIsRefused() throws {
        let token = try roster.issueInvite(role: .runner, ttl: 60, now: t0, inviterKeys: founder.keys)
        // Raise the role to admin without the inviter's key: the signature no longer matches.
        var bytes = token.bytes
        let roleOffset = 2 + MeshID.byteCount + NodeID.byteCount
        #expect(bytes[roleOffset] == MeshRole.runner.rawValue)
        bytes[roleOffset] = MeshRole.admin.rawValue
        let altered = InviteToken.prefix + Base64URL.encode(bytes)
        // And a token signed by an outsider that names the founder as its inviter.
        let outsider = TestNode()
        let byOutsider = try InviteToken.issue(meshID: mesh, role: .admin, expires: t0 + 60, addresses: [], inviterKeys: outsider.keys)
        var impersonating = Array(byOutsider.bytes)
        impersonating.replaceSubrange((2 + MeshID.byteCount)..<(2 + MeshID.byteCount + NodeID.byteCount), with: founder.id.bytes)
        for text in [altered, InviteToken.prefix + Base64URL.encode(impersonating)] {
            let r = refusal(text)
            #expect(r == .forged(inviter: founder.id))
            #expect(r?.description.contains("does not verify against its inviter") == true)
        }
    }

    @Test func aNonAdminsTokenIsRefused() throws {
        // A runner can't issue through the roster …
        #expect(throws: AdmissionError.notAnAdmin(runner.id)) {
            _ = try roster.issueInvite(role: .runner, ttl: 60, now: t0, inviterKeys: runner.keys)
        }
        // … and a token it signs anyway is refused, as is one by a node outside the mesh.
        let byRunner = try InviteToken.issue(meshID: mesh, role: .runner, expires: t0 + 60, addresses: [], inviterKeys: runner.keys)
        let r = refusal(byRunner.encoded)
        #expect(r == .notAnAdmin(inviter: runner.id, role: .runner))
        #expect(r?.description.contains("which is a member with role runner, not admin; only admins may invite") == true)
        let stranger = TestNode()
        let byStranger = try InviteToken.issue(meshID: mesh, role: .runner, expires: t0 + 60, addresses: [], inviterKeys: stranger.keys)
        #expect(refusal(byStranger.encoded) == .notAnAdmin(inviter: stranger.id, role: nil))
        #expect(refusal(byStranger.encoded)?.description.contains("not a member of this mesh") == true)
    }

    @Test func anExpiredTokenIsRefused() throws {
        let token = try roster.issueInvite(role: .runner, ttl: 3600, now: t0, inviterKeys: founder.keys)
        #expect(refusal(token.encoded, now: t0 + 3599) == nil)
        for late in [t0 + 3600, t0 + 86_400] {
            let r = refusal(token.encoded, now: late)
            #expect(r == .expired(at: t0 + 3600))
            #expect(r?.description.contains("the invite token expired at 2027-01-15T09:00:00Z") == true)
        }
    }

    @Test func aTokenOfARemovedAdminIsRefused() throws {
        let token = try roster.issueInvite(role: .runner, ttl: 3600, now: t0, inviterKeys: founder.keys)
        // A second admin removes the founder; the founder's outstanding token stops working.
        let admin2 = TestNode()
        let invite = try roster.issueInvite(role: .admin, ttl: 3600, now: t0, inviterKeys: founder.keys)
        var verifier = InviteVerifier(roster: roster)
        var r = replica
        r.apply(try verifier.admit(invite.encoded, joining: admin2.id, addresses: [], now: t0, voucherKeys: founder.keys).intents, author: founder.id)
        r.apply([try r.roster(mesh).remove(founder.id, at: t0 + 1, adminKeys: admin2.keys)], author: admin2.id)
        let after = r.roster(mesh)
        #expect(!after.isMember(founder.id) && after.isRemoved(founder.id))
        #expect(throws: AdmissionRefusal.notAnAdmin(inviter: founder.id, role: nil)) {
            _ = try InviteVerifier(roster: after).verify(token.encoded, now: t0 + 2)
        }
    }

    @Test func invitationsNeedAPositiveTimeToLiveOfAtMostSevenDays() {
        #expect(throws: Never.self) { _ = try roster.issueInvite(role: .runner, ttl: InviteToken.maxTTL, now: t0, inviterKeys: founder.keys) }
        for ttl in [0, -5, .infinity, InviteToken.maxTTL + 1, 99999 * 86400] as [Double] {
            #expect(throws: AdmissionError.invalidTTL(ttl)) {
                _ = try roster.issueInvite(role: .runner, ttl: ttl, now: t0, inviterKeys: founder.keys)
            }
        }
    }

    @Test func tokensRoundTripThroughTheirPrintedForm() throws {
        let token = try roster.issueInvite(role: .gateway, ttl: 600, now: t0, inviterKeys: founder.keys, addresses: ["127.0.0.2:7946", "[::1]:7946"])
        #expect(token.encoded.hasPrefix("warren1."))
        #expect(token.encoded.allSatisfy { $0.isLetter || $0.isNumber || "._-".contains($0) })
        let decoded = try InviteToken(encoded: " \(token.encoded)\n")
        #expect(decoded == token)
        #expect(decoded.isSignatureValid)
        #expect(decoded.id.count == InviteToken.idLength)
        #expect(throws: AdmissionError.self) {
            _ = try InviteToken.issue(meshID: mesh, role: .runner, expires: t0, addresses: Array(repeating: "a:1", count: 17), inviterKeys: founder.keys)
        }
    }

    @Test func garbageNeverCrashesTheTokenDecoder() throws {
        let token = try roster.issueInvite(role: .runner, ttl: 600, now: t0, inviterKeys: founder.keys)
        var inputs = GarbageInputs.random(count: 2000, maxLength: 300, tag: EntryTag.inviteToken.rawValue)
        inputs += GarbageInputs.mutations(of: token.bytes, flips: 500)
        var accepted = 0
        for bytes in inputs {
            if let t = try? InviteToken(encoded: InviteToken.prefix + Base64URL.encode(bytes)) {
                // Whatever decodes re-encodes to the same bytes; a changed one no longer verifies.
                #expect(t.bytes == bytes)
                if bytes != token.bytes, t.inviter == token.inviter { #expect(!t.isSignatureValid) }
                accepted += 1
            }
        }
        // The garbage is not accepted wholesale: only intact or signature-only changes decode.
        #expect(accepted < inputs.count / 4)
    }
}
