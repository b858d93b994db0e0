import Foundation
package import Gossip
package import Sodium
package import Trust

/// A node's identity for tests.
package struct TestNode {
    package let keys = Ed25519.KeyPair.generate()
    package var id: NodeID { NodeID(bytes: keys.publicKey)! }
    package var local: LocalMember { try! LocalMember(identity: keys) }

    package init() {}
}

/// A stand-in for the replicated map: applies intents as the node would (last write wins per
/// (kind, key), a delete removes), remembering each entry's author.
package struct TestReplica {
    package private(set) var entries: [String: EntrySnapshot] = [:]

    package init() {}

    package mutating func apply(_ intents: [EntryIntent], author: NodeID) {
        for intent in intents {
            let slot = "\(intent.kind.rawValue)|\(intent.key)"
            if let value = intent.value {
                entries[slot] = EntrySnapshot(kind: intent.kind, key: intent.key, value: value, author: author)
            } else {
                entries[slot] = nil
            }
        }
    }

    /// Applies the intents the gate lets in, as a gossip replica would; returns the refusals.
    @discardableResult
    package mutating func submit(_ intents: [EntryIntent], author: NodeID, roster: MeshRoster? = nil) -> [EntryRefusal] {
        var refusals: [EntryRefusal] = []
        for intent in intents {
            do {
                try MeshEntryGate.check(kind: intent.kind, key: intent.key, value: intent.value, author: author,
                                        roster: roster, book: book(roster: roster))
                apply([intent], author: author)
            } catch let refusal as EntryRefusal {
                refusals.append(refusal)
            } catch {
                refusals.append(EntryRefusal(key: intent.key, reason: "\(error)"))
            }
        }
        return refusals
    }

    package var snapshots: [EntrySnapshot] { entries.keys.sorted().map { entries[$0]! } }

    package func roster(_ mesh: MeshID) -> MeshRoster { MeshRoster(meshID: mesh, snapshots: snapshots) }

    package func book(roster: MeshRoster? = nil) -> ProjectBook { ProjectBook(entries: snapshots, roster: roster) }
}

/// Bounded random and mutated inputs for decoders: every one must throw or decode, never crash.
package enum GarbageInputs {
    /// `count` random byte strings of 0..<maxLength bytes; half start with a plausible tag/version.
    package static func random(count: Int, maxLength: Int, tag: UInt8) -> [[UInt8]] {
        (0..<count).map { i in
            var bytes = Sodium.randomBytes(Int(Sodium.randomUniform(UInt32(maxLength))))
            if i % 2 == 0, bytes.count >= 2 { bytes[0] = tag; bytes[1] = 1 }
            return bytes
        }
    }

    /// Every prefix of `valid`, plus `flips` copies with one random byte changed.
    package static func mutations(of valid: [UInt8], flips: Int) -> [[UInt8]] {
        var out = (0..<valid.count).map { Array(valid.prefix($0)) }
        for _ in 0..<flips {
            var copy = valid
            let at = Int(Sodium.randomUniform(UInt32(copy.count)))
            copy[at] ^= UInt8(1 + Sodium.randomUniform(255))
            out.append(copy)
        }
        out.append(valid + [0])
        return out
    }
}
