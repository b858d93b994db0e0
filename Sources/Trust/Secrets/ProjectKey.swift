public import Sodium

/// The random 32-byte key of a project. Secrets of the project are sealed under it; it is itself
/// sealed (`crypto_box_seal`) to each member node's X25519 key, so only members can open them.
public struct ProjectKey: Sendable, Equatable {
    public static let length = 32

    public let bytes: SecretBytes
    /// Raised on every rotation (a member removed), so old and new ciphertexts are told apart.
    public let generation: UInt32

    public init(bytes: SecretBytes, generation: UInt32) throws {
        guard bytes.count == ProjectKey.length else {
            throw SodiumError.invalidLength(what: "project key", expected: ProjectKey.length, got: bytes.count)
        }
        self.bytes = bytes
        self.generation = generation
    }

    /// A fresh random key.
    public static func generate(generation: UInt32 = 1) -> ProjectKey {
        try! ProjectKey(bytes: SecretBytes(randomCount: length), generation: generation)
    }

    /// The key sealed to a member's X25519 public key: only that member can open it.
    public func sealed(to memberPublicKey: [UInt8]) throws -> [UInt8] {
        try SealedBox.seal(bytes, to: memberPublicKey)
    }

    /// Opens a key sealed to this node.
    public static func open(_ sealed: [UInt8], generation: UInt32, with keys: X25519.KeyPair) throws -> ProjectKey {
        try ProjectKey(bytes: SealedBox.open(sealed, publicKey: keys.publicKey, secretKey: keys.secretKey), generation: generation)
    }
}

/// A secret's value sealed under its project's key: XChaCha20-Poly1305 with a random nonce, with
/// the project, name, version and key generation bound as associated data, so a ciphertext can't be
/// moved to another name, project or version unnoticed.
public struct SealedSecret: Codable, Sendable, Equatable {
    public var project: String
    public var name: String
    public var version: UInt64
    public var keyGeneration: UInt32
    /// nonce (24 bytes) ‖ ciphertext ‖ tag.
    public var box: [UInt8]

    public static func seal(_ value: String, project: String, name: String, version: UInt64, key: ProjectKey) throws -> SealedSecret {
        let nonce = Sodium.randomBytes(AEAD.xchacha20Poly1305.nonceLength)
        let ad = associatedData(project: project, name: name, version: version, generation: key.generation)
        let ciphertext = try AEAD.xchacha20Poly1305.seal(Array(value.utf8), ad: ad, nonce: nonce, key: key.bytes)
        return SealedSecret(project: project, name: name, version: version, keyGeneration: key.generation, box: nonce + ciphertext)
    }

    /// The value; throws `SodiumError.authenticationFailed` for the wrong key or altered data.
    public func open(with key: ProjectKey) throws -> String {
        let n = AEAD.xchacha20Poly1305.nonceLength
        guard box.count >= n + AEAD.xchacha20Poly1305.tagLength, key.generation == keyGeneration else {
            throw SodiumError.authenticationFailed
        }
        let ad = Self.associatedData(project: project, name: name, version: version, generation: keyGeneration)
        var plain = try AEAD.xchacha20Poly1305.open(box[n...], ad: ad, nonce: box[..<n], key: key.bytes)
        defer { Sodium.zero(&plain) }
        return String(decoding: plain, as: UTF8.self)
    }

    static func associatedData(project: String, name: String, version: UInt64, generation: UInt32) -> [UInt8] {
        var ad = Array("warren secret v1".utf8) + [0]
        ad += Array(project.utf8) + [0] + Array(name.utf8) + [0]
        ad += withUnsafeBytes(of: version.bigEndian, Array.init)
        ad += withUnsafeBytes(of: generation.bigEndian, Array.init)
        return ad
    }
}
