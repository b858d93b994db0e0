/// Errors of the libcrypto wrapper. Never a raw C return code.
public enum LibCryptoError: Error, Equatable, CustomStringConvertible {
    /// libcrypto could not set up a cipher context (out of memory, or the algorithm is missing).
    case setupFailed(String)
    /// A key, nonce or tag had the wrong length.
    case invalidLength(what: String, expected: Int, got: Int)
    /// The ciphertext, its tag, the nonce or the associated data differ from what was sealed.
    case authenticationFailed

    public var description: String {
        switch self {
        case .setupFailed(let what): return "libcrypto could not \(what)"
        case .invalidLength(let what, let expected, let got): return "\(what) must be \(expected) bytes, got \(got)"
        case .authenticationFailed: return "authentication failed (wrong key, or the data was altered)"
        }
    }
}
