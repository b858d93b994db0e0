import Foundation
import Gossip
import Link
import Logging
import Sodium
import Trust

/// The local API's admission and project routes (`warren invite`, `mesh remove`, `project …`; see
/// AdmissionAPITypes.swift), and what the node does when the roster drops a member: close its
/// links and rotate the keys of its projects.
struct MeshAdminAPI: Sendable {
    let gate: MeshGate
    let mesh: MeshState
    let keys: Ed25519.KeyPair
    let local: LocalMember
    /// This node's advertised address: the first an invite token lists.
    let advertised: String
    let endpoint: LinkEndpoint
    /// On a gateway, its leases: a removed member's are released.
    let leases: GatewayLeases?
    let logger: Logger

    func register(into r: inout APIRouter) {
        let api = self
        r.get("/v1/mesh") { _ in try .json(api.meshInfo()) }
        r.post("/v1/invites") { req in try .json(try api.invite(req.decode(InviteRequest.self)), status: 201) }
        r.post("/v1/mesh/remove") { req in try .json(try await api.remove(req.decode(MemberRemoveRequest.self))) }
        r.get("/v1/projects") { _ in try .json(await api.projects()) }
        r.post("/v1/projects") { req in
            let name = try req.decode(ProjectCreateRequest.self).name
            return try .json(try await api.change(name) { book in try book.createProject(name, local: api.local, now: Date()) }, status: 201)
        }
        r.post("/v1/projects/:project/members") { req in
            let project = try req.parameter("project"), node = try api.nodeID(req.decode(ProjectMemberRequest.self).node)
            let roster = api.gate.roster
            return try .json(try await api.change(project) { book in try book.addMember(node, to: project, local: api.local, roster: roster) })
        }
        r.delete("/v1/projects/:project/members/:node") { req in
            let project = try req.parameter("project"), node = try api.nodeID(req.parameter("node"))
            try await api.removeMember(node, from: project)
            return .noContent
        }
    }

    // MARK: Mesh

    func meshInfo() -> MeshInfo {
        guard let roster = gate.roster else { return MeshInfo(meshID: gate.meshID?.description, founder: nil, members: [], removed: []) }
        return MeshInfo(
            meshID: roster.meshID.description, founder: roster.founder?.description,
            members: roster.members.compactMap { id in
                roster.records[id].map { MemberInfo(id: id.description, role: $0.role.description, addresses: $0.addresses) }
            },
            removed: roster.removals.keys.sorted().map(\.description))
    }

    func invite(_ request: InviteRequest) throws(MeshAdminRefusal) -> InviteInfo {
        let roster = try requireRoster()
        guard let role = MeshRole(request.role) else { throw .unknownRole(request.role) }
        // This node first (the joining node dials it), then the other members.
        var addresses = [advertised]
        for a in roster.memberAddresses where !addresses.contains(a) { addresses.append(a) }
        do {
            let token = try roster.issueInvite(role: role, ttl: request.ttlSeconds, now: Date(), inviterKeys: keys,
                                               addresses: Array(addresses.prefix(InviteToken.maxAddresses)))
            return InviteInfo(token: token.encoded, role: role.description, expires: token.expires)
        } catch {
            throw .admission(error)
        }
    }

    /// The single-use token `gateway create` gives a new gateway; nil when the mesh has no
    /// admission (the default mesh: the gateway joins by address).
    func gatewayInvite(ttl: TimeInterval) throws(MeshAdminRefusal) -> String? {
        guard gate.roster != nil else {
            guard gate.meshID == nil else {
                throw .rosterNotReceived
            }
            return nil
        }
        return try invite(InviteRequest(role: MeshRole.gateway.description, ttlSeconds: ttl)).token
    }

    /// Removes `node` as `mesh remove` does, for `gateway delete`; false when the mesh has no
    /// admission or `node` is not a member (a gateway that never joined).
    func removeIfMember(_ node: String) async throws(MeshAdminRefusal) -> Bool {
        guard let roster = gate.roster, let id = NodeID(node), roster.isMember(id) else { return false }
        _ = try await remove(MemberRemoveRequest(node: node))
        return true
    }

    func remove(_ request: MemberRemoveRequest) async throws(MeshAdminRefusal) -> MeshInfo {
        let roster = try requireRoster()
        let node = try nodeID(request.node)
        do {
            try await mesh.apply([try roster.remove(node, at: Date(), adminKeys: keys)])
        } catch let error as AdmissionError {
            throw .admission(error)
        } catch {
            throw .notWritten(what: "the removal", reason: "\(error)")
        }
        return meshInfo()
    }

    /// Called with every change of the roster in force: closes the links of removed nodes, releases
    /// their leases on this gateway, and,
    /// on one remaining member per project (the smallest node ID, so members don't race), rotates
    /// the key of every project a removed node belonged to.
    func rosterChanged(old: MeshRoster?, new: MeshRoster?) async {
        guard let new else { return }
        let removed = Set(old.map { new.changes(since: $0).removed } ?? []).union(new.removals.keys)
        for link in endpoint.links where removed.contains(link.peer) {
            logger.info("closing the link of a removed member", metadata: ["peer.id": "\(link.peer.short)"])
            await link.close()
        }
        // Every removal, not only those since `old`: after a restart the first roster heard is
        // compared with none, and a lease loaded from the database may still be the removed node's.
        for node in removed {
            await leases?.release(heldBy: node.description)
        }
        let book = ProjectBook(entries: await mesh.snapshots(kinds: [.project, .secret]), roster: new)
        for (project, member) in book.staleMembers(roster: new) {
            let remaining = ((try? book.members(of: project)) ?? []).filter { new.isMember($0) }
            guard remaining.min() == local.nodeID else { continue }
            do {
                try await mesh.apply(try book.removeMember(member, from: project, local: local))
                logger.info("rotated a project key after a member's removal", metadata: ["project": "\(project)", "peer.id": "\(member.short)"])
            } catch {
                logger.error("could not rotate a project key", metadata: ["project": "\(project)", "error": "\(error)"])
            }
        }
    }

    /// Called when a rotation arrives or a member dies: if two members rotated a project's key at
    /// the same moment and this node is the one to settle it (`ProjectBook.projectsToRekey`:
    /// the smallest member this node sees alive), rotates it again.
    func rekeyContested() async {
        let book = await currentBook()
        let up = Set(await mesh.members().filter { $0.state == .alive || $0.state == .suspect }.map(\.id))
        for project in book.projectsToRekey(by: local, isAlive: { up.contains($0) }) {
            do {
                try await mesh.apply(try book.rekey(project, local: local))
                logger.info("rotated a project key again after two members rotated it at once", metadata: ["project": "\(project)"])
            } catch {
                logger.error("could not rotate a contested project key", metadata: ["project": "\(project)", "error": "\(error)"])
            }
        }
    }

    // MARK: Projects

    func projects() async -> [ProjectInfo] {
        let book = await currentBook()
        return book.projectNames.compactMap { try? info(book.project($0)) }
    }

    /// Writes the entries `make` returns for `project`, and answers the project as it is then.
    func change(_ project: String, _ make: (ProjectBook) throws -> [EntryIntent]) async throws(MeshAdminRefusal) -> ProjectInfo {
        do {
            try await mesh.apply(try make(await currentBook()))
            return info(try await currentBook().project(project))
        } catch let error as ProjectError {
            throw .project(error)
        } catch {
            throw .notWritten(what: "the project's entries", reason: "\(error)")
        }
    }

    // MARK: Removing a project member

    struct MemberRemovalCall: Codable {
        var project: String
        var node: String
    }

    struct MemberRemovalAnswer: Codable {
        var status: Int?
        var error: String?
    }

    /// `project remove-member`: the key is rotated without `node` by a member of the project, as
    /// only members hold the key. A remover that is a member rotates it itself. An admin outside
    /// the project asks the remaining member with the smallest node ID that gossip shows up (the
    /// next one if it can't be reached), so one deterministic member rotates, not whichever node
    /// the admin happened to use.
    func removeMember(_ node: NodeID, from project: String) async throws(MeshAdminRefusal) {
        let book = await currentBook()
        if book.isMember(local.nodeID, of: project) {
            _ = try await change(project) { book in try book.removeMember(node, from: project, local: local) }
            return
        }
        let p: ProjectBook.Project
        do { p = try book.project(project) } catch { throw .project(error) }
        guard p.memberKeys[node] != nil else { throw .project(.notAMember(node, project: project)) }
        guard gate.roster?.isAdmin(local.nodeID) == true else { throw .neitherMemberNorAdmin(local.nodeID, project: project) }
        let remaining = p.members.filter { $0 != node && !p.unsettledRemovals.contains($0) }
        guard !remaining.isEmpty else { throw .project(.lastMember(node, project: project)) }
        var up: [NodeID: Member] = [:]
        for m in await mesh.members() where m.state == .alive || m.state == .suspect { up[m.id] = m }
        let body = Array((try? JSONEncoder().encode(MemberRemovalCall(project: project, node: node.description))) ?? Data())
        var failures: [String] = []
        for member in remaining {
            guard let found = up[member] else { failures.append("\(member.short)… is not up"); continue }
            let answer: MemberRemovalAnswer
            do {
                let link = try await link(to: member, address: found.address, linksOnly: MemberTraits(metadata: found.metadata).linksOnly)
                answer = try JSONDecoder().decode(MemberRemovalAnswer.self, from: Data(try await LinkRPC.call(link, path: LinkPath.projectRemoveMember.rawValue, body: body)))
            } catch {
                failures.append("\(member.short)…: \(error)")
                continue
            }
            // The member's refusal is final: another would refuse alike.
            if let error = answer.error { throw .refusedByMember(status: answer.status, reason: error) }
            logger.info("a project member rotated the key to remove a member", metadata: [
                "project": "\(project)", "peer.id": "\(node.short)", "rotator": "\(member.short)",
            ])
            return
        }
        throw .noRotator(project: project, node: node, failures: failures)
    }

    private func link(to member: NodeID, address: String, linksOnly: Bool) async throws -> Link {
        if let live = LinkPool.newest(endpoint.links, to: member) { return live }
        guard let (host, port) = HostPort.parse(address) else { throw MeshAdminRefusal.noAddress(member, address: address) }
        // Another site's private address: no route, only a wait for "Network is unreachable".
        guard LinkReach.local().mayDial(host, linksOnly: linksOnly) else {
            throw LinkError.connectFailed(host: host, port: port, reason: "node \(member.short) is behind NAT on another network and holds no link to this node")
        }
        return try await endpoint.dial(host: host, port: port, expecting: member)
    }

    /// A member's side of `LinkPath.projectRemoveMember`: rotates the key without the node for `peer`, which
    /// must be an admin of the mesh or a member of the project (the link proved who it is).
    func serveRemoval(_ body: [UInt8], from peer: NodeID) async -> [UInt8] {
        func answer(_ a: MemberRemovalAnswer) -> [UInt8] { Array((try? JSONEncoder().encode(a)) ?? Data()) }
        guard let call = try? JSONDecoder().decode(MemberRemovalCall.self, from: Data(body)), let node = NodeID(call.node) else {
            return answer(MemberRemovalAnswer(status: 400, error: "the removal request could not be read; is the asking node the same version?"))
        }
        let book = await currentBook()
        guard gate.roster?.isAdmin(peer) == true || book.isMember(peer, of: call.project) else {
            logger.warning("refused a project member removal", metadata: ["project": "\(call.project)", "peer.id": "\(peer.short)"])
            return answer(MemberRemovalAnswer(status: 403, error: "node \(peer.short)… is neither a member of project \(call.project) nor an admin of the mesh"))
        }
        do {
            _ = try await change(call.project) { book in try book.removeMember(node, from: call.project, local: local) }
            return answer(MemberRemovalAnswer())
        } catch {
            // The asking node's local API answers with the status this node's table gives.
            let mapped = APIErrorTable.apiError(for: error)
            return answer(MemberRemovalAnswer(status: mapped.status, error: mapped.message))
        }
    }

    private func currentBook() async -> ProjectBook {
        ProjectBook(entries: await mesh.snapshots(kinds: [.project, .secret]), roster: await mesh.roster())
    }

    private func info(_ p: ProjectBook.Project) -> ProjectInfo {
        ProjectInfo(name: p.name, members: p.members.map(\.description), generation: p.generation, isMember: p.memberKeys[local.nodeID] != nil)
    }

    // MARK: Input

    private func requireRoster() throws(MeshAdminRefusal) -> MeshRoster {
        guard let roster = gate.roster else {
            throw .noAdmission
        }
        return roster
    }

    func nodeID(_ text: String) throws(MeshAdminRefusal) -> NodeID {
        guard let id = NodeID(text) else { throw .notANodeID(String(text.prefix(80))) }
        return id
    }
}

/// Why an admission or project request is refused: each case says what is wrong and what to do
/// next. The local API gives each its status (`APIErrorTable`).
enum MeshAdminRefusal: Error, Sendable, CustomStringConvertible {
    case noAdmission
    /// A mesh with admission whose roster this node has not heard yet.
    case rosterNotReceived
    case unknownRole(String)
    case notANodeID(String)
    case admission(AdmissionError)
    case project(ProjectError)
    /// The replica refused to write `what`.
    case notWritten(what: String, reason: String)
    case neitherMemberNorAdmin(NodeID, project: String)
    /// The member asked to remove another refused, with the status its own API gave.
    case refusedByMember(status: Int?, reason: String)
    /// No member of the project could be asked to rotate its key.
    case noRotator(project: String, node: NodeID, failures: [String])
    case noAddress(NodeID, address: String)

    var description: String {
        switch self {
        case .noAdmission:
            return "this node's mesh has no admission: run `warren mesh init` on the first node (stopped) to found a mesh"
        case .rosterNotReceived:
            return "this node has not received its mesh's roster yet: wait until it has joined (`warren mesh members`), then try again"
        case .unknownRole(let role):
            return "unknown role `\(role)`: use admin, gateway or runner"
        case .notANodeID(let text):
            return "`\(text)` is not a node ID; see `warren mesh members` or `warren node id`"
        case .admission(let error):
            return error.description
        case .project(let error):
            return error.description
        case .notWritten(let what, let reason):
            return "could not write \(what): \(reason)"
        case .neitherMemberNorAdmin(let local, let project):
            return "this node (\(local.short)…) is neither a member of project \(project) nor an admin of the mesh: "
                + "run `warren project remove-member` on a member of \(project) or on an admin"
        case .refusedByMember(_, let reason):
            return reason
        case .noRotator(let project, let node, let failures):
            return "no member of project \(project) could rotate its key without \(node.short)… (\(failures.joined(separator: "; "))); "
                + "only members hold the key: retry when one of them is up"
        case .noAddress(let member, let address):
            return "member \(member.short)… has no address to dial: \(address)"
        }
    }
}
