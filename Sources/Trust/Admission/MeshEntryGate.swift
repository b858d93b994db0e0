public import Gossip
import Foundation

/// The one check the replicated map makes before merging a write: the writer rule of each kind
/// (SECURITY.md). `member` goes to the roster, `project` and `secret` to the project book;
/// `gateway`, `lease`, `domainClaim`, `certificateOrder`, `certificate` and `meshSetting` are checked here against
/// their author. A refused write
/// never enters the replica.
///
/// Before the node belongs to a mesh (no roster yet) only the entries' own consistency and the
/// authorship rules that need no roster are checked.
public enum MeshEntryGate {
    /// - Parameter gateways: the address each gateway announces (its `gateway` entry), by node.
    public static func check(
        kind: EntryKind, key: String, value: [UInt8]?, author: NodeID, roster: MeshRoster?, book: ProjectBook,
        gateways: [NodeID: String] = [:]
    ) throws(EntryRefusal) {
        switch kind {
        case .member:
            guard let roster else { return }
            try roster.checkWrite(key: key, value: value, author: author)
        case .project, .secret:
            try book.check(kind: kind, key: key, value: value, author: author, roster: roster)
        case .gateway:
            try checkGateway(key: key, author: author, roster: roster)
        case .lease:
            try checkLease(key: key, value: value, author: author, gateways: gateways)
        case .domainClaim:
            try checkDomainClaim(key: key, value: value, author: author)
        case .certificateOrder, .certificate:
            try checkCertificate(kind: kind, key: key, value: value, author: author, roster: roster, gateways: gateways)
        case .meshSetting:
            try checkMeshSetting(key: key, value: value, author: author, roster: roster)
        default:
            // A kind of a newer version: no rule of this one applies, gossip carries it.
            return
        }
    }

    /// A gateway entry is keyed by its node's ID and written by that node only; where the mesh has
    /// a roster, only by a member admitted as a gateway or an admin (a runner can't announce a
    /// public address and draw leases and traffic to itself).
    static func checkGateway(key: String, author: NodeID, roster: MeshRoster?) throws(EntryRefusal) {
        guard key == author.description else {
            throw EntryRefusal(key: key, reason: "a gateway entry may only be written by the gateway node itself, not by \(author.short)…",
                               rule: "gateway_not_its_node")
        }
        if let roster, let role = roster.role(of: author), role != .gateway, role != .admin {
            throw EntryRefusal(key: key, reason: "node \(author.short)… has role \(role); only gateways and admins announce a gateway",
                               rule: "gateway_role")
        }
    }

    /// A lease (key `address|port|host`) is written only by the gateway that announces that
    /// address: only it binds the socket, so only it decides. One whose gateway entry has not
    /// arrived yet waits for it.
    static func checkLease(key: String, value: [UInt8]?, author: NodeID, gateways: [NodeID: String]) throws(EntryRefusal) {
        guard let bar = key.firstIndex(of: "|") else {
            throw EntryRefusal(key: key, reason: "a lease key is address|port|host", rule: "lease_malformed")
        }
        let address = String(key[..<bar])
        if let value {
            guard let lease = try? JSONDecoder().decode(Lease.self, from: Data(value)), lease.binding.address == address else {
                throw EntryRefusal(key: key, reason: "the lease does not decode, or binds another address than its key", rule: "lease_malformed")
            }
        }
        guard let announced = gateways[author] else {
            if gateways.values.contains(address) {
                throw EntryRefusal(key: key, reason: "gateway address \(address) belongs to another node than \(author.short)…",
                                   rule: "lease_not_its_gateway")
            }
            throw EntryRefusal(key: key, reason: "its author \(author.short)… has announced no gateway (yet)", awaitsDependency: true,
                               rule: "lease_not_its_gateway")
        }
        guard announced == address else {
            throw EntryRefusal(key: key, reason: "node \(author.short)… is the gateway of \(announced), not of \(address)",
                               rule: "lease_not_its_gateway")
        }
    }

    /// What a domain claim says: the node that holds the domain for its run.
    struct DomainClaim: Codable {
        var holder: String
        var runID: String
    }

    /// A domain claim (key: the domain) is made by a member for its own run: the claim names its
    /// author as the holder, so no member claims a domain in another's name.
    static func checkDomainClaim(key: String, value: [UInt8]?, author: NodeID) throws(EntryRefusal) {
        guard let value else { return }
        guard let claim = try? JSONDecoder().decode(DomainClaim.self, from: Data(value)), claim.holder == author.description else {
            throw EntryRefusal(key: key, reason: "a domain claim must name its author \(author.short)… as the holder", rule: "domain_claim_not_own")
        }
    }

    /// What a `certificateOrder` or `certificate` entry says of itself: its name and its gateway.
    public struct CertificateEntryHead: Codable, Sendable {
        public var name: String
        public var gateway: String

        public init(name: String, gateway: String) {
            self.name = name
            self.gateway = gateway
        }
    }

    /// A certificate order claim or a sealed certificate (key `name|node ID`) is written only by the
    /// gateway it names, and only by a gateway: a runner could otherwise win the order lease and
    /// stall every gateway's certificate, or publish a certificate of its own choosing for a name.
    /// One whose author has not announced its gateway yet waits for that announcement.
    static func checkCertificate(
        kind: EntryKind, key: String, value: [UInt8]?, author: NodeID, roster: MeshRoster?, gateways: [NodeID: String]
    ) throws(EntryRefusal) {
        guard let bar = key.lastIndex(of: "|"), !key[..<bar].isEmpty else {
            throw EntryRefusal(key: key, reason: "a \(kind) key is name|gateway node ID", rule: "certificate_malformed")
        }
        let name = String(key[..<bar]), owner = String(key[key.index(after: bar)...])
        guard owner == author.description else {
            throw EntryRefusal(key: key, reason: "a \(kind) entry may only be written by the gateway its key names, not by \(author.short)…",
                               rule: "certificate_not_own")
        }
        if let value {
            guard let head = try? JSONDecoder().decode(CertificateEntryHead.self, from: Data(value)), head.name == name,
                  head.gateway == owner
            else {
                throw EntryRefusal(key: key, reason: "the \(kind) entry does not decode, or names another name or gateway than its key",
                                   rule: "certificate_malformed")
            }
        }
        if let roster, let role = roster.role(of: author), role != .gateway, role != .admin {
            throw EntryRefusal(key: key, reason: "node \(author.short)… has role \(role); only gateways order and share certificates",
                               rule: "certificate_not_gateway")
        }
        guard gateways[author] != nil else {
            throw EntryRefusal(key: key, reason: "its author \(author.short)… has announced no gateway (yet)", awaitsDependency: true,
                               rule: "certificate_not_gateway")
        }
    }

    /// A mesh setting applies to every node: where the mesh has a roster only an admin writes or
    /// deletes one (a runner would otherwise point every gateway at a CA of its choosing). A
    /// setting this version knows must decode; one of a newer version passes.
    static func checkMeshSetting(key: String, value: [UInt8]?, author: NodeID, roster: MeshRoster?) throws(EntryRefusal) {
        if let roster, roster.role(of: author) != .admin {
            throw EntryRefusal(key: key, reason: "node \(author.short)… is not an admin; only admins change the mesh's settings",
                               rule: "setting_not_admin")
        }
        guard let value, key == MeshACME.key else { return }
        do {
            _ = try MeshACME.decode(value)
        } catch {
            throw EntryRefusal(key: key, reason: "the mesh's ACME setting does not decode: \(error)", rule: "setting_malformed")
        }
    }
}
