internal import CCrypto

/// An AEAD of OpenSSL's libcrypto (EVP interface) with one key, sealing or opening in place.
///
/// The bytes are those of libsodium's AEADs of the same names (RFC 8439 ChaCha20-Poly1305 and
/// AES-256-GCM with 12-byte nonces and 16-byte tags); libcrypto is used because it runs them
/// two to three times faster. One context per direction; it is not thread-safe, as a channel
/// handler owns it.
public final class EVPAEAD {
    public enum Algorithm: String, Sendable, CaseIterable {
        case aes256GCM = "AES-256-GCM"
        case chacha20Poly1305 = "ChaCha20-Poly1305"
    }

    public enum Direction: Sendable { case seal, open }

    public static let keyLength = 32
    public static let nonceLength = 12
    public static let tagLength = 16

    public let algorithm: Algorithm
    public let direction: Direction
    private let context: OpaquePointer

    /// A context for `algorithm` keyed with the 32 bytes of `key` (libcrypto copies them and
    /// cleanses its copy when the context is freed).
    public init(algorithm: Algorithm, direction: Direction, key: UnsafeRawBufferPointer) throws {
        guard key.count == Self.keyLength else {
            throw LibCryptoError.invalidLength(what: "\(algorithm.rawValue) key", expected: Self.keyLength, got: key.count)
        }
        guard let context = EVP_CIPHER_CTX_new() else { throw LibCryptoError.setupFailed("allocate a cipher context") }
        self.context = context
        self.algorithm = algorithm
        self.direction = direction
        let cipher = algorithm == .aes256GCM ? EVP_aes_256_gcm() : EVP_chacha20_poly1305()
        let encrypt: Int32 = direction == .seal ? 1 : 0
        guard EVP_CipherInit_ex(context, cipher, nil, nil, nil, encrypt) == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, Int32(Self.nonceLength), nil) == 1,
              EVP_CipherInit_ex(context, nil, nil, key.bindMemory(to: UInt8.self).baseAddress, nil, encrypt) == 1
        else { throw LibCryptoError.setupFailed("initialise \(algorithm.rawValue)") }
    }

    deinit {
        EVP_CIPHER_CTX_free(context)
    }

    /// Replaces the key (for Noise's rekey), keeping the algorithm.
    public func setKey(_ key: UnsafeRawBufferPointer) throws {
        guard key.count == Self.keyLength else {
            throw LibCryptoError.invalidLength(what: "\(algorithm.rawValue) key", expected: Self.keyLength, got: key.count)
        }
        guard EVP_CipherInit_ex(context, nil, nil, key.bindMemory(to: UInt8.self).baseAddress, nil, direction == .seal ? 1 : 0) == 1 else {
            throw LibCryptoError.setupFailed("set the \(algorithm.rawValue) key")
        }
    }

    /// Encrypts `buffer` in place and writes the 16-byte tag into `tag`.
    public func seal(
        nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        buffer: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) throws {
        precondition(direction == .seal, "an EVPAEAD made to open cannot seal")
        guard tag.count == Self.tagLength else {
            throw LibCryptoError.invalidLength(what: "tag", expected: Self.tagLength, got: tag.count)
        }
        try start(nonce: nonce, ad: ad, encrypt: 1)
        var outLength: Int32 = 0
        if buffer.count > 0 {
            let p = buffer.bindMemory(to: UInt8.self).baseAddress
            guard EVP_EncryptUpdate(context, p, &outLength, p, Int32(buffer.count)) == 1 else {
                throw LibCryptoError.setupFailed("encrypt")
            }
        }
        // GCM and ChaCha20-Poly1305 are stream modes: Final writes nothing, but wants a valid pointer.
        var scratch: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let finished = withUnsafeMutableBytes(of: &scratch) {
            EVP_EncryptFinal_ex(context, $0.bindMemory(to: UInt8.self).baseAddress, &outLength)
        }
        guard finished == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagLength), tag.baseAddress) == 1
        else { throw LibCryptoError.setupFailed("finish encryption") }
    }

    /// Decrypts `buffer` in place, checking `tag`. On failure `authenticationFailed` is thrown and
    /// the buffer holds bytes that must not be used.
    public func open(
        nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer
    ) throws {
        precondition(direction == .open, "an EVPAEAD made to seal cannot open")
        guard tag.count == Self.tagLength else {
            throw LibCryptoError.invalidLength(what: "tag", expected: Self.tagLength, got: tag.count)
        }
        try start(nonce: nonce, ad: ad, encrypt: 0)
        var outLength: Int32 = 0
        if buffer.count > 0 {
            let p = buffer.bindMemory(to: UInt8.self).baseAddress
            guard EVP_DecryptUpdate(context, p, &outLength, p, Int32(buffer.count)) == 1 else {
                throw LibCryptoError.authenticationFailed
            }
        }
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagLength), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw LibCryptoError.setupFailed("set the tag")
        }
        var scratch: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let verified = withUnsafeMutableBytes(of: &scratch) {
            EVP_DecryptFinal_ex(context, $0.bindMemory(to: UInt8.self).baseAddress, &outLength)
        }
        guard verified == 1 else { throw LibCryptoError.authenticationFailed }
    }

    private func start(nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer, encrypt: Int32) throws {
        guard nonce.count == Self.nonceLength else {
            throw LibCryptoError.invalidLength(what: "nonce", expected: Self.nonceLength, got: nonce.count)
        }
        guard EVP_CipherInit_ex(context, nil, nil, nil, nonce.bindMemory(to: UInt8.self).baseAddress, encrypt) == 1 else {
            throw LibCryptoError.setupFailed("set the nonce")
        }
        if ad.count > 0 {
            var outLength: Int32 = 0
            guard EVP_CipherUpdate(context, nil, &outLength, ad.bindMemory(to: UInt8.self).baseAddress, Int32(ad.count)) == 1 else {
                throw LibCryptoError.setupFailed("add associated data")
            }
        }
    }
}

@available(*, unavailable)
extension EVPAEAD: Sendable {}
