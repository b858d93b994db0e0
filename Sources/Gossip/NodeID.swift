/// The identity of a node in the mesh: its Ed25519 public key (32 bytes).
///
/// Printed as lower-case RFC 4648 base32 without padding (52 characters); tables show the first
/// `shortLength` characters. Because the ID *is* the public key, a signature by a node can be
/// checked from its ID alone.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public static let shortLength = 8

    /// The Ed25519 public key.
    public let bytes: [UInt8]

    /// Nil unless `bytes` is exactly 32 bytes long.
    public init?(bytes: [UInt8]) {
        guard bytes.count == NodeID.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Parses the printed form (case-insensitive); nil for anything else.
    public init?(_ text: String) {
        guard let decoded = Base32.decode(text), let id = NodeID(bytes: decoded) else { return nil }
        self = id
    }

    public var description: String { Base32.encode(bytes) }

    /// The first characters of the printed form, for tables and logs.
    public var short: String { String(description.prefix(NodeID.shortLength)) }

    /// Hashes whole words rather than 32 single bytes: member tables are looked up constantly.
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset + 8 <= raw.count {
                hasher.combine(raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                offset += 8
            }
            hasher.combine(raw.count)
        }
    }

    public static func == (lhs: NodeID, rhs: NodeID) -> Bool { lhs.bytes == rhs.bytes }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

/// RFC 4648 base32, lower-case, no padding.
enum Base32 {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0, bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int((buffer >> UInt32(bits)) & 31)])
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0, bits = 0
        for c in text.lowercased().utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            buffer = (buffer << 5) | UInt32(v)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((buffer >> UInt32(bits)) & 0xff))
            }
        }
        // Leftover bits must be zero padding of the last character, never data.
        guard bits < 5, buffer & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}
