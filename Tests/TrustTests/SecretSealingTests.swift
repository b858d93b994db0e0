@testable import Trust
import Sodium
import Testing

@Suite struct SecretSealingTests {
    @Test func membersOpenTheKeyOthersCannot() throws {
        let key = ProjectKey.generate()
        let member = X25519.KeyPair.generate(), outsider = X25519.KeyPair.generate()
        let sealed = try key.sealed(to: member.publicKey)
        #expect(try ProjectKey.open(sealed, generation: 1, with: member) == key)
        #expect(throws: SodiumError.authenticationFailed) { _ = try ProjectKey.open(sealed, generation: 1, with: outsider) }
    }

    @Test func secretRoundTripAndNoPlaintextInTheBox() throws {
        let key = ProjectKey.generate()
        let value = "23.100.30.60-very-distinctive-value"
        let sealed = try SealedSecret.seal(value, project: "local", name: "GATEWAY_IP", version: 1, key: key)
        #expect(try sealed.open(with: key) == value)
        let haystack = String(decoding: sealed.box, as: UTF8.self)
        #expect(!haystack.contains("23.100.30.60"))
    }

    @Test func boundToProjectNameVersionAndKey() throws {
        let key = ProjectKey.generate()
        let sealed = try SealedSecret.seal("v", project: "local", name: "A", version: 3, key: key)
        var moved = sealed; moved.name = "B"
        var otherProject = sealed; otherProject.project = "web"
        var replayed = sealed; replayed.version = 4
        var altered = sealed; altered.box[30] ^= 1
        for bad in [moved, otherProject, replayed, altered] {
            #expect(throws: SodiumError.authenticationFailed) { _ = try bad.open(with: key) }
        }
        // A rotated key (new generation) can't open what the old one sealed, nor the reverse.
        let rotated = ProjectKey.generate(generation: 2)
        #expect(throws: SodiumError.authenticationFailed) { _ = try sealed.open(with: rotated) }
        #expect(throws: SodiumError.authenticationFailed) { _ = try sealed.open(with: ProjectKey.generate()) }
    }
}
