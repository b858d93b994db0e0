internal import CSodium

/// Errors of the libsodium wrapper. Never a raw C return code.
public enum SodiumError: Error, Equatable, CustomStringConvertible {
    /// `sodium_init` failed: the library cannot be used on this machine.
    case initializationFailed
    /// A key, nonce or other fixed-size input had the wrong length.
    case invalidLength(what: String, expected: Int, got: Int)
    /// Authentication of a ciphertext, a signature or a sealed box failed.
    case authenticationFailed
    /// A public key was rejected (e.g. a small-order point, or an Ed25519 key with no X25519 form).
    case invalidKey(String)

    public var description: String {
        switch self {
        case .initializationFailed: return "libsodium could not be initialised"
        case .invalidLength(let what, let expected, let got): return "\(what) must be \(expected) bytes, got \(got)"
        case .authenticationFailed: return "authentication failed (wrong key, or the data was altered)"
        case .invalidKey(let why): return "invalid key: \(why)"
        }
    }
}

/// One-time initialisation of libsodium. Every entry point of this module goes through it.
public enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    /// Makes sure libsodium is initialised; throws if it cannot be.
    public static func ensureInitialized() throws {
        guard initialized else { throw SodiumError.initializationFailed }
    }

    @inline(__always)
    static func start() {
        // sodium_init only fails when the system has no usable randomness source; nothing can
        // work then, and no input of a user can cause it.
        precondition(initialized, "libsodium could not be initialised")
    }

    /// `count` bytes from the operating system's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        start()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { if let p = $0.baseAddress { randombytes_buf(p, $0.count) } }
        return out
    }

    /// A uniformly random integer in 0..<upperBound.
    public static func randomUniform(_ upperBound: UInt32) -> UInt32 {
        start()
        return randombytes_uniform(upperBound)
    }

    /// Constant-time comparison; false when the lengths differ.
    public static func constantTimeEqual(_ a: some ContiguousBytes, _ b: some ContiguousBytes) -> Bool {
        start()
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                pa.count == pb.count && (pa.count == 0 || sodium_memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0)
            }
        }
    }

    /// Overwrites the buffer with zeros in a way the compiler cannot remove.
    public static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { if let p = $0.baseAddress { sodium_memzero(p, $0.count) } }
    }

    static func check(_ bytes: some Collection, _ expected: Int, _ what: String) throws {
        guard bytes.count == expected else {
            throw SodiumError.invalidLength(what: what, expected: expected, got: bytes.count)
        }
    }
}

/// Bytes that can be read through a raw buffer; `[UInt8]`, `ArraySlice<UInt8>` and `SecretBytes` are.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}

extension ContiguousBytes {
    /// Calls `body` with a non-null base pointer, even for empty input (C APIs dislike NULL).
    func withNonNullBytes<R>(_ body: (UnsafePointer<UInt8>, Int) throws -> R) rethrows -> R {
        try withUnsafeBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 {
                return try body(base.assumingMemoryBound(to: UInt8.self), raw.count)
            }
            var zero: UInt8 = 0
            return try body(&zero, 0)
        }
    }
}
