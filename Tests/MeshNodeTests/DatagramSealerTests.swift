import Gossip
@testable import MeshNode
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
