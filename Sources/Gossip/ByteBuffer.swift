/// Big-endian writer for the wire format and for signed bytes.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
    mutating func u32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(shift)) & 0xff)) }
    }
    mutating func u64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(shift)) & 0xff)) }
    }
    mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }
    /// Callers keep `v` within the codec's limits (all far below 2^16 / 2^32).
    mutating func bytes8(_ v: [UInt8]) { u8(UInt8(truncatingIfNeeded: v.count)); raw(v) }
    mutating func bytes16(_ v: [UInt8]) { u16(UInt16(truncatingIfNeeded: v.count)); raw(v) }
    mutating func bytes32(_ v: [UInt8]) { u32(UInt32(truncatingIfNeeded: v.count)); raw(v) }
    mutating func string16(_ s: String) { bytes16(Array(s.utf8)) }
}

/// Big-endian reader; every read checks the remaining length and throws instead of trapping.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var index: Int = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - index }

    mutating func u8() throws(WireError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { index += 1 }
        return bytes[index]
    }
    mutating func u16() throws(WireError) -> UInt16 {
        UInt16(try u8()) << 8 | UInt16(try u8())
    }
    mutating func u32() throws(WireError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 8 | UInt32(try u8()) }
        return v
    }
    mutating func u64() throws(WireError) -> UInt64 {
        var v: UInt64 = 0
        for _ in 0..<8 { v = v << 8 | UInt64(try u8()) }
        return v
    }
    mutating func raw(_ count: Int) throws(WireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { index += count }
        return Array(bytes[index..<index + count])
    }
    mutating func bytes8(max: Int, field: StaticString) throws(WireError) -> [UInt8] {
        let n = Int(try u8())
        guard n <= max else { throw .tooLong(field: "\(field)", length: n, limit: max) }
        return try raw(n)
    }
    mutating func bytes16(max: Int, field: StaticString) throws(WireError) -> [UInt8] {
        let n = Int(try u16())
        guard n <= max else { throw .tooLong(field: "\(field)", length: n, limit: max) }
        return try raw(n)
    }
    mutating func bytes32(max: Int, field: StaticString) throws(WireError) -> [UInt8] {
        let n = Int(try u32())
        guard n <= max else { throw .tooLong(field: "\(field)", length: n, limit: max) }
        return try raw(n)
    }
    mutating func string16(max: Int, field: StaticString) throws(WireError) -> String {
        let raw = try bytes16(max: max, field: field)
        guard let s = String(validating: raw, as: UTF8.self) else { throw .invalidUTF8(field: "\(field)") }
        return s
    }
    mutating func nodeID() throws(WireError) -> NodeID {
        // Always 32 bytes, so this cannot fail once `raw` succeeded.
        guard let id = NodeID(bytes: try raw(NodeID.byteCount)) else { throw .truncated }
        return id
    }
    /// A count of elements that each take at least `minSize` bytes: refuses counts the remaining
    /// bytes cannot hold, so a forged count never drives a large allocation.
    mutating func count32(minElementSize: Int, max: Int, field: StaticString) throws(WireError) -> Int {
        let n = Int(try u32())
        guard n <= max else { throw .tooMany(field: "\(field)", count: n, limit: max) }
        guard n * minElementSize <= remaining else { throw .truncated }
        return n
    }
    mutating func count16(minElementSize: Int, max: Int, field: StaticString) throws(WireError) -> Int {
        let n = Int(try u16())
        guard n <= max else { throw .tooMany(field: "\(field)", count: n, limit: max) }
        guard n * minElementSize <= remaining else { throw .truncated }
        return n
    }
}
