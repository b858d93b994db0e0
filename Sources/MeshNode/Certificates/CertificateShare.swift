// One certificate per name for the whole mesh: the gateways serving a name agree, without a hub,
// which of them orders it (an order lease in the replicated map), and that one shares the
// certificate and its key sealed to the others.

import Acme
import Foundation
import Gossip
import Sodium
import Trust

/// A gateway's claim to order the certificate of `name` (entry kind `certificateOrder`, key
/// `name|gateway`, written by that gateway: `MeshEntryGate` checks it).
///
/// Every gateway serving the name writes a claim of its own, as domain claims do: the live claims
/// are at once the order lease (the earliest claim orders; a claim not renewed lapses, and the next
/// one takes over) and the list of gateways the certificate is sealed to.
struct CertificateOrderClaim: Codable, Sendable, Equatable {
    /// The normalised host name.
    var name: String
    /// The claiming gateway's node ID (printed); the entry's author.
    var gateway: String
    /// When it first claimed: the earliest claim orders. A renewal keeps it.
    var claimed: Date
    /// A claim not renewed by then no longer counts (its gateway is gone or stopped serving).
    var expires: Date
    /// The HTTP-01 answers (token: key authorization) the orderer asks every gateway serving the
    /// name to give while an order is open: the CA may reach any of them under the name.
    var challenges: [String: String] = [:]
    // Fields below are appended in this order and optional: a claim of an older gateway decodes
    // without them, and an older gateway ignores them.
    /// 1. The expiry of the certificate this gateway serves for the name now; nil while it has none.
    /// The gateways whose claim names the same expiry hold the same certificate (`warren certs`).
    var held: Date? = nil
    /// 2. This gateway's most recent failure for the name (an order the CA refused, a name that does
    /// not resolve here, a rate limit) and when; nil once it serves a certificate again. The
    /// orderer's reaches every gateway serving the name this way.
    var lastError: String? = nil
    var lastErrorAt: Date? = nil

    /// The longest error text a claim carries: the entry stays small.
    static let maxErrorLength = 600

    var key: String { Self.key(name: name, gateway: gateway) }

    static func key(name: String, gateway: String) -> String { "\(name)|\(gateway)" }

    func isLive(at now: Date) -> Bool { expires > now }

    /// Earlier first (to the millisecond, as the JSON carries it), then the lower node ID.
    func precedes(_ other: CertificateOrderClaim) -> Bool {
        let a = DomainClaim.milliseconds(claimed), b = DomainClaim.milliseconds(other.claimed)
        if a != b { return a < b }
        return gateway < other.gateway
    }

    var encoded: [UInt8] {
        var copy = self
        copy.claimed = DomainClaim.toMillisecond(claimed)
        copy.expires = DomainClaim.toMillisecond(expires)
        copy.held = held.map(DomainClaim.toMillisecond)
        copy.lastErrorAt = lastErrorAt.map(DomainClaim.toMillisecond)
        copy.lastError = lastError.map { String($0.prefix(Self.maxErrorLength)) }
        return DomainClaim.millisecondJSON(copy)
    }

    static func decode(_ bytes: [UInt8]) -> CertificateOrderClaim? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try? decoder.decode(CertificateOrderClaim.self, from: Data(bytes))
    }
}

/// The live order claims of one name, and who orders it by them.
struct CertificateOrderClaims: Sendable {
    let claims: [CertificateOrderClaim]

    /// The claims of `name` live at `now`, authored by the gateway they name.
    init(_ snapshots: [EntrySnapshot], name: String, now: Date) {
        self.claims = snapshots.compactMap { s in
            guard s.kind == .certificateOrder, let claim = CertificateOrderClaim.decode(s.value), claim.name == name,
                  claim.gateway == s.author.description, claim.key == s.key, claim.isLive(at: now)
            else { return nil }
            return claim
        }.sorted { $0.precedes($1) }
    }

    /// The gateway that orders: the earliest live claim, then the lowest node ID.
    var orderer: CertificateOrderClaim? { claims.first }

    /// The gateways serving the name, by node ID.
    var gateways: Set<String> { Set(claims.map(\.gateway)) }

    /// The gateways (node IDs) whose claim says they serve the certificate that expires at `notAfter`.
    func holders(of notAfter: Date) -> Set<String> {
        Set(claims.filter { $0.held.map(DomainClaim.milliseconds) == DomainClaim.milliseconds(notAfter) }.map(\.gateway))
    }
}

/// A certificate and its private key for `name`, as the orderer shares them (entry kind
/// `certificate`, key `name|orderer`): chain and key sealed once under a random key with
/// XChaCha20-Poly1305, that key sealed (`crypto_box_seal`) to each serving gateway's X25519 key
/// (the Montgomery form of its node ID). Nothing secret is in clear; the validity dates are, so a
/// gateway picks the newest copy without opening the others.
struct SharedCertificate: Codable, Sendable, Equatable {
    var name: String
    /// The orderer's node ID (printed); the entry's author.
    var gateway: String
    var notBefore: Date
    var notAfter: Date
    /// The content key sealed to each recipient, by node ID (printed).
    var keys: [String: Data]
    /// nonce ‖ ciphertext ‖ tag of the JSON of `Content`.
    var box: Data

    struct Content: Codable {
        var chainPEM: String
        var keyPEM: String
    }

    var key: String { CertificateOrderClaim.key(name: name, gateway: gateway) }

    var recipients: Set<String> { Set(keys.keys) }

    /// Binds the sealed content to its name, orderer and validity: a box can't be moved under
    /// another name unnoticed.
    private static func associatedData(name: String, gateway: String, notAfter: Date) -> [UInt8] {
        Array("warren.certificate.v1|\(name)|\(gateway)|\(DomainClaim.milliseconds(notAfter))".utf8)
    }

    static func seal(_ certificate: IssuedCertificate, keyPEM: String, name: String, by gateway: String, to recipients: Set<String>) throws -> SharedCertificate {
        let aead = AEAD.xchacha20Poly1305
        let contentKey = SecretBytes(randomCount: aead.keyLength)
        let nonce = Sodium.randomBytes(aead.nonceLength)
        let notAfter = Date(timeIntervalSince1970: Double(DomainClaim.milliseconds(certificate.notAfter)) / 1000)
        let plain = try JSONEncoder().encode(Content(chainPEM: certificate.chainPEM, keyPEM: keyPEM))
        let box = Data(nonce + (try aead.seal(Array(plain), ad: associatedData(name: name, gateway: gateway, notAfter: notAfter), nonce: nonce, key: contentKey)))
        var keys: [String: Data] = [:]
        for recipient in recipients {
            guard let id = NodeID(recipient) else { continue }
            keys[recipient] = Data(try SealedBox.seal(contentKey, to: Ed25519.x25519PublicKey(from: id.bytes)))
        }
        return SharedCertificate(
            name: name, gateway: gateway,
            notBefore: Date(timeIntervalSince1970: Double(DomainClaim.milliseconds(certificate.notBefore)) / 1000),
            notAfter: notAfter, keys: keys, box: box)
    }

    /// The chain and key, opened with this gateway's keys; nil when not sealed to it.
    func open(as local: LocalMember) throws -> (certificate: IssuedCertificate, keyPEM: String)? {
        guard let sealedKey = keys[local.nodeID.description] else { return nil }
        let aead = AEAD.xchacha20Poly1305
        guard box.count >= aead.nonceLength + aead.tagLength else { throw SodiumError.authenticationFailed }
        let contentKey = try SealedBox.open(Array(sealedKey), publicKey: local.keyAgreement.publicKey, secretKey: local.keyAgreement.secretKey)
        let bytes = Array(box)
        let nonce = Array(bytes.prefix(aead.nonceLength))
        let plain = try aead.open(Array(bytes.dropFirst(aead.nonceLength)), ad: Self.associatedData(name: name, gateway: gateway, notAfter: notAfter),
                                  nonce: nonce, key: contentKey)
        let content = try JSONDecoder().decode(Content.self, from: Data(plain))
        return (try IssuedCertificate(names: [name], chainPEM: content.chainPEM), content.keyPEM)
    }

    var encoded: [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(self)) ?? Data())
    }

    static func decode(_ bytes: [UInt8]) -> SharedCertificate? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try? decoder.decode(SharedCertificate.self, from: Data(bytes))
    }
}

/// How a gateway takes part in sharing: the replica it reads and writes, and its own keys.
struct CertificateSharing: Sendable {
    var replica: any EntryReplica
    var local: LocalMember
    /// How long a claim counts unless renewed: a dead orderer is replaced within this.
    var claimLifetime: Duration = Self.defaultClaimLifetime
    /// How long a new claim, or a new challenge answer, is given to spread before it is relied on.
    var settle: Duration = .seconds(3)
    /// How often the replica is read for new claims and shared certificates.
    var poll: Duration = .seconds(2)

    /// 5 minutes, or `$WARREN_CERT_CLAIM_LIFETIME_SECONDS` (a positive number) so that end-to-end
    /// tests see a killed orderer replaced in seconds. Set it alike on every gateway of a mesh:
    /// each renews its own claim at half its own lifetime.
    static let defaultClaimLifetime = claimLifetime(environment: ProcessInfo.processInfo.environment)

    static func claimLifetime(environment: [String: String]) -> Duration {
        guard let text = environment["WARREN_CERT_CLAIM_LIFETIME_SECONDS"], let seconds = Double(text), seconds > 0, seconds.isFinite else {
            return .seconds(300)
        }
        return .milliseconds(Int64(seconds * 1000))
    }
}
