internal import Foundation
internal import Gossip

/// The binary layout shared by every entry value of admission, projects and secrets.
///
/// ```
///  0        1          2
///  +--------+----------+------------------------------------------+
///  | tag    | version  | fields, in the order each type documents |
///  +--------+----------+------------------------------------------+
///  integers: big-endian, fixed width
///  bytes:    u16 length ‖ bytes        (length bounded per field)
///  fixed:    bytes of a known length, no prefix (keys, signatures)
/// ```
///
/// Tags are explicit and append-only; a decoder refuses a tag, a version or a trailing byte it does
/// not expect, so untrusted bytes give an `EntryDecodingError`, never a crash.
public enum EntryTag: UInt8, Sendable {
    case membership = 1
    case removal = 2
    case spentToken = 3
    case inviteToken = 4
    case project = 5
    case projectMemberKey = 6
    case sealedSecret = 7
    case projectRotation = 8
    // Only append to this list.
}

/// An entry value (or a token) that could not be decoded: says which and why.
public struct EntryDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public var what: String
    public var reason: String

    public init(_ what: String, _ reason: String) {
        self.what = what
        self.reason = reason
    }

    public var description: String { "malformed \(what): \(reason)" }
}

/// Builds an entry value field by field.
struct EntryWriter {
    private(set) var bytes: [UInt8]

    init(tag: EntryTag, version: UInt8 = 1) {
        bytes = [tag.rawValue, version]
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
    mutating func u64(_ v: UInt64) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func fixed(_ v: [UInt8]) { bytes += v }
    /// A time, as whole milliseconds since 1970.
    mutating func date(_ d: Date) { i64(d.entryMilliseconds) }

    /// Length-prefixed bytes. Callers validate lengths before writing; a longer value is a
    /// programming error caught here rather than a silently truncated field.
    mutating func variable(_ v: [UInt8]) {
        precondition(v.count <= Int(UInt16.max), "entry field longer than 65535 bytes")
        bytes += withUnsafeBytes(of: UInt16(v.count).bigEndian, Array.init)
        bytes += v
    }

    mutating func string(_ s: String) { variable(Array(s.utf8)) }
}

/// Reads an entry value written by `EntryWriter`, refusing anything out of bounds.
struct EntryReader {
    private let bytes: [UInt8]
    private var offset = 0
    let what: String
    let version: UInt8

    /// Checks the tag and the version (`1...maxVersion`).
    init(_ bytes: [UInt8], tag: EntryTag, what: String, maxVersion: UInt8 = 1) throws(EntryDecodingError) {
        self.bytes = bytes
        self.what = what
        guard bytes.count >= 2 else { throw EntryDecodingError(what, "\(bytes.count) bytes, too short") }
        guard bytes[0] == tag.rawValue else { throw EntryDecodingError(what, "type tag \(bytes[0]), expected \(tag.rawValue)") }
        guard (1...maxVersion).contains(bytes[1]) else { throw EntryDecodingError(what, "unsupported version \(bytes[1])") }
        version = bytes[1]
        offset = 2
    }

    private mutating func take(_ n: Int, _ field: String) throws(EntryDecodingError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count - offset >= n else { throw EntryDecodingError(what, "truncated at \(field)") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func u8(_ field: String) throws(EntryDecodingError) -> UInt8 { try take(1, field).first! }

    mutating func u32(_ field: String) throws(EntryDecodingError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64(_ field: String) throws(EntryDecodingError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func i64(_ field: String) throws(EntryDecodingError) -> Int64 { Int64(bitPattern: try u64(field)) }

    mutating func fixed(_ n: Int, _ field: String) throws(EntryDecodingError) -> [UInt8] { Array(try take(n, field)) }

    mutating func date(_ field: String) throws(EntryDecodingError) -> Date {
        // Within ±2^50 ms (35,000 years) a Date holds the milliseconds exactly, so a decoded
        // value re-encodes to the same bytes (and a signature over it still verifies).
        let ms = try i64(field)
        guard ms.magnitude <= 1 << 50 else { throw EntryDecodingError(what, "\(field) is out of range") }
        return Date(entryMilliseconds: ms)
    }

    mutating func variable(_ field: String, max: Int) throws(EntryDecodingError) -> [UInt8] {
        let n = Int(try take(2, field).reduce(UInt16(0)) { $0 << 8 | UInt16($1) })
        guard n <= max else { throw EntryDecodingError(what, "\(field) is \(n) bytes, at most \(max) allowed") }
        return Array(try take(n, field))
    }

    mutating func string(_ field: String, max: Int) throws(EntryDecodingError) -> String {
        let raw = try variable(field, max: max)
        guard let s = String(validating: raw, as: UTF8.self) else { throw EntryDecodingError(what, "\(field) is not UTF-8") }
        return s
    }

    mutating func nodeID(_ field: String) throws(EntryDecodingError) -> NodeID {
        NodeID(bytes: try fixed(NodeID.byteCount, field))!
    }

    /// Refuses trailing bytes: a value has exactly one encoding.
    func finish() throws(EntryDecodingError) {
        guard offset == bytes.count else { throw EntryDecodingError(what, "\(bytes.count - offset) unexpected trailing bytes") }
    }
}

extension Date {
    /// Milliseconds since 1970, rounded to the nearest, as entries store times. Rounding (not
    /// truncating) makes a decoded time encode to the same integer again.
    var entryMilliseconds: Int64 {
        let ms = (timeIntervalSince1970 * 1000).rounded()
        return ms >= 9.2e18 ? .max : ms <= -9.2e18 ? .min : Int64(ms)
    }

    init(entryMilliseconds ms: Int64) {
        self.init(timeIntervalSince1970: TimeInterval(ms) / 1000)
    }

    /// This time as an entry stores it.
    var truncatedToEntryPrecision: Date { Date(entryMilliseconds: entryMilliseconds) }
}
