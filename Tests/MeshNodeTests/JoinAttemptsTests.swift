import Link
@testable import MeshNode
@testable import Provisioning
import Sodium
import Testing
import Trust

/// The joiner's message when no member listed in its token admitted it: what it could learn.
struct JoinAttemptsTests {
    let mesh = MeshID(bytes: Array(0..<16))!

    @Test func membersOfAnotherMeshAreNamedAsUpButRefusingTheLink() {
        var attempts = JoinAttempts(meshID: mesh, addresses: ["10.0.0.1:7946", "10.0.0.2:7946"])
        for _ in 0..<3 {
            attempts.record("10.0.0.1:7946", linkError: LinkError.handshakeFailed(.decryptionFailed))
            attempts.record("10.0.0.2:7946", linkError: LinkError.handshakeFailed(.decryptionFailed))
        }
        #expect(attempts.allRefusedHandshakes(atLeast: 3))
        #expect(!attempts.allRefusedHandshakes(atLeast: 4))
        let message = attempts.failure
        #expect(message.hasPrefix("no member listed in the invite token accepted a link for mesh 00010203…: "))
        #expect(message.contains("10.0.0.1:7946, 10.0.0.2:7946 refused the link handshake: they are up but may belong to another mesh"))
        #expect(!message.contains("may be down"))
        #expect(message.contains(mesh.description))
    }

    @Test func downMembersAndRefusingMembersAreToldApart() {
        var attempts = JoinAttempts(meshID: mesh, addresses: ["10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"])
        attempts.record("10.0.0.1:7946", linkError: LinkError.handshakeFailed(.decryptionFailed))
        attempts.record("10.0.0.2:7946", linkError: LinkError.connectFailed(host: "10.0.0.2", port: 7946, reason: "connection refused"))
        attempts.record("10.0.0.3:7946", linkError: nil)
        #expect(!attempts.allRefusedHandshakes(atLeast: 1))
        let message = attempts.failure
        #expect(message.contains("10.0.0.1:7946 refused the link handshake: it is up but may belong to another mesh"))
        #expect(message.contains("10.0.0.2:7946 could not be reached, it may be down (10.0.0.2:7946: could not connect to 10.0.0.2:7946: connection refused)"))
        #expect(message.contains("10.0.0.3:7946 linked but did not answer the token"))
    }
}
