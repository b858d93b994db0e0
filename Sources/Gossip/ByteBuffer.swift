/// Big-endian writer for the wire format and for signed bytes.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
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
    mutating func u16() throws(WireError) -> UInt16 { try integer() }
    mutating func u32() throws(WireError) -> UInt32 { try integer() }
    mutating func u64() throws(WireError) -> UInt64 { try integer() }

    private mutating func integer<T: FixedWidthInteger>() throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated }
        defer { index += size }
        return bytes.withUnsafeBytes { raw in
            T(bigEndian: raw.loadUnaligned(fromByteOffset: index, as: T.self))
        }
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
