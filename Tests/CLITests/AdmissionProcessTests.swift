import Foundation
import Gossip
import Link
import Logging
import MeshNode
@testable import Provisioning
import Sodium
import Testing
import Trust

/// Admission, projects and secrets end to end: real `warren` processes on loopback addresses
/// 127.0.0.41–48, each node with a state directory of its own.
@Suite(.serialized)
struct AdmissionProcessTests {
    static let port = 7431

    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warren-admission-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func warren(_ arguments: [String]) throws -> WarrenProcess.Result {
        try WarrenProcess.runBlocking(arguments, timeout: 30)
    }

    /// `mesh init` on a stopped node, then start it.
    static func found(_ dir: String, host: String) throws -> WarrenNodeProcess {
        let initResult = try warren(["mesh", "init", "--state-dir", dir, "--advertise", "\(host):\(port)"])
        #expect(initResult.status == 0, "mesh init: \(initResult.stderr)")
        let node = try WarrenNodeProcess(stateDirectory: dir, listen: "\(host):\(port)")
        #expect(node.waitUntilServing())
        return node
    }

    static func invite(_ dir: String, role: String = "runner", ttl: String = "1h") throws -> String {
        let r = try warren(["invite", "--state-dir", dir, "--role", role, "--ttl", ttl])
        #expect(r.status == 0, "invite: \(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts a node with `--join`, expecting it to be refused: returns its stderr.
    static func refusedJoin(_ dir: String, host: String, join: String) throws -> (status: Int32?, log: String) {
        let node = try WarrenNodeProcess(stateDirectory: dir, listen: "\(host):\(port)", join: [join], logLevel: "info")
        let status = node.waitForExit(timeout: 60)
        return (status, node.stop())
    }

    static func nodeID(_ dir: String) throws -> String {
        try warren(["node", "id", "--state-dir", dir]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("Joining with no token, an expired, forged, reused or non-admin's token is refused, saying which")
    func refusals() throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let a = try Self.found(root + "/a", host: "127.0.0.41")
        defer { a.stop() }

        // No token: the founder's links speak only in its mesh's name.
        let none = try Self.refusedJoin(root + "/b", host: "127.0.0.42", join: "127.0.0.41:\(Self.port)")
        #expect(none.status == 1)
        #expect(none.log.contains("no invite token"), "\(none.log.suffix(600))")

        // Expired.
        let shortLived = try Self.invite(root + "/a", ttl: "1s")
        Thread.sleep(forTimeInterval: 2.2)
        let expired = try Self.refusedJoin(root + "/c", host: "127.0.0.43", join: shortLived)
        #expect(expired.status == 1)
        #expect(expired.log.contains("expired"), "\(expired.log.suffix(600))")

        // Forged: one byte of the one-time secret changed, so the inviter's signature fails.
        let genuine = try Self.invite(root + "/a")
        var raw = try #require(Self.base64URLDecode(String(genuine.dropFirst(InviteToken.prefix.count))))
        raw[2 + 16 + 32 + 1 + 8 + 3] ^= 0x5a
        let forged = try Self.refusedJoin(root + "/c", host: "127.0.0.43", join: InviteToken.prefix + Self.base64URLEncode(raw))
        #expect(forged.status == 1)
        #expect(forged.log.contains("forged"), "\(forged.log.suffix(600))")

        // A genuine token admits one node; used again, it is refused.
        let d = try WarrenNodeProcess(stateDirectory: root + "/d", listen: "127.0.0.44:\(Self.port)", join: [genuine])
        defer { d.stop() }
        #expect(d.waitUntilServing())
        let members = try Self.pollUntil { try Self.warren(["mesh", "members", "--state-dir", root + "/a", "--json"]).stdout.contains(try Self.nodeID(root + "/d")) }
        #expect(members)
        let reused = try Self.refusedJoin(root + "/e", host: "127.0.0.45", join: genuine)
        #expect(reused.status == 1)
        #expect(reused.log.contains("already used"), "\(reused.log.suffix(600))")

        // A runner may not invite: its node says so, and a token it signs anyway is refused.
        #expect(try Self.pollUntil { try Self.warren(["mesh", "members", "--state-dir", root + "/d", "--json"]).stdout.contains("admin") })
        let notAdmin = try Self.warren(["invite", "--state-dir", root + "/d"])
        #expect(notAdmin.status == 1)
        #expect(notAdmin.stderr.contains("not an admin"))
        let runner = try NodeIdentity.loadOrCreate(directory: root + "/d")
        let meshID = try #require(InviteToken(encoded: genuine).meshID as MeshID?)
        let runnersToken = try InviteToken.issue(
            meshID: meshID, role: .runner, expires: Date().addingTimeInterval(600), addresses: ["127.0.0.41:\(Self.port)"],
            inviterKeys: runner.keyPair)
        let byRunner = try Self.refusedJoin(root + "/e", host: "127.0.0.45", join: runnersToken.encoded)
        #expect(byRunner.status == 1)
        #expect(byRunner.log.contains("only admins may invite"), "\(byRunner.log.suffix(600))")
    }

    @Test("Three nodes, one project: members read its secrets, others hold ciphertext only, a removed member reads nothing new")
    func projectSecrets() async throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (dirA, dirB, dirC) = (root + "/a", root + "/b", root + "/c")
        let a = try Self.found(dirA, host: "127.0.0.46")
        var nodes = [a]
        defer { for n in nodes { n.stop() } }
        let b = try WarrenNodeProcess(stateDirectory: dirB, listen: "127.0.0.47:\(Self.port)", join: [try Self.invite(dirA)])
        nodes.append(b)
        let c = try WarrenNodeProcess(stateDirectory: dirC, listen: "127.0.0.48:\(Self.port)", join: [try Self.invite(dirA)])
        nodes.append(c)
        #expect(b.waitUntilServing() && c.waitUntilServing())
        let (idB, idC) = (try Self.nodeID(dirB), try Self.nodeID(dirC))
        #expect(try Self.pollUntil {
            let members = try Self.warren(["mesh", "members", "--state-dir", dirA, "--json"]).stdout
            return members.contains(idB) && members.contains(idC)
        })

        let first = "first-secret-\(UUID().uuidString)"
        #expect(try Self.warren(["project", "create", "P", "--state-dir", dirA]).status == 0)
        let added = try Self.warren(["project", "add-member", "P", idB, "--state-dir", dirA])
        #expect(added.status == 0, "\(added.stderr)")
        let put = try Self.warren(["secrets", "add", "DB_PASSWORD", first, "--project", "P", "--state-dir", dirA])
        #expect(put.status == 0, "\(put.stderr)")

        // Spread within a few gossip intervals: B lists it; C says it is not a member.
        #expect(try Self.pollUntil {
            try Self.warren(["secrets", "list", "--project", "P", "--state-dir", dirB]).stdout.contains("DB_PASSWORD")
        })
        #expect(try Self.pollUntil { try Self.warren(["project", "list", "--state-dir", dirC]).stdout.contains("P") })
        let outsider = try Self.warren(["secrets", "list", "--project", "P", "--state-dir", dirC])
        #expect(outsider.status == 1)
        #expect(outsider.stderr.contains("not a member of project P"), "\(outsider.stderr)")

        // Remove B from the project (the key rotates), then add a secret B must not read.
        let removed = try Self.warren(["project", "remove-member", "P", idB, "--state-dir", dirA])
        #expect(removed.status == 0, "\(removed.stderr)")
        let second = "second-secret-\(UUID().uuidString)"
        #expect(try Self.warren(["secrets", "add", "API_TOKEN", second, "--project", "P", "--state-dir", dirA]).status == 0)
        // The rotation (key generation 2) reaches C; the new secret travels with it.
        #expect(try Self.pollUntil { try Self.warren(["project", "list", "--json", "--state-dir", dirC]).stdout.contains("\"generation\" : 2") })
        try await Task.sleep(for: .seconds(2))
        let formerMember = try Self.warren(["secrets", "list", "--project", "P", "--state-dir", dirB])
        #expect(formerMember.status == 1)
        #expect(formerMember.stderr.contains("not a member of project P"))

        // Key files and the socket are private.
        for dir in [dirA, dirB, dirC] {
            #expect(try Self.mode(dir + "/" + NodeIdentity.keyFileName) == 0o600)
            #expect(try Self.mode(dir + "/node.sock") == 0o600)
        }

        var logs: [String] = []
        for n in nodes { logs.append(n.stop()) }
        nodes = []

        // B, a member then, opens the first secret from its own database; not the one written after.
        let bookB = try await Self.book(dirB)
        let localB = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dirB).keyPair)
        #expect(throws: ProjectError.self) { try bookB.readSecret("API_TOKEN", project: "P", local: localB) }
        let bookA = try await Self.book(dirA)
        let localA = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dirA).keyPair)
        #expect(try bookA.readSecret("API_TOKEN", project: "P", local: localA) == second)
        #expect(try bookA.readSecret("DB_PASSWORD", project: "P", local: localA) == first)
        // C holds both secrets, as ciphertext only.
        #expect(try await Self.secretKeys(dirC).isSuperset(of: ["P/DB_PASSWORD", "P/API_TOKEN"]))
        #expect(try await Self.secretKeys(dirB).contains("P/API_TOKEN"))

        // No secret value in plaintext in any file of any state directory, nor in the trace logs.
        for dir in [dirA, dirB, dirC] {
            for file in try Self.files(under: dir) {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
                #expect(bytes.range(of: Data(first.utf8)) == nil, "\(file) holds a secret value")
                #expect(bytes.range(of: Data(second.utf8)) == nil, "\(file) holds a secret value")
            }
        }
        for log in logs {
            #expect(log.contains(" debug "), "the nodes ran at trace level")
            #expect(!log.contains(first) && !log.contains(second))
        }
    }

    @Test("A member removed from the mesh loses its links and its projects' keys rotate without it")
    func meshRemoval() async throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (dirA, dirB) = (root + "/a", root + "/b")
        let a = try Self.found(dirA, host: "127.0.0.41")
        defer { a.stop() }
        let b = try WarrenNodeProcess(stateDirectory: dirB, listen: "127.0.0.42:\(Self.port)", join: [try Self.invite(dirA)])
        defer { b.stop() }
        #expect(b.waitUntilServing())
        let idB = try Self.nodeID(dirB)
        #expect(try Self.pollUntil { try Self.warren(["mesh", "members", "--state-dir", dirA, "--json"]).stdout.contains(idB) })
        #expect(try Self.warren(["project", "create", "P", "--state-dir", dirA]).status == 0)
        #expect(try Self.warren(["project", "add-member", "P", idB, "--state-dir", dirA]).status == 0)
        #expect(try Self.pollUntil { try Self.warren(["project", "list", "--json", "--state-dir", dirB]).stdout.contains("\"isMember\" : true") })

        let removal = try Self.warren(["mesh", "remove", idB, "--state-dir", dirA])
        #expect(removal.status == 0, "\(removal.stderr)")
        let mesh = try JSONDecoder().decode(MeshInfo.self, from: Data(Self.warren(["mesh", "members", "--state-dir", dirA, "--json"]).stdout.utf8))
        #expect(!mesh.members.map(\.id).contains(idB))
        #expect(mesh.removed == [idB])
        // The remaining member rotates P's key (generation 2) without B.
        #expect(try Self.pollUntil {
            let list = try Self.warren(["project", "list", "--json", "--state-dir", dirA]).stdout
            return list.contains("\"generation\" : 2") && !list.contains(idB)
        })
        let after = "after-removal-\(UUID().uuidString)"
        #expect(try Self.warren(["secrets", "add", "LATER", after, "--project", "P", "--state-dir", dirA]).status == 0)
        try await Task.sleep(for: .seconds(2))
        // A closed B's links and keeps them closed.
        let peers = try Self.warren(["peers", "--state-dir", dirA, "--json"]).stdout
        #expect(!peers.contains("\"linked\" : true"), "\(peers)")
        a.stop()
        b.stop()
        let localB = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dirB).keyPair)
        let bookB = try await Self.book(dirB)
        #expect(throws: ProjectError.self) { try bookB.readSecret("LATER", project: "P", local: localB) }
        for file in try Self.files(under: dirB) {
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)).range(of: Data(after.utf8)) == nil)
        }
    }

    @Test("A token whose listed member belongs to another mesh: the joiner says no member accepted a link for its mesh")
    func tokenOfAnotherMesh() throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let a = try Self.found(root + "/a", host: "127.0.0.84")
        defer { a.stop() }
        // A token of another mesh, signed by its own founder, listing a's address.
        let otherFounder = Ed25519.KeyPair.generate()
        let other = try MeshRoster.found(addresses: [], at: Date(), keys: otherFounder)
        let token = try InviteToken.issue(
            meshID: other.roster.meshID, role: .runner, expires: Date().addingTimeInterval(600), addresses: ["127.0.0.84:\(Self.port)"],
            inviterKeys: otherFounder)
        let joiner = try Self.refusedJoin(root + "/b", host: "127.0.0.85", join: token.encoded)
        #expect(joiner.status == 1)
        #expect(joiner.log.contains("no member listed in the invite token accepted a link for mesh \(other.roster.meshID.short)…"), "\(joiner.log.suffix(800))")
        #expect(joiner.log.contains("127.0.0.84:\(Self.port) refused the link handshake: it is up but may belong to another mesh"), "\(joiner.log.suffix(800))")
    }

    @Test("Two members remove project members while apart: once they meet, both removals hold and one more rotation settles the key")
    func concurrentRotations() async throws {
        let root = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (dirA, dirB, dirC) = (root + "/a", root + "/b", root + "/c")
        let (hostA, hostB) = ("127.0.0.86", "127.0.0.87")
        var nodes = [try Self.found(dirA, host: hostA)]
        defer { for n in nodes { n.stop() } }
        nodes.append(try WarrenNodeProcess(stateDirectory: dirB, listen: "\(hostB):\(Self.port)", join: [try Self.invite(dirA)]))
        nodes.append(try WarrenNodeProcess(stateDirectory: dirC, listen: "127.0.0.88:\(Self.port)", join: [try Self.invite(dirA)]))
        #expect(nodes[1].waitUntilServing() && nodes[2].waitUntilServing())
        let (idA, idB, idC) = (try Self.nodeID(dirA), try Self.nodeID(dirB), try Self.nodeID(dirC))
        #expect(try Self.pollUntil {
            let members = try Self.warren(["mesh", "members", "--state-dir", dirA, "--json"]).stdout
            return members.contains(idB) && members.contains(idC)
        })
        #expect(try Self.warren(["project", "create", "P", "--state-dir", dirA]).status == 0)
        for id in [idB, idC] { #expect(try Self.warren(["project", "add-member", "P", id, "--state-dir", dirA]).status == 0) }
        let first = "before-\(UUID().uuidString)"
        #expect(try Self.warren(["secrets", "add", "FIRST", first, "--project", "P", "--state-dir", dirA]).status == 0)
        #expect(try Self.pollUntil { try Self.projects(dirB).first?.members.count == 3 })

        // C goes away for good (it can't carry one side's rotation to the other); A and B take
        // turns being down, and each removes C from the project without hearing of the other.
        nodes[2].stop()
        nodes[1].stop()
        #expect(try Self.warren(["project", "remove-member", "P", idC, "--state-dir", dirA]).status == 0)
        nodes[0].stop()
        nodes.append(try WarrenNodeProcess(stateDirectory: dirB, listen: "\(hostB):\(Self.port)"))
        #expect(nodes[3].waitUntilServing())
        #expect(try Self.projects(dirB).first?.generation == 1)
        let removedByB = try Self.warren(["project", "remove-member", "P", idC, "--state-dir", dirB])
        #expect(removedByB.status == 0, "\(removedByB.stderr)")

        // A comes back: each rotated generation 2; the smaller node ID rotates once more.
        nodes.append(try WarrenNodeProcess(stateDirectory: dirA, listen: "\(hostA):\(Self.port)", join: ["\(hostB):\(Self.port)"]))
        #expect(nodes[4].waitUntilServing())
        let settled = try Self.pollUntil(timeout: 40) {
            try [dirA, dirB].allSatisfy { dir in
                let p = try Self.projects(dir).first
                return p?.generation == 3 && p.map { Set($0.members) } == [idA, idB]
            }
        }
        let (seenByA, seenByB) = (try Self.projects(dirA), try Self.projects(dirB))
        #expect(settled, "A: \(seenByA), B: \(seenByB)")
        let later = "after-\(UUID().uuidString)"
        let added = try Self.warren(["secrets", "add", "LATER", later, "--project", "P", "--state-dir", dirB])
        #expect(added.status == 0, "\(added.stderr)")
        #expect(try Self.pollUntil { try Self.warren(["secrets", "list", "--project", "P", "--state-dir", dirA]).stdout.contains("LATER") })
        for n in nodes { n.stop() }

        // Both read every secret from their own databases; C can open no key of a later generation.
        for dir in [dirA, dirB] {
            let local = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dir).keyPair)
            let book = try await Self.book(dir)
            #expect(try book.secretValues("P", local: local) == ["FIRST": first, "LATER": later])
        }
        let localC = try LocalMember(identity: NodeIdentity.loadOrCreate(directory: dirC).keyPair)
        let bookA = try await Self.book(dirA)
        #expect(throws: ProjectError.self) { try bookA.readSecret("LATER", project: "P", local: localC) }
        #expect(bookA.projects["P"]?.rotations.allSatisfy { $0.memberKey(localC.nodeID) == nil } == true)
    }

    static func projects(_ dir: String) throws -> [ProjectInfo] {
        try JSONDecoder().decode([ProjectInfo].self, from: Data(warren(["project", "list", "--json", "--state-dir", dir]).stdout.utf8))
    }

    // MARK: Helpers

    /// Polls `condition` every 250 ms for at most `timeout` seconds.
    static func pollUntil(timeout: TimeInterval = 20, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if try condition() { return true }
            usleep(250_000)
        } while Date() < deadline
        return false
    }

    /// The keys of the live secret entries in a node's database.
    static func secretKeys(_ dir: String) async throws -> Set<String> {
        Set(try await entries(dir).filter { $0.kind == .secret }.map(\.key))
    }

    static func entries(_ dir: String) async throws -> [EntrySnapshot] {
        let store = try StateStore(stateDirectory: dir, logger: Logger(label: "test"))
        return try await store.allEntries().compactMap { r in
            guard !r.deleted, (0...255).contains(r.kind), let author = NodeID(bytes: Array(r.author)) else { return nil }
            return EntrySnapshot(kind: EntryKind(rawValue: UInt8(r.kind)), key: r.key, value: Array(r.value), author: author)
        }
    }

    static func book(_ dir: String) async throws -> ProjectBook {
        ProjectBook(entries: try await entries(dir))
    }

    static func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1) & 0o777
    }

    static func files(under dir: String) throws -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: dir)
        var files: [String] = []
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let path = dir + "/" + name
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
               (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeRegular {
                files.append(path)
            }
        }
        return files
    }

    static func base64URLDecode(_ text: String) -> [UInt8]? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        s += String(repeating: "=", count: (4 - s.utf8.count % 4) % 4)
        return Data(base64Encoded: s).map(Array.init)
    }

    static func base64URLEncode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
