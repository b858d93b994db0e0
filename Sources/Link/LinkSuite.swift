internal import LibCrypto
internal import Sodium

/// The cipher suite of a link, named by the one-byte preamble the initiator sends first.
///
/// Only append to this list: the byte values are on the wire.
public enum LinkSuite: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case aesGCM = 0x01
    case chaChaPoly = 0x02

    /// The Noise protocol of the handshake.
    public var protocolName: String {
        "Noise_XX_25519_\(noiseCipher.rawValue)_BLAKE2b"
    }

    public var noiseCipher: NoiseCipher {
        switch self {
        case .aesGCM: return .aesGCM
        case .chaChaPoly: return .chaChaPoly
        }
    }

    var recordAlgorithm: EVPAEAD.Algorithm {
        switch self {
        case .aesGCM: return .aes256GCM
        case .chaChaPoly: return .chacha20Poly1305
        }
    }

    public var description: String { protocolName }

    /// AES-GCM when this processor has AES instructions (as libsodium detects them), ChaCha20-Poly1305 otherwise.
    public static var preferred: LinkSuite {
        AEAD.aes256GCMAvailable ? .aesGCM : .chaChaPoly
    }
}

/// The version of the link protocol, bound into every handshake's prologue.
public enum LinkProtocol {
    public static let version: UInt8 = 2

    /// `"warren-link" ‖ version ‖ suite byte ‖ length(meshID) as UInt16 ‖ meshID (UTF-8)`.
    /// Both sides compute it; a tampered suite byte, another mesh or another version makes the
    /// handshake fail.
    static func prologue(suite: LinkSuite, meshID: String) -> [UInt8] {
        let mesh = Array(meshID.utf8)
        return Array("warren-link".utf8) + [version, suite.rawValue, UInt8(truncatingIfNeeded: mesh.count >> 8), UInt8(truncatingIfNeeded: mesh.count)] + mesh
    }
}
