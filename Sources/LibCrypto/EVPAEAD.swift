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
        try begin(nonce: nonce, ad: ad)
        try update(input: UnsafeRawBufferPointer(buffer), output: buffer)
        try finishSeal(tag: tag)
    }

    /// Decrypts `buffer` in place, checking `tag`. On failure `authenticationFailed` is thrown and
    /// the buffer holds bytes that must not be used.
    public func open(
        nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        buffer: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer
    ) throws {
        try begin(nonce: nonce, ad: ad)
        try update(input: UnsafeRawBufferPointer(buffer), output: buffer)
        try finishOpen(tag: tag)
    }

    // MARK: Streaming: one message in several pieces (begin, update…, finish)

    /// Starts a message under `nonce` (12 bytes), authenticating `ad`.
    public func begin(nonce: UnsafeRawBufferPointer, ad: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) throws {
        try start(nonce: nonce, ad: ad, encrypt: direction == .seal ? 1 : 0)
    }

    /// Encrypts or decrypts the next piece of the message from `input` into the first
    /// `input.count` bytes of `output`; the two may be the same memory.
    public func update(input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
        guard input.count > 0 else { return }
        guard output.count >= input.count else {
            throw LibCryptoError.invalidLength(what: "output buffer", expected: input.count, got: output.count)
        }
        var outLength: Int32 = 0
        let rc = EVP_CipherUpdate(
            context, output.bindMemory(to: UInt8.self).baseAddress, &outLength,
            input.bindMemory(to: UInt8.self).baseAddress, Int32(input.count))
        guard rc == 1 else { throw LibCryptoError.setupFailed(direction == .seal ? "encrypt" : "decrypt") }
    }

    /// Ends a sealed message and writes its 16-byte tag.
    public func finishSeal(tag: UnsafeMutableRawBufferPointer) throws {
        precondition(direction == .seal, "an EVPAEAD made to open cannot seal")
        guard tag.count == Self.tagLength else {
            throw LibCryptoError.invalidLength(what: "tag", expected: Self.tagLength, got: tag.count)
        }
        // GCM and ChaCha20-Poly1305 are stream modes: Final writes nothing, but wants a valid pointer.
        var scratch: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var outLength: Int32 = 0
        let finished = withUnsafeMutableBytes(of: &scratch) {
            EVP_EncryptFinal_ex(context, $0.bindMemory(to: UInt8.self).baseAddress, &outLength)
        }
        guard finished == 1,
              EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagLength), tag.baseAddress) == 1
        else { throw LibCryptoError.setupFailed("finish encryption") }
    }

    /// Ends an opened message, checking its tag; throws `authenticationFailed` when it does not match.
    public func finishOpen(tag: UnsafeRawBufferPointer) throws {
        precondition(direction == .open, "an EVPAEAD made to seal cannot open")
        guard tag.count == Self.tagLength else {
            throw LibCryptoError.invalidLength(what: "tag", expected: Self.tagLength, got: tag.count)
        }
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagLength), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw LibCryptoError.setupFailed("set the tag")
        }
        var scratch: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var outLength: Int32 = 0
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
