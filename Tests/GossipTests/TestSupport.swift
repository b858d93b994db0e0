@testable import Gossip

/// A node ID made of one repeated byte, for readable tests.
func testID(_ byte: UInt8) -> NodeID { NodeID(bytes: Array(repeating: byte, count: 32))! }

func makeNode(_ byte: UInt8, config: GossipConfig = .lan, now: Duration = .zero) -> GossipNode {
    let id = testID(byte)
    // Test addresses are short, so this cannot throw.
    return try! GossipNode(
        id: id, address: "10.0.0.\(byte):7946", config: config, wallClockAtZero: 1_800_000_000_000, now: now,
        random: SeededRandom(seed: UInt64(byte)), sign: SimulatedSignature.signer(for: id), verify: SimulatedSignature.verifier
    )
}

func signedEntry(_ kind: EntryKind = .lease, key: String, value: [UInt8]?, wall: UInt64, logical: UInt32 = 0, author: NodeID) -> Entry {
    var e = Entry(kind: kind, key: key, value: value, timestamp: HLCTimestamp(wallMillis: wall, logical: logical), author: author, signature: [])
    e.signature = SimulatedSignature.signature(e.signedBytes, author)
    return e
}

extension [GossipNode.Action] {
    var sends: [(to: NodeID, message: Message)] {
        compactMap { action in
            guard case let .send(to, _, bytes) = action, let m = try? MessageCodec.decode(bytes) else { return nil }
            return (to, m)
        }
    }

    var entryChanges: [EntryChange] {
        compactMap { if case let .entryChanged(c) = $0 { c } else { nil } }
    }

    var memberChanges: [Member] {
        compactMap { if case let .memberChanged(m) = $0 { m } else { nil } }
    }
}

/// Kinds for these tests, as the layer above Gossip defines its own (the mesh's are in Trust):
/// Gossip carries a kind as a number and knows none of them.
extension EntryKind {
    static let member = EntryKind(rawValue: 1)
    static let gateway = EntryKind(rawValue: 2)
    static let lease = EntryKind(rawValue: 3)
    static let domainClaim = EntryKind(rawValue: 4)
    static let project = EntryKind(rawValue: 5)
    static let secret = EntryKind(rawValue: 6)
}
