internal import CSodium

/// Secret key material in memory that is zeroed when the last reference goes away.
///
/// Equality is constant-time. The bytes are reachable only through `withUnsafeBytes`, or by
/// copying them out explicitly with `copyBytes()` (for example to write a 0600 key file).
public final class SecretBytes: ContiguousBytes, @unchecked Sendable {
    private let pointer: UnsafeMutableRawBufferPointer

    public var count: Int { count0 }

    /// Takes the bytes and zeroes the caller's copy.
    public init(consuming bytes: inout [UInt8]) {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { p.copyMemory(from: $0) }
        pointer = p
        count0 = bytes.count
        Sodium.zero(&bytes)
    }

    private let count0: Int

    /// `count` random bytes.
    public convenience init(randomCount count: Int) {
        var bytes = Sodium.randomBytes(count)
        self.init(consuming: &bytes)
    }

    deinit {
        sodium_memzero(pointer.baseAddress!, pointer.count)
        pointer.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: pointer[0..<count0]))
    }

    /// A plain copy of the secret; the caller is responsible for zeroing it (`Sodium.zero`).
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }
}

extension SecretBytes: Equatable {
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        Sodium.constantTimeEqual(lhs, rhs)
    }
}
