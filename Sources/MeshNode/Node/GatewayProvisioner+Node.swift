import Foundation
import Gossip
import Provisioning
import Trust

extension GatewayProvisioner {
    /// The provisioner of a running node: gateways recorded in its state directory, invited by
    /// this node when its mesh has admission, else joining local ones at its listen address and
    /// cloud ones at its advertised address; the mesh's ACME settings kept in its store.
    init(
        node o: AgentOptions, boundPort: Int, secrets: any SecretsService, admin: MeshAdminAPI,
        mesh: MeshState, view: MeshView, gate: MeshGate, store: StateStore
    ) {
        let wildcard = o.listenHost == "0.0.0.0" || o.listenHost == "::"
        var advertised = o
        advertised.listenPort = boundPort
        var context = Context(
            stateDirectory: o.stateDirectory,
            localJoin: HostPort.format(wildcard ? "127.0.0.1" : o.listenHost, boundPort),
            cloudJoin: advertised.advertisedAddress,
            invite: { ttl in try admin.gatewayInvite(ttl: ttl) },
            removeMember: { node in try await admin.removeIfMember(node) },
            projectSettings: { project in try await secrets.values(project: project).values },
            members: {
                let removed = gate.roster?.removals ?? [:]
                var states: [String: MemberState] = [:]
                for m in await mesh.members() where removed[m.id] == nil { states[m.id.description] = m.state }
                return states
            },
            gateways: {
                await view.meshGateways(members: Dictionary(await mesh.members().map { ($0.id, $0.state) }, uniquingKeysWith: { $1 }))
            })
        context.acme = {
            let entry = await mesh.snapshots(kinds: [.meshSetting]).first { $0.key == MeshACME.key }
            guard let setting = entry.flatMap({ try? MeshACME.decode($0.value) }) else { return nil }
            return try? GatewayACME(directory: setting.directory, email: setting.email, caBundlePEM: setting.caBundlePEM)
        }
        context.setACME = { acme in
            let setting = MeshACME(directory: acme.directory ?? MeshACME.letsEncrypt, email: acme.email, caBundlePEM: acme.caBundlePEM)
            try await mesh.put(kind: .meshSetting, key: MeshACME.key, value: setting.encoded)
        }
        self.init(context: context)
    }
}
