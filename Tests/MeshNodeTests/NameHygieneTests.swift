import Foundation
@testable import MeshNode
@testable import Provisioning
@testable import Trust
@testable import Link
import Testing

/// Names people give runs and gateways are gossiped to every member and printed in their tables:
/// they are checked where they are made.
@Suite struct NameHygieneTests {
    static let hostile = "web\u{1B}[2J\u{1B}[31mPWNED\nfake-row"

    @Test func aRunNameWithEscapesOrANewlineIsRejectedByTheParser() throws {
        // YAML's double-quoted escapes put ESC and a newline in the name.
        let yaml = """
            type: service
            name: "web\\e[2J\\e[31mPWNED\\nfake-row"
            gateway: 23.100.30.60
            port: 8000
            commands:
              - python -m http.server 8000
            """
        do {
            let s = try ServiceConfigurationParser(secrets: SecretValues(project: "p", values: [:]), environment: [:]).parse(yaml: yaml, file: "service.yml")
            Issue.record("a run name with escapes was accepted: \(s.name ?? "-")")
        } catch {
            #expect(error.issues.count == 1)
            #expect(error.issues.first?.message.contains("is not a plain name") == true, "\(error.issues)")
            // The message shows the escapes, it does not act on them.
            #expect(error.issues.first?.message.contains("\u{1B}") == false)
        }
    }

    @Test(arguments: ["web", "web-1", "api.v2", "a_b", "X9"]) func plainNamesPass(_ name: String) {
        #expect(PlainName.isValid(name))
    }

    @Test(arguments: [hostile, "", "-web", "web 1", "web\n", "wéb", String(repeating: "a", count: 64), "a\u{202E}b"])
    func otherNamesAreRefused(_ name: String) {
        #expect(!PlainName.isValid(name))
    }
}
