import Foundation
import LinkTestSupport
import Gossip
import Link
import Sodium
import Testing

struct IdentityTests {
    /// A fresh directory path under the system temporary directory (not created).
    static func scratch() -> String {
        NSTemporaryDirectory() + "warren-identity-\(UUID().uuidString)"
    }

    static func mode(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }

    @Test func createsThenLoadsTheSameIdentity() throws {
        let dir = Self.scratch() + "/state"
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let first = try NodeIdentity.loadOrCreate(directory: dir)
        let second = try NodeIdentity.loadOrCreate(directory: dir)
        #expect(first.id == second.id)
        #expect(first.staticKey.publicKey == second.staticKey.publicKey)
        #expect(try Self.mode(dir) == 0o700)
        #expect(try Self.mode(dir + "/node.key") == 0o600)
        #expect(NodeID(first.id.description) == first.id)
    }

    @Test func signaturesVerifyAgainstTheNodeID() throws {
        let identity = NodeIdentity.generate()
        let signature = identity.sign(Array("hello".utf8))
        #expect(Ed25519.verify(signature: signature, message: Array("hello".utf8), publicKey: identity.id.bytes))
        #expect(try Ed25519.x25519PublicKey(from: identity.id.bytes) == identity.staticKey.publicKey)
    }

    @Test func refusesAKeyFileReadableByOthers() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let identity = try NodeIdentity.loadOrCreate(directory: dir)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/node.key")
        #expect(throws: IdentityError.self) { try NodeIdentity.loadOrCreate(directory: dir) }
        // Refused, not replaced: fixing the mode brings the same identity back.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/node.key")
        #expect(try NodeIdentity.loadOrCreate(directory: dir).id == identity.id)
    }

    @Test func refusesAGroupWritableDirectory() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o770])
        try FileManager.default.setAttributes([.posixPermissions: 0o770], ofItemAtPath: dir)
        #expect(throws: IdentityError.self) { try NodeIdentity.loadOrCreate(directory: dir) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/node.key"))
    }

    @Test(arguments: [Array("short".utf8), [UInt8](repeating: 7, count: 64)])
    func refusesADamagedKeyFileAndLeavesIt(contents: [UInt8]) throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try NodeIdentity.loadOrCreate(directory: dir)
        let path = dir + "/node.key"
        try Data(contents).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        do {
            _ = try NodeIdentity.loadOrCreate(directory: dir)
            Issue.record("a damaged key file was accepted")
        } catch let error as IdentityError {
            guard case .corrupt = error else { Issue.record("unexpected error \(error)"); return }
            #expect(error.description.contains(path))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contents))
    }

    @Test func defaultDirectoryFollowsWarrenHome() {
        #expect(NodeIdentity.defaultDirectory(environment: ["WARREN_HOME": "/srv/w", "HOME": "/root"]) == "/srv/w")
        #expect(NodeIdentity.defaultDirectory(environment: ["HOME": "/home/a"]) == "/home/a/.warren")
    }
}
