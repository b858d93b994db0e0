import Foundation
import Gossip
@testable import MeshNode
@testable import Link
@testable import Trust
import Sodium

extension FuzzTarget {
    /// A gossip datagram as the transport receives it: opened by `DatagramSealer` (raw bytes, or a
    /// real datagram from a member carrying the fuzzed payload), then decoded by `MessageCodec`,
    /// whose encoding of a decoded message must be the bytes it came from.
    static let gossipDatagram = FuzzTarget(name: "gossip-datagram", summary: "DatagramSealer.open + MessageCodec.decode") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let mode = input.byte() % 3
        let data = input.rest
        let now: Int64 = 1_700_000_000_000
        var payload = data
        if mode != 2 {
            var receiver = DatagramSealer(localID: FuzzKeys.local.id, x25519SecretKey: FuzzKeys.local.staticKey.secretKey)
            var datagram = data
            if mode == 1 {
                var sender = DatagramSealer(localID: FuzzKeys.peer.id, x25519SecretKey: FuzzKeys.peer.staticKey.secretKey)
                do { datagram = try sender.seal(data, to: FuzzKeys.local.id, nowMilliseconds: now) } catch {
                    throw FuzzFailure("sealing \(data.count) bytes failed: \(error)")
                }
            }
            let opened: (sender: NodeID, payload: [UInt8])
            do throws(DatagramSealer.Refusal) {
                opened = try receiver.open(datagram, nowMilliseconds: now) { $0 == FuzzKeys.peer.id }
            } catch {
                try expect(mode == 0, "a datagram from a member was refused: \(error)")
                return
            }
            // Raw bytes open only if they are a real datagram of the one member (a seed is one).
            try expect(opened.sender == FuzzKeys.peer.id, "a datagram opened as from \(opened.sender), not a member")
            try expect(mode == 0 || opened.payload == data, "the datagram opened to other bytes than were sealed")
            payload = opened.payload
            var replayAccepted = false
            do throws(DatagramSealer.Refusal) {
                _ = try receiver.open(datagram, nowMilliseconds: now) { _ in true }
                replayAccepted = true
            } catch {
                try expect(error == .replayed(FuzzKeys.peer.id), "a replay was refused as \(error)")
            }
            try expect(!replayAccepted, "a replayed datagram was accepted")
        }
        guard let message = try? MessageCodec.decode(payload) else { return }
        let encoded = MessageCodec.encode(message)
        try expect(encoded == payload, "encode(decode(x)) != x for \(message)")
    }

    /// Entry values of every tag through their decoders (a decoded value must encode to the same
    /// bytes), and the mesh gate's check of each entry kind, before and after the mesh exists.
    static let entryCodec = FuzzTarget(name: "entry-codec", summary: "entry codecs + MeshEntryGate per entry kind") { bytes throws(FuzzFailure) in
        var input = FuzzInput(bytes)
        let selector = input.byte()
        let keyLength = Int(input.byte() % 96)
        let key = String(decoding: input.take(keyLength), as: UTF8.self)
        let value = input.rest

        func roundTrip<T>(_ what: String, _ decode: ([UInt8]) throws(EntryDecodingError) -> T, _ encode: (T) -> [UInt8]) throws(FuzzFailure) {
            guard let decoded = try? decode(value) else { return }
            try expect(encode(decoded) == value, "\(what): encode(decode(x)) != x")
        }
        try roundTrip("membership record", { v throws(EntryDecodingError) in try MembershipRecord(decoding: v) }, { $0.encoded() })
        try roundTrip("member removal", { v throws(EntryDecodingError) in try MemberRemoval(decoding: v) }, { $0.encoded() })
        try roundTrip("spent token", { v throws(EntryDecodingError) in try SpentToken(decoding: v) }, { $0.encoded() })
        try roundTrip("invite token", { v throws(EntryDecodingError) in try InviteToken(bytes: v) }, { $0.bytes })
        try roundTrip("project record", { v throws(EntryDecodingError) in try ProjectRecord(decoding: v) }, { $0.encoded() })
        try roundTrip("project member key", { v throws(EntryDecodingError) in try ProjectMemberKey(decoding: v) }, { $0.encoded() })
        try roundTrip("sealed secret", { v throws(EntryDecodingError) in try SealedSecret(decoding: v) }, { $0.encoded() })
        try roundTrip("project rotation", { v throws(EntryDecodingError) in try ProjectRotation(decoding: v) }, { $0.encoded() })

        let kinds = EntryKind.meshKinds
        let kind = kinds[Int(selector) % kinds.count]
        let author = selector & 0x80 == 0 ? FuzzKeys.local.id : FuzzKeys.peer.id
        let entryValue: [UInt8]? = selector & 0x40 == 0 ? value : nil
        let book = ProjectBook(entries: [])
        for roster in [nil, FuzzMesh.roster] {
            do throws(EntryRefusal) {
                try MeshEntryGate.check(kind: kind, key: key, value: entryValue, author: author, roster: roster, book: book)
            } catch {
                try expect(!error.reason.isEmpty, "a refusal without a reason")
            }
        }
        if let roster = FuzzMesh.roster {
            _ = MeshRoster.check(meshID: roster.meshID, key: key, value: value)
        }
    }

    /// The printed invite token (`warren-invite-…`) as `mesh join` reads it; a parsed token must
    /// print back to its own trimmed text.
    static let inviteToken = FuzzTarget(name: "invite-token", summary: "InviteToken(encoded:)") { bytes throws(FuzzFailure) in
        let text = String(decoding: bytes, as: UTF8.self)
        let token: InviteToken
        do { token = try InviteToken(encoded: text) } catch {
            try expect(!"\(error)".isEmpty, "a refusal without a reason")
            return
        }
        _ = token.isSignatureValid
        let reparsed: InviteToken
        do { reparsed = try InviteToken(encoded: token.encoded) } catch {
            throw FuzzFailure("a parsed token's own printed form was refused: \(error)")
        }
        try expect(reparsed.bytes == token.bytes, "the printed form parsed to another token")
        try expect((try? InviteToken(bytes: token.bytes))?.bytes == token.bytes, "the binary form did not round-trip")
    }
}

/// A founded mesh, so the gate checks writes against a real roster.
enum FuzzMesh {
    static let roster: MeshRoster? = {
        let founder = try? Ed25519.KeyPair.fromSeed([UInt8](repeating: 1, count: 32))
        guard let founder else { return nil }
        guard let (roster, intents) = try? MeshRoster.found(addresses: ["127.0.0.1:7946"], at: Date(timeIntervalSince1970: 1_700_000_000), keys: founder) else { return nil }
        return MeshRoster(meshID: roster.meshID, entries: intents.filter { $0.kind == .member }.compactMap { intent in intent.value.map { (intent.key, $0) } })
    }()
}
