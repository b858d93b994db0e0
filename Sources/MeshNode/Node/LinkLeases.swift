import Foundation
import Gossip
import Link
import Trust

/// The answer of a gateway to a lease call over a link.
struct LeaseReply: Codable {
    var lease: Lease?
    var conflict: LeaseConflict?
    /// An authoritative no other than a conflict (`LeaseRefused`); older gateways never send it.
    var refused: String?
    var error: String?
}

/// `LeaseAuthority` for a runner: asks the gateway that owns the binding's address, over a link
/// (or this node's own `GatewayLeases` when it is that gateway).
struct LinkLeases: LeaseAuthority {
    let view: MeshView
    let pool: LinkPool
    let localID: NodeID
    let local: GatewayLeases?

    func grant(_ request: LeaseRequest) async throws -> Lease {
        guard let (id, gateway) = await view.gateway(address: request.binding.address) else {
            throw LeaseUnavailable(address: request.binding.address, reason: "no gateway with that address is known in the mesh")
        }
        if id == localID, let local { return try await local.grant(request) }
        let reply = try await call(id, gateway, .leaseGrant, request, keep: true)
        if let conflict = reply.conflict { throw conflict }
        if let refused = reply.refused { throw LeaseRefused(refused) }
        guard let lease = reply.lease else {
            throw LeaseUnavailable(address: request.binding.address, reason: reply.error ?? "the gateway gave no answer")
        }
        return lease
    }

    func release(_ request: LeaseRequest) async {
        guard let (id, gateway) = await view.gateway(address: request.binding.address) else { return }
        if id == localID, let local { return await local.release(request) }
        _ = try? await call(id, gateway, .leaseRelease, request)
    }

    /// With `keep`, the link to the gateway is kept up (or relayed, past the node's bound).
    private func call(_ id: NodeID, _ gateway: GatewayEntry, _ path: LinkPath, _ request: LeaseRequest, keep: Bool = false) async throws -> LeaseReply {
        do {
            let link = keep ? try await pool.gatewayLink(to: id, address: gateway.meshAddress)
                : try await pool.link(to: id, address: gateway.meshAddress)
            let answer = try await LinkRPC.call(link, path: path.rawValue, body: Array(try JSONEncoder().encode(request)))
            return try JSONDecoder().decode(LeaseReply.self, from: Data(answer))
        } catch let error as LeaseConflict {
            throw error
        } catch {
            throw LeaseUnavailable(address: gateway.address, reason: "\(error)")
        }
    }

    /// The gateway's side of `LinkPath.leaseGrant` and `.leaseRelease`.
    static func serve(_ path: String, _ body: [UInt8], leases: GatewayLeases, from peer: NodeID) async -> [UInt8] {
        var reply = LeaseReply()
        do {
            var request = try JSONDecoder().decode(LeaseRequest.self, from: Data(body))
            // The link proved who is asking: a node leases for itself only.
            request.holder = peer.description
            if path == LinkPath.leaseRelease.rawValue {
                await leases.release(request)
            } else {
                reply.lease = try await leases.grant(request)
            }
        } catch let conflict as LeaseConflict {
            reply.conflict = conflict
        } catch let refused as LeaseRefused {
            reply.refused = refused.description
        } catch {
            reply.error = "\(error)"
        }
        return Array((try? JSONEncoder().encode(reply)) ?? Data())
    }
}
