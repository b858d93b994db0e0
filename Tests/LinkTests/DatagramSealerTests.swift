import Gossip
@testable import Link
import LinkTestSupport
import Sodium
import Testing

@Suite struct DatagramSealerTests {
    struct Peer {
        let id: NodeID
        var sealer: DatagramSealer
        init() {
            let keys = Ed25519.KeyPair.generate()
            id = NodeID(bytes: keys.publicKey)!
            sealer = DatagramSealer(localID: id, x25519SecretKey: try! Ed25519.x25519SecretKey(from: keys.secretKey))
        }
    }

    let now: Int64 = 1_800_000_000_000

    @Test func sealedDatagramOpensOnceAtItsPeer() throws {
        var a = Peer(), b = Peer()
        let d = try a.sealer.seal(Array("ping".utf8), to: b.id, nowMilliseconds: now)
        let (sender, payload) = try b.sealer.open(d, nowMilliseconds: now + 5, isMember: { $0 == a.id })
        #expect(sender == a.id)
        #expect(payload == Array("ping".utf8))
        #expect(throws: DatagramSealer.Refusal.replayed(a.id)) { try b.sealer.open(d, nowMilliseconds: now + 6, isMember: { _ in true }) }
    }

    @Test func refusesNonMembersTamperingStaleAndGarbage() throws {
        var a = Peer(), b = Peer(), c = Peer()
        let d = try a.sealer.seal([1, 2, 3], to: b.id, nowMilliseconds: now)
        #expect(throws: DatagramSealer.Refusal.unknownSender(a.id)) { try b.sealer.open(d, nowMilliseconds: now, isMember: { _ in false }) }
        var tampered = d; tampered[tampered.count - 1] ^= 1
        #expect(throws: DatagramSealer.Refusal.forged(a.id)) { try b.sealer.open(tampered, nowMilliseconds: now, isMember: { _ in true }) }
        // Sealed for b, so c can't open it even though a is a member to c.
        #expect(throws: DatagramSealer.Refusal.forged(a.id)) { try c.sealer.open(d, nowMilliseconds: now, isMember: { _ in true }) }
        let old = try a.sealer.seal([1], to: b.id, nowMilliseconds: now - 120_000)
        #expect(throws: DatagramSealer.Refusal.stale(a.id)) { try b.sealer.open(old, nowMilliseconds: now, isMember: { _ in true }) }
        for garbage: [UInt8] in [[], [1], [UInt8](repeating: 0, count: 200), [2] + d.dropFirst()] {
            #expect(throws: DatagramSealer.Refusal.malformed) { try b.sealer.open(garbage, nowMilliseconds: now, isMember: { _ in true }) }
        }
        // A forged sender field: the box fails because the key is the claimed sender's.
        var spoofed = d
        spoofed.replaceSubrange(1..<33, with: c.id.bytes)
        #expect(throws: DatagramSealer.Refusal.forged(c.id)) { try b.sealer.open(spoofed, nowMilliseconds: now, isMember: { _ in true }) }
    }

    @Test func peerKeysAreBoundedAndComputedAgainAfterEviction() throws {
        var a = Peer(), b = Peer()
        let first = try a.sealer.seal([1], to: b.id, nowMilliseconds: now)
        #expect(try b.sealer.open(first, nowMilliseconds: now, isMember: { _ in true }).payload == [1])
        // One more peer than the bound: the kept keys are dropped, never more than the bound.
        for _ in 0..<DatagramSealer.maxBoxes {
            _ = try a.sealer.seal([0], to: NodeID(bytes: Ed25519.KeyPair.generate().publicKey)!, nowMilliseconds: now)
        }
        let kept = Mirror(reflecting: a.sealer).children.first { $0.label == "boxes" }?.value as? [NodeID: Box]
        #expect((kept?.count ?? .max) <= DatagramSealer.maxBoxes)
        #expect(kept?[b.id] == nil, "b's key was among those dropped")
        // b's key is computed again and both directions still work.
        let again = try a.sealer.seal([2], to: b.id, nowMilliseconds: now + 1)
        #expect(try b.sealer.open(again, nowMilliseconds: now + 1, isMember: { _ in true }).payload == [2])
        let back = try b.sealer.seal([3], to: a.id, nowMilliseconds: now + 2)
        #expect(try a.sealer.open(back, nowMilliseconds: now + 2, isMember: { _ in true }).payload == [3])
    }

    @Test func replayMemoryIsBounded() throws {
        var a = Peer(), b = Peer()
        for i in 0..<200 {
            let d = try a.sealer.seal([UInt8(i & 0xff)], to: b.id, nowMilliseconds: now + Int64(i) * 1000)
            _ = try b.sealer.open(d, nowMilliseconds: now + Int64(i) * 1000, isMember: { _ in true })
        }
        // Old nonces (over two windows back) are forgotten; the window keeps them refusable as stale.
        let remembered = Mirror(reflecting: b.sealer).children.first { $0.label == "seen" }?.value as? Set<[UInt8]>
        #expect((remembered?.count ?? .max) <= 121)
    }
}
