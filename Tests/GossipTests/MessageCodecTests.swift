@testable import Gossip
import Testing

@Suite struct MessageCodecTests {
    static let a = testID(1), b = testID(2)

    static let samples: [Message] = [
        .ping(seq: 7, target: a, updates: []),
        .ping(seq: .max, target: b, updates: [
            .alive(Member(id: a, address: "10.0.0.1:7946", metadata: [1, 2, 3], incarnation: 4)),
            .suspect(node: b, incarnation: 9, from: a),
            .dead(node: a, incarnation: 1, from: a),
            .entry(signedEntry(.domainClaim, key: "app.example.com", value: Array(repeating: 0xab, count: 300), wall: 1_800_000_000_000, logical: 3, author: a)),
            .entry(signedEntry(.lease, key: "gone", value: nil, wall: 5, author: b)),
        ]),
        .indirectPing(seq: 1, target: b, targetAddress: "[::1]:7946", updates: [.suspect(node: b, incarnation: 0, from: a)]),
        .ack(seq: 2, updates: []),
        .nack(seq: 3),
        .gossip(updates: [.entry(signedEntry(EntryKind(rawValue: 200), key: "future-kind", value: [9], wall: 1, author: a))]),
        .pushPull(PushPull(isReply: true, isJoin: true, members: [
            Member(id: a, address: "a", metadata: [], incarnation: 1, state: .alive),
            Member(id: b, address: "b", metadata: [7], incarnation: 2, state: .left),
        ], entries: [signedEntry(key: "x", value: [], wall: 1, author: b)])),
        .pushPull(PushPull(isReply: false, isJoin: false, members: [], entries: [])),
    ]

    @Test(arguments: samples)
    func roundTrips(_ message: Message) throws {
        let bytes = MessageCodec.encode(message)
        #expect(bytes[0] == MessageCodec.version)
        #expect(try MessageCodec.decode(bytes) == message)
    }

    @Test func typeNumbersAreStable() {
        #expect(MessageCodec.MessageType.ping.rawValue == 1)
        #expect(MessageCodec.MessageType.pushPull.rawValue == 6)
        #expect(MessageCodec.UpdateType.entry.rawValue == 4)
        #expect(MessageCodec.encode(.nack(seq: 0x0102_0304)) == [1, 4, 1, 2, 3, 4])
    }

    @Test func rejectsUnknownVersionAndType() {
        #expect(throws: WireError.unsupportedVersion(2)) { try MessageCodec.decode([2, 4, 0, 0, 0, 0]) }
        #expect(throws: WireError.unknownMessageType(99)) { try MessageCodec.decode([1, 99]) }
        #expect(throws: WireError.truncated) { try MessageCodec.decode([]) }
        #expect(throws: WireError.trailingBytes(1)) { try MessageCodec.decode([1, 4, 0, 0, 0, 0, 0]) }
    }

    @Test func rejectsCountsTheBytesCannotHold() {
        // A push-pull claiming 4 billion members in a few bytes must fail fast, not allocate.
        #expect(throws: WireError.tooMany(field: "members", count: Int(UInt32.max), limit: MessageCodec.Limits.stateItems)) {
            try MessageCodec.decode([1, 6, 0, 0xff, 0xff, 0xff, 0xff])
        }
        #expect(throws: WireError.truncated) { try MessageCodec.decode([1, 6, 0, 0, 0, 0x10, 0]) }
    }

    @Test func rejectsOverlongFields() {
        let big = Member(id: Self.a, address: String(repeating: "x", count: 300), incarnation: 0)
        let bytes = MessageCodec.encode(.gossip(updates: [.alive(big)]))
        #expect(throws: WireError.tooLong(field: "address", length: 300, limit: MessageCodec.Limits.address)) {
            try MessageCodec.decode(bytes)
        }
    }

    @Test func rejectsATombstoneThatCarriesAValue() throws {
        var bytes = MessageCodec.encode(.gossip(updates: [.entry(signedEntry(key: "k", value: [1], wall: 1, author: Self.a))]))
        // version, type, count(2), tag, kind, then flags: mark it a tombstone.
        bytes[6] = 1
        #expect(throws: WireError.invalidFlags(1)) { try MessageCodec.decode(bytes) }
    }

    /// The fuzz loop the issue asks for: random bytes, truncations and mutations of valid
    /// messages. Every outcome must be a message or a `WireError`; a crash fails the run.
    @Test func survivesRandomTruncatedAndMutatedBytes() {
        var rng = SeededRandom(seed: 2026)
        let valid = Self.samples.map(MessageCodec.encode)
        var decoded = 0, rejected = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0:
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if bytes.count > 0, Bool.random(using: &rng) { bytes[0] = 1 }
            case 1:
                let base = valid.randomElement(using: &rng)!
                bytes = Array(base.prefix(Int.random(in: 0...base.count, using: &rng)))
            default:
                bytes = valid.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            do {
                let m = try MessageCodec.decode(bytes)
                // Whatever decodes must encode back to the same bytes (the format is canonical).
                #expect(MessageCodec.encode(m) == bytes)
                decoded += 1
            } catch is WireError {
                rejected += 1
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
        #expect(decoded + rejected == 20_000)
        #expect(rejected > 0 && decoded > 0)
    }
}
