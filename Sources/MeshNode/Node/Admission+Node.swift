import Foundation
import Gossip
import Link
public import Logging
import Sodium
public import Trust

/// The mesh a node's state directory belongs to, and `warren mesh init`.
///
/// The mesh ID is kept in the state database (setting `mesh.id`). A node whose state has one uses
/// it as its links' mesh ID (the handshake prologue) and enforces admission; a node that never ran
/// `mesh init` nor joined with a token stays in the default mesh "warren", where every node that
/// completes a link handshake is a member (`--join ADDR:PORT` without a token).
public enum MeshSetup {
    static let meshIDSetting = "mesh.id"

    /// Founds a new mesh with this node as its first member, an admin, on the state directory of
    /// a node that is not running: writes the founding record as a signed entry and the mesh ID.
    /// `addresses` are how members reach this node (what invite tokens list first).
    public static func initialize(stateDirectory: String, addresses: [String], logger: Logger) async throws -> MeshID {
        try PrivateFiles.ensureDirectory(stateDirectory)
        try checkDatabase(stateDirectory: stateDirectory)
        let identity = try NodeIdentity.loadOrCreate(directory: stateDirectory)
        let store = try StateStore(stateDirectory: stateDirectory, logger: logger)
        if let existing = try await meshID(store: store) {
            throw MeshSetupError(description: "this node already belongs to mesh \(existing); a node belongs to one mesh (use another state directory for a new one)")
        }
        let mesh = try MeshState(identity: identity, address: addresses.first ?? "", metadata: [], config: .lan, store: store, logger: logger)
        try await mesh.restore()
        let (roster, intents) = try MeshRoster.found(addresses: addresses, at: Date(), keys: identity.keyPair)
        try await mesh.apply(intents)
        try await store.setSetting(meshIDSetting, to: Data(roster.meshID.description.utf8))
        try writeMarker(StateMarker(meshID: roster.meshID, role: .admin), stateDirectory: stateDirectory)
        return roster.meshID
    }

    // MARK: The state marker

    /// The file beside `node.key` that records the mesh this identity belongs to and its role,
    /// outside the database: a database lost, emptied or swapped under an existing identity is
    /// then told from a new node, instead of starting silently as a fresh node of an open mesh.
    static let markerFileName = "mesh"

    struct StateMarker: Equatable {
        var meshID: MeshID
        var role: MeshRole?

        var text: String { "mesh \(meshID)\nrole \(role.map { "\($0)" } ?? "unknown")\n" }

        init(meshID: MeshID, role: MeshRole?) {
            self.meshID = meshID
            self.role = role
        }

        init?(text: String) {
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            guard let id = fields["mesh"].flatMap({ MeshID($0) }) else { return nil }
            self.init(meshID: id, role: fields["role"].flatMap { MeshRole($0) })
        }
    }

    static func markerPath(_ stateDirectory: String) -> String {
        (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + markerFileName
    }

    static func readMarker(stateDirectory: String) throws -> StateMarker? {
        let path = markerPath(stateDirectory)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let marker = StateMarker(text: String(decoding: data, as: UTF8.self)) else {
            throw MeshSetupError(description: "the state marker \(path) is malformed; it records this node's mesh beside node.key: "
                + "restore it from a backup, or move the state directory away and join again with a new invite token")
        }
        return marker
    }

    static func writeMarker(_ marker: StateMarker, stateDirectory: String) throws {
        let path = markerPath(stateDirectory)
        guard FileManager.default.createFile(atPath: path, contents: Data(marker.text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw MeshSetupError(description: "could not write the state marker \(path); check the state directory's permissions and free space")
        }
    }

    /// Before the database is opened (opening creates an empty one): with a marker, the database
    /// must be there and not empty. Nothing is written.
    static func checkDatabase(stateDirectory: String) throws {
        guard let marker = try readMarker(stateDirectory: stateDirectory) else { return }
        let path = (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + StateStore.fileName
        let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int
        guard let size, size > 0 else {
            throw lostState(marker, stateDirectory: stateDirectory,
                            what: size == nil ? "its state database \(path) is missing" : "its state database \(path) is empty (0 bytes)")
        }
    }

    /// After the database is opened: the mesh it holds must be the one the marker records. A
    /// database with a mesh ID and no marker (state from before the marker) gets its marker now.
    static func checkMarker(stateDirectory: String, stored: MeshID?) throws {
        guard let marker = try readMarker(stateDirectory: stateDirectory) else {
            if let stored { try writeMarker(StateMarker(meshID: stored, role: nil), stateDirectory: stateDirectory) }
            return
        }
        guard let stored else {
            throw lostState(marker, stateDirectory: stateDirectory, what: "its state database holds no mesh")
        }
        guard stored == marker.meshID else {
            throw lostState(marker, stateDirectory: stateDirectory, what: "its state database belongs to another mesh, \(stored)")
        }
    }

    private static func lostState(_ marker: StateMarker, stateDirectory: String, what: String) -> MeshSetupError {
        let role = marker.role.map { " as \($0)" } ?? ""
        return MeshSetupError(description: "this node's identity belongs to mesh \(marker.meshID)\(role), but \(what): its state was lost "
            + "or replaced, and starting would make it a new, empty node. Nothing was changed. To recover, restore the state database "
            + "from a backup; or move the state directory away (`mv \(stateDirectory) \(stateDirectory).lost`) and join again with a "
            + "new invite token from an admin (`warren invite`, then `warren node start --join TOKEN`)")
    }

    /// The mesh ID kept in the state, if any.
    static func meshID(store: StateStore) async throws -> MeshID? {
        guard let data = try await store.setting(meshIDSetting) else { return nil }
        guard let id = MeshID(String(decoding: data, as: UTF8.self)) else {
            throw MeshSetupError(description: "the mesh ID in the state database is malformed; restore the state directory from a backup")
        }
        return id
    }

    static func save(_ meshID: MeshID, role: MeshRole?, store: StateStore) async throws {
        try await store.setSetting(meshIDSetting, to: Data(meshID.description.utf8))
        try writeMarker(StateMarker(meshID: meshID, role: role), stateDirectory: PrivateFiles.parentDirectory(of: store.path))
    }

    /// How the node starts, from its state and its `--join` arguments: the mesh it belongs to (nil:
    /// the default mesh), and the invite token it presents, if any.
    static func plan(join: [String], store: StateStore) async throws -> (meshID: MeshID?, token: (text: String, token: InviteToken)?, seeds: [String]) {
        let stored = try await meshID(store: store)
        var token: (String, InviteToken)?
        var seeds: [String] = []
        for argument in join {
            guard argument.hasPrefix(InviteToken.prefix) else { seeds.append(argument); continue }
            guard token == nil else { throw MeshSetupError(description: "--join takes one invite token") }
            do {
                token = (argument, try InviteToken(encoded: argument))
            } catch {
                throw MeshSetupError(description: "refused to join: \(error)")
            }
        }
        if let (_, parsed) = token, let stored, parsed.meshID != stored {
            throw MeshSetupError(description: "this node already belongs to mesh \(stored), and the invite token is for mesh \(parsed.meshID); a node belongs to one mesh (use another state directory)")
        }
        return (stored ?? token?.1.meshID, token, seeds)
    }
}

/// Why `mesh init` or a start with `--join` can't go on; or the refusal of the contacted member.
public struct MeshSetupError: Error, CustomStringConvertible {
    public var description: String
}

/// What a joining node sends on `/admission/join`, and what the member answers.
struct JoinRequest: Codable {
    var token: String?
    /// How members reach the joining node.
    var addresses: [String]
}

struct JoinAnswer: Codable {
    var admitted: Bool
    /// The refusal, as the joining node shows it.
    var error: String?
}

/// A member's side of admission: answers `LinkPath.admissionJoin` with `InviteVerifier`, and writes the
/// new member's record and the spent token to gossip. One at a time, so a token admits one node.
actor AdmissionDesk {
    private let gate: MeshGate
    private let mesh: MeshState
    private let keys: Ed25519.KeyPair
    private let logger: Logger

    init(gate: MeshGate, mesh: MeshState, keys: Ed25519.KeyPair, logger: Logger) {
        self.gate = gate
        self.mesh = mesh
        self.keys = keys
        self.logger = logger
    }

    func answer(_ body: [UInt8], from peer: NodeID) async -> [UInt8] {
        let result = await admit(body, from: peer)
        return (try? Array(JSONEncoder().encode(result))) ?? []
    }

    private func admit(_ body: [UInt8], from peer: NodeID) async -> JoinAnswer {
        guard let request = try? JSONDecoder().decode(JoinRequest.self, from: Data(body)) else {
            return JoinAnswer(admitted: false, error: "the admission request could not be read; is the joining node the same version?")
        }
        guard let roster = gate.roster else {
            return JoinAnswer(admitted: false, error: "the contacted node's mesh has no admission (it never ran `warren mesh init`); join it with --join ADDR:PORT")
        }
        // The answer to an earlier attempt may have been lost: a member is admitted already.
        if roster.isMember(peer) { return JoinAnswer(admitted: true) }
        var verifier = InviteVerifier(roster: roster)
        do {
            let (record, intents) = try verifier.admit(request.token, joining: peer, addresses: request.addresses, now: Date(), voucherKeys: keys)
            try await mesh.apply(intents)
            logger.info("admitted a node to the mesh", metadata: ["peer.id": "\(peer.short)", "peer.role": "\(record.role)"])
            return JoinAnswer(admitted: true)
        } catch let refusal as AdmissionRefusal {
            logger.info("refused to admit a node", metadata: ["peer.id": "\(peer.short)", "reason": "\(refusal)"])
            return JoinAnswer(admitted: false, error: refusal.description)
        } catch {
            logger.error("could not record an admission", metadata: ["peer.id": "\(peer.short)", "error": "\(error)"])
            return JoinAnswer(admitted: false, error: "the member could not record the admission: \(error)")
        }
    }
}

/// The joining node's side: present the token to a member it lists, then join gossip through it.
enum TokenJoin {
    /// Rounds over the token's addresses before giving up (with backoff, about a minute).
    static let rounds = 8

    /// Returns once admitted and joined, with the member that admitted it; throws the member's
    /// refusal, or that no member answered.
    @discardableResult
    static func join(
        token: InviteToken, text: String, addresses: [String], endpoint: LinkEndpoint, mesh: MeshState, store: StateStore, logger: Logger
    ) async throws -> (peer: NodeID, address: String) {
        let body = Array(try JSONEncoder().encode(JoinRequest(token: text, addresses: addresses)))
        var backoff = LinkBackoff()
        var random = SystemRandomNumberGenerator()
        var attempts = JoinAttempts(meshID: token.meshID, addresses: token.addresses)
        for _ in 0..<rounds {
            for address in token.addresses {
                try Task.checkCancellation()
                guard let (host, port) = HostPort.parse(address) else { continue }
                let link: Link
                do {
                    link = try await endpoint.dial(host: host, port: port, expecting: nil)
                } catch {
                    attempts.record(address, linkError: error)
                    logger.info("member not reachable yet; retrying", metadata: ["join.member": "\(address)", "error": "\(error)"])
                    continue
                }
                let answer: JoinAnswer
                do {
                    let bytes = try await LinkRPC.call(link, path: LinkPath.admissionJoin.rawValue, body: body)
                    answer = try JSONDecoder().decode(JoinAnswer.self, from: Data(bytes))
                } catch {
                    attempts.record(address, linkError: nil)
                    logger.info("member did not answer the token yet; retrying", metadata: ["join.member": "\(address)", "error": "\(error)"])
                    continue
                }
                guard answer.admitted else {
                    throw MeshSetupError(description: "node \(link.peer.short)… refused to admit this node: \(answer.error ?? "no reason given")")
                }
                try await MeshSetup.save(token.meshID, role: token.role, store: store)
                await mesh.join(seed: link.peer, address: address)
                logger.info("admitted to the mesh", metadata: ["mesh.id": "\(token.meshID)", "peer.id": "\(link.peer.short)"])
                return (link.peer, address)
            }
            // Every listed member refused the handshake again and again: they are up, in another mesh.
            if attempts.allRefusedHandshakes(atLeast: refusedHandshakes) { break }
            try await Task.sleep(for: backoff.next(using: &random))
        }
        throw MeshSetupError(description: attempts.failure)
    }
}

extension TokenJoin {
    /// Handshakes refused before a join through an address gives up: a member of a mesh with
    /// admission does not complete a handshake in another mesh's name.
    static let refusedHandshakes = 3

    /// Dials a member at `seed` ("host:port") until it answers, then joins gossip through it
    /// (a node of the default mesh, or a member rejoining its mesh after a restart). Returns the
    /// seed's node ID, nil if cancelled first.
    @discardableResult
    static func join(_ seed: String, endpoint: LinkEndpoint, mesh: MeshState, admission: Bool, logger: Logger) async throws -> NodeID? {
        guard let (host, port) = HostPort.parse(seed) else {
            throw MeshSetupError(description: "--join needs host:port or an invite token, got `\(seed)`")
        }
        var backoff = LinkBackoff()
        var random = SystemRandomNumberGenerator()
        var refused = 0
        while !Task.isCancelled {
            do {
                let link = try await endpoint.dial(host: host, port: port, expecting: nil)
                await mesh.join(seed: link.peer, address: seed)
                logger.info("joined the mesh", metadata: ["join.seed": "\(seed)", "peer.id": "\(link.peer.short)"])
                return link.peer
            } catch LinkError.handshakeFailed(let why) where !admission {
                refused += 1
                logger.info("the seed refused the handshake", metadata: ["join.seed": "\(seed)", "error": "\(why)"])
                if refused >= refusedHandshakes {
                    throw MeshSetupError(description: "the node at \(seed) refused to link: it belongs to a mesh with admission, and \(AdmissionRefusal.noToken)")
                }
            } catch {
                logger.info("seed not reachable yet; retrying", metadata: ["join.seed": "\(seed)", "error": "\(error)"])
            }
            try? await Task.sleep(for: backoff.next(using: &random))
        }
        return nil
    }
}
