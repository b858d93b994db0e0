public import Gossip
internal import Sodium

/// The identity of a mesh: 16 bytes, printed as 32 hex digits.
///
/// It commits to its founder: `BLAKE2b-128("warren mesh v1" ‖ founder node ID ‖ salt)`, with a
/// random 16-byte salt kept in the founding record. So any node that knows only the mesh ID (from
/// an invite token) can tell the genuine founding record from a self-signed impostor, and the
/// roster needs no other root of trust. The salt makes the ID random: two meshes founded by the
/// same node differ.
public struct MeshID: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 16
    public static let saltLength = 16

    public let bytes: [UInt8]

    /// Nil unless `bytes` is exactly 16 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == MeshID.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Parses the printed form (32 hex digits); nil for anything else.
    public init?(_ text: String) {
        guard let raw = Hex.decode(text), let id = MeshID(bytes: raw) else { return nil }
        self = id
    }

    public var description: String { Hex.encode(bytes) }

    /// The first 8 hex digits, for messages.
    public var short: String { String(description.prefix(8)) }

    /// The ID of a mesh founded by `founder` with `salt`.
    public static func derive(founder: NodeID, salt: [UInt8]) -> MeshID {
        MeshID(bytes: BLAKE2b.hash(Array("warren mesh v1".utf8) + founder.bytes + salt, outputLength: byteCount))!
    }

    /// Whether `founder` and `salt` are the ones this ID was derived from.
    public func isFounded(by founder: NodeID, salt: [UInt8]) -> Bool {
        salt.count == MeshID.saltLength && MeshID.derive(founder: founder, salt: salt) == self
    }
}
