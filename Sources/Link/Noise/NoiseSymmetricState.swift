internal import Sodium

/// The SymmetricState of the Noise specification (section 5.2): chaining key, handshake hash and
/// the CipherState of handshake payloads. Hash is BLAKE2b (HASHLEN 64).
struct NoiseSymmetricState {
    private(set) var cipherState: NoiseCipherState
    private var chainingKey: [UInt8]
    private(set) var handshakeHash: [UInt8]

    init(protocolName: String, cipher: NoiseCipher) {
        let name = Array(protocolName.utf8)
        if name.count <= NoiseHKDF.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: NoiseHKDF.hashLength - name.count)
        } else {
            handshakeHash = NoiseHKDF.hash(name)
        }
        chainingKey = handshakeHash
        cipherState = NoiseCipherState(cipher: cipher)
    }

    mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        let out = NoiseHKDF.derive(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputs: 2)
        chainingKey = out[0]
        cipherState.initializeKey(Self.truncatedKey(out[1]))
    }

    mutating func mixHash(_ data: [UInt8]) {
        handshakeHash = NoiseHKDF.hash(handshakeHash + data)
    }

    mutating func mixKeyAndHash(_ inputKeyMaterial: [UInt8]) {
        let out = NoiseHKDF.derive(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial, outputs: 3)
        chainingKey = out[0]
        mixHash(out[1])
        cipherState.initializeKey(Self.truncatedKey(out[2]))
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
        let ciphertext = try cipherState.encrypt(ad: handshakeHash, plaintext: plaintext)
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
        let plaintext = try cipherState.decrypt(ad: handshakeHash, ciphertext: ciphertext)
        mixHash(ciphertext)
        return plaintext
    }

    /// The two transport CipherStates: (initiator → responder, responder → initiator).
    func split() -> (NoiseCipherState, NoiseCipherState) {
        let out = NoiseHKDF.derive(chainingKey: chainingKey, inputKeyMaterial: [], outputs: 2)
        return (NoiseCipherState(cipher: cipherState.cipher, key: Self.truncatedKey(out[0])),
                NoiseCipherState(cipher: cipherState.cipher, key: Self.truncatedKey(out[1])))
    }

    /// HASHLEN is 64, so keys are the first 32 bytes of an HKDF output.
    private static func truncatedKey(_ bytes: [UInt8]) -> SecretBytes {
        var key = Array(bytes.prefix(NoiseCipher.keyLength))
        return SecretBytes(consuming: &key)
    }
}
