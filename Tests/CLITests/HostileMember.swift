import Foundation
import Gossip
import Link
import MeshNode
import Sodium
import Trust

/// An admitted member that means harm, in the test process: its own identity, admitted as a
/// runner with a real invite token over the real link (Noise) and admission call, then sending
/// whatever entries and lease calls the test chooses. Entries are signed with its own key and go
/// out the two ways a member's entries arrive: a gossip message and a push-pull, each over a link
/// on `/gossip`.
final class HostileMember: Sendable {
    let identity = NodeIdentity.generate()
    let meshID: MeshID
    let endpoint: LinkEndpoint
    /// What it tells the mesh it listens on (nothing listens there: it only dials).
    let address: String

    var id: NodeID { identity.id }

    init(token: String, address: String) throws {
        meshID = try InviteToken(encoded: token).meshID
        endpoint = LinkEndpoint(identity: identity, meshID: meshID.description)
        self.address = address
    }

    func shutdown() async {
        await endpoint.shutdown()
    }

    private struct JoinRequest: Codable {
        var token: String?
        var addresses: [String]
    }

    private struct JoinAnswer: Codable {
        var admitted: Bool
        var error: String?
    }

    /// Presents `token` to the member at `member` ("host:port"), as `node start --join` does.
    func join(token: String, member: String) async throws {
        let link = try await link(to: member)
        let body = Array(try JSONEncoder().encode(JoinRequest(token: token, addresses: [address])))
        let answer = try JSONDecoder().decode(JoinAnswer.self, from: Data(try await LinkRPC.call(link, path: "/admission/join", body: body)))
        guard answer.admitted else { throw HostileError(description: "not admitted: \(answer.error ?? "no reason")") }
    }

    func link(to member: String) async throws -> Link {
        let colon = try member.lastIndex(of: ":").orThrow("no port in \(member)")
        let port = try Int(member[member.index(after: colon)...]).orThrow("bad port in \(member)")
        return try await endpoint.dial(host: String(member[..<colon]), port: port, expecting: nil)
    }

    /// An entry signed by this member, stamped `at` (now by default).
    func entry(_ kind: EntryKind, _ key: String, _ value: [UInt8]?, at: Date = Date()) -> Entry {
        var entry = Entry(kind: kind, key: key, value: value,
                          timestamp: HLCTimestamp(wallMillis: UInt64(at.timeIntervalSince1970 * 1000)),
                          author: id, signature: [])
        entry.signature = identity.keyPair.sign(entry.signedBytes)
        return entry
    }

    /// Sends `entries` to the member at `member`: once piggybacked on a gossip message, once in a
    /// push-pull; each call returns once the node has handled the message.
    func send(_ entries: [Entry], to member: String) async throws {
        let link = try await link(to: member)
        let me = Member(id: id, address: address)
        let gossip = MessageCodec.encode(.gossip(updates: [.alive(me)] + entries.map { .entry($0) }))
        _ = try await LinkRPC.call(link, path: "/gossip", body: gossip)
        let pushPull = MessageCodec.encode(.pushPull(PushPull(isReply: false, isJoin: false, members: [me], entries: entries)))
        _ = try await LinkRPC.call(link, path: "/gossip", body: pushPull)
    }

    /// A lease call (`/lease/grant` or `/lease/release`) to the gateway at `gateway`; its answer
    /// as JSON fields (`lease`, `conflict`, `refused`, `error`).
    func leaseCall(_ path: String, _ request: LeaseRequest, gateway: String) async throws -> [String: Any] {
        let link = try await link(to: gateway)
        let answer = try await LinkRPC.call(link, path: path, body: Array(try JSONEncoder().encode(request)))
        return (try JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any]) ?? [:]
    }
}

struct HostileError: Error, CustomStringConvertible {
    var description: String
}

extension Optional {
    func orThrow(_ why: String) throws -> Wrapped {
        guard let self else { throw HostileError(description: why) }
        return self
    }
}
