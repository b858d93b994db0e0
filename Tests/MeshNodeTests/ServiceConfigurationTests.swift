import Foundation
@testable import MeshNode
@testable import Provisioning
@testable import Trust
import TrustTestSupport
@testable import Link
import Testing

/// The package root, found from this file, so tests read `examples/` wherever the clone is.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private let guideSecrets = SecretValues(project: "local", values: ["GATEWAY_IP": "23.100.30.60"])

private func parse(_ yaml: String, secrets: SecretValues = guideSecrets, env: [String: String] = [:]) throws(ConfigurationError) -> ServiceConfiguration {
    try ServiceConfigurationParser(secrets: secrets, environment: env).parse(yaml: yaml, file: "service.yml")
}

/// The single issue a file must produce; fails the test when there are none or several.
private func onlyIssue(_ yaml: String, secrets: SecretValues = guideSecrets, env: [String: String] = [:]) throws -> ConfigurationIssue {
    do {
        let s = try parse(yaml, secrets: secrets, env: env)
        Issue.record("expected an error, got \(s)")
        throw CancellationError()
    } catch let error as ConfigurationError {
        try #require(error.issues.count == 1, "issues: \(error.issues)")
        return error.issues[0]
    }
}

@Suite struct GuideExamples {
    @Test func gatewayByAddressAndBarePort() throws {
        let s = try parse("""
            type: service
            gateway: 23.100.30.60
            port: 8000
            commands:
              - python -m http.server 8000
            """)
        #expect(s.gateway?.value == "23.100.30.60")
        #expect(s.port == PortMapping(external: 80, app: 8000))
        #expect(s.commands.map(\.value) == ["python -m http.server 8000"])
        #expect(s.env.isEmpty)
    }

    @Test func gatewayFromSecret() throws {
        let s = try parse("""
            type: service
            gateway: ${{ secrets.GATEWAY_IP }}
            port: 8000
            commands:
              - python -m http.server 8000
            """)
        #expect(s.gateway?.value == "23.100.30.60")
        #expect(s.gateway?.display == "***")
        #expect(s.port == PortMapping(external: 80, app: 8000))
    }

    @Test func portMapping() throws {
        let s = try parse("""
            type: service
            gateway: ${{ secrets.GATEWAY_IP }}
            port: "5001:8000"
            commands:
              - python -m http.server 8000
            """)
        #expect(s.port == PortMapping(external: 5001, app: 8000))
    }

    @Test func everyExampleFileIsValid() throws {
        let dir = packageRoot.appendingPathComponent("examples")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }
        #expect(files.count >= 4)
        for f in files {
            let parser = ServiceConfigurationParser(secrets: guideSecrets, environment: [:])
            #expect(throws: Never.self, "\(f)") { _ = try parser.parse(contentsOf: dir.appendingPathComponent(f).path) }
        }
    }
}

@Suite struct Fields {
    @Test func envAsListAndAsMapWithInterpolation() throws {
        let list = try parse("""
            type: service
            port: 8000
            env:
              - MODE=prod
              - TOKEN=${{ secrets.TOKEN }}
              - HOME_DIR
              - URL=http://${{ env.HOST }}:1/x
            commands: ["echo $MODE"]
            """, secrets: SecretValues(project: "p", values: ["TOKEN": "s3cr3t"]), env: ["HOME_DIR": "/h", "HOST": "example.org"])
        #expect(list.env.map(\.name) == ["MODE", "TOKEN", "HOME_DIR", "URL"])
        #expect(list.env.map(\.value.value) == ["prod", "s3cr3t", "/h", "http://example.org:1/x"])
        #expect(list.env[1].value.display == "***")
        #expect(list.gateway == nil)

        let map = try parse("""
            type: service
            port: 8000
            env:
              MODE: prod
              N: 3
            commands: ["run ${{ secrets.TOKEN }} twice ${{secrets.TOKEN}}"]
            """, secrets: SecretValues(project: "p", values: ["TOKEN": "t"]))
        #expect(map.env.map(\.value.value) == ["prod", "3"])
        #expect(map.commands[0].value == "run t twice t")
        #expect(map.commands[0].display == "run *** twice ***")
    }

    @Test func dstackOptionalFields() throws {
        let s = try parse("""
            type: service
            name: web
            python: "3.11"
            image: nginx
            domain: api.example.com
            setup:
              - pip install -r requirements.txt
            port: 8000
            commands: [serve]
            resources:
              gpu: 24GB
            replicas: 2
            """)
        #expect(s.name == "web")
        #expect(s.python == "3.11")
        #expect(s.image == "nginx")
        #expect(s.domain?.value == "api.example.com")
        #expect(s.setup.map(\.value) == ["pip install -r requirements.txt"])
        #expect(s.ignoredFields == ["resources", "replicas"])
    }

    @Test func httpsFalseOptsOutOfTLSTermination() throws {
        #expect(try parse("type: service\ndomain: a.example.com\nport: 80\ncommands: [x]").https)
        let plain = try parse("type: service\ndomain: a.example.com\nhttps: false\nport: 80\ncommands: [x]")
        #expect(!plain.https)
        #expect(plain.ignoredFields.isEmpty, "https is acted on, not ignored")
        #expect(try parse("type: service\nhttps: true\nport: 80\ncommands: [x]").https)
        let issue = try onlyIssue("type: service\nhttps: sometimes\nport: 80\ncommands: [x]")
        #expect(issue.line == 2 && issue.message.contains("`https` must be true or false"), "\(issue)")
    }

    @Test func gatewayTrueMeansTheOnlyGateway() throws {
        #expect(try parse("type: service\ngateway: true\nport: 80\ncommands: [x]").gateway == nil)
        let issue = try onlyIssue("type: service\ngateway: false\nport: 80\ncommands: [x]")
        #expect(issue.message.contains("gateway: false"))
    }
}

/// Port forms: valid ones and their meaning, invalid ones and the word their message must hold.
@Suite struct PortForms {
    @Test(arguments: [
        ("8000", 80, 8000), ("\"8000\"", 80, 8000), ("\"5001:8000\"", 5001, 8000), ("'1:65535'", 1, 65535),
        ("5001:8000", 5001, 8000), ("65535", 80, 65535), ("\"80 : 8080\"", 80, 8080),
    ])
    func valid(_ text: String, _ external: Int, _ app: Int) throws {
        #expect(try parse("type: service\nport: \(text)\ncommands: [x]").port == PortMapping(external: external, app: app))
    }

    @Test(arguments: [
        ("0", "outside 1–65535"), ("65536", "outside 1–65535"), ("\"70000:80\"", "outside 1–65535"), ("-1", "outside 1–65535"),
        ("\"1:2:3\"", "is not a port"), ("\"a:b\"", "is not a port"), ("\":80\"", "is not a port"), ("\"\"", "is not a port"),
        ("8000.5", "is not a port"), ("[80]", "must be a number"), ("", "must be a number"),
    ])
    func invalid(_ text: String, _ expected: String) throws {
        let issue = try onlyIssue("type: service\nport: \(text)\ncommands: [x]")
        #expect(issue.message.contains(expected), "\(issue.message)")
        #expect(issue.line == 2)
    }
}

@Suite struct Errors {
    @Test func malformedYAMLNamesTheLine() throws {
        let issue = try onlyIssue("type: service\nport: 8000\ncommands:\n  - a\n - b\n")
        #expect(issue.line == 5)
        #expect(issue.message.hasPrefix("malformed YAML"))
        #expect(issue.description.hasPrefix("service.yml:5:"))
    }

    @Test func wrongTypeOfValue() throws {
        let issue = try onlyIssue("type: service\nport: 8000\ncommands: python -m http.server\n")
        #expect(issue.line == 3 && issue.column == 11)
        #expect(issue.message.contains("must be a list of strings"))
        let env = try onlyIssue("type: service\nport: 8000\nenv: 3\ncommands: [x]\n")
        #expect(env.message.contains("`env` must be a list"))
    }

    @Test func unknownFieldSuggestsTheNearestName() throws {
        do {
            _ = try parse("type: service\nport: 8000\ncomands:\n  - x\n")
            Issue.record("expected an error")
        } catch {
            // The typo and the `commands` it leaves missing are both reported, the typo with a hint.
            #expect(error.issues.map(\.message).contains("unknown field `comands`; did you mean `commands`?"))
            #expect(error.issues.contains { $0.message.hasPrefix("missing `commands`") })
        }
    }

    @Test func unknownFieldMessage() throws {
        do {
            _ = try parse("type: service\nport: 8000\ncommands: [x]\ngatway: 1.2.3.4\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.issues.count == 1)
            #expect(error.issues[0].message == "unknown field `gatway`; did you mean `gateway`?")
            #expect(error.issues[0].line == 4 && error.issues[0].column == 1)
        }
    }

    @Test func missingPortAndCommandsAreBothReported() throws {
        do {
            _ = try parse("type: service\ngateway: x\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.issues.count == 2)
            #expect(error.issues.contains { $0.message.hasPrefix("missing `port`") })
            #expect(error.issues.contains { $0.message.hasPrefix("missing `commands`") })
        }
    }

    @Test(arguments: ["task", "dev-environment"])
    func otherTypesAreRefused(_ type: String) throws {
        let issue = try onlyIssue("type: \(type)\nport: 8000\ncommands: [x]\n")
        #expect(issue.message.contains("task and dev-environment are not supported"))
        #expect(issue.line == 1 && issue.column == 7)
    }

    @Test func missingType() throws {
        #expect(try onlyIssue("port: 8000\ncommands: [x]\n").message == "missing `type: service`")
    }

    @Test func unknownSecretNamesSecretProjectAndKnownNames() throws {
        let issue = try onlyIssue(
            "type: service\ngateway: ${{ secrets.GATEWAY_PI }}\nport: 8000\ncommands: [x]\n",
            secrets: SecretValues(project: "local", values: ["GATEWAY_IP": "1.2.3.4", "TOKEN": "t"]))
        #expect(issue.message.contains("unknown secret `GATEWAY_PI` in project `local`"))
        #expect(issue.message.contains("did you mean `GATEWAY_IP`?"))
        #expect(issue.message.contains("GATEWAY_IP, TOKEN"))
        #expect(issue.line == 2 && issue.column == 10)
    }

    @Test func unterminatedInterpolation() throws {
        let issue = try onlyIssue("type: service\nport: 8000\ncommands:\n  - echo ${{ secrets.X\n")
        #expect(issue.message.contains("`${{` is not closed"))
        #expect(issue.line == 4 && issue.column == 10)
    }

    @Test func unsupportedInterpolation() throws {
        let issue = try onlyIssue("type: service\nport: 8000\ncommands: [\"${{ run.id }}\"]\n")
        #expect(issue.message.contains("`${{ run.id }}` is not supported"))
    }

    @Test func notAMapping() throws {
        #expect(try onlyIssue("- a\n- b\n").message.contains("is a mapping of fields"))
        #expect(try onlyIssue("").message.contains("is a mapping of fields"))
    }

    @Test func duplicateField() throws {
        let issue = try onlyIssue("type: service\nport: 8000\nport: 9000\ncommands: [x]\n")
        #expect(issue.message == "`port` is given twice (first at line 2)")
    }

    @Test func badEnvironmentNames() throws {
        #expect(try onlyIssue("type: service\nport: 1\nenv: [\"1X=2\"]\ncommands: [x]\n").message.contains("not a valid environment variable name"))
        #expect(try onlyIssue("type: service\nport: 1\nenv: [NOPE]\ncommands: [x]\n").message.contains("not set in the environment"))
    }

    @Test func missingFileIsAnIssueNotACrash() throws {
        let parser = ServiceConfigurationParser(secrets: guideSecrets, environment: [:])
        #expect(throws: ConfigurationError.self) { _ = try parser.parse(contentsOf: "/nonexistent/service.yml") }
    }
}

@Suite struct Suggestions {
    @Test func distances() {
        #expect(Suggestion.distance("kitten", "sitting") == 3)
        #expect(Suggestion.nearest(to: "comands", in: ["commands", "port"]) == "commands")
        #expect(Suggestion.nearest(to: "zzzzzz", in: ["commands", "port"]) == nil)
    }
}

@Suite struct ProxyProtocolOption {
    @Test func offUnlessTheFileAsks() throws {
        let base = "type: service\nport: 8000\ncommands:\n  - ./serve\n"
        #expect(try parse(base).proxyProtocol == false)
        #expect(try parse(base + "proxy_protocol: true\n").proxyProtocol == true)
        #expect(try parse(base + "proxy_protocol: false\n").proxyProtocol == false)
    }

    @Test func aValueThatIsNotABooleanIsRefusedNamingIt() throws {
        let issue = try onlyIssue("type: service\nport: 8000\ncommands:\n  - ./serve\nproxy_protocol: v2\n")
        #expect(issue.line == 5)
        #expect(issue.message.contains("`proxy_protocol` must be true or false, not `v2`"), "\(issue.message)")
    }
}
