import ArgumentParser
import Foundation
import MeshNode
import Provisioning

/// `warren gateway create`: the node makes the gateway with the project's backend and reports
/// each step; this command shows them and prints NAME and ADDRESS once the gateway is alive in
/// the mesh. Ctrl-C (or a timeout) has the node remove what it made.
struct GatewayCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a gateway with the project's backend and wait until it joins the mesh.",
        discussion: """
            The backend is --backend, else the project's (`warren project set-backend`), else `local`: \
            a gateway node on this machine, on a free loopback address. Cloud backends read their \
            credentials from the project's secrets, then from this shell's environment \
            (AWS_ACCESS_KEY_ID …, AZURE_CLIENT_ID …, GOOGLE_APPLICATION_CREDENTIALS …, WARREN_RELEASE_URL, WARREN_RELEASE_SHA256). \
            In a mesh with admission (`warren mesh init`) this node, which must be an admin, signs a \
            single-use invite (role gateway) for the new gateway; without admission the gateway \
            joins by address. A cloud gateway reaches the mesh through this node's advertised \
            address, which must be reachable from the cloud. --acme-email, --acme-directory and \
            --acme-ca-bundle set the mesh's ACME setting (an admin's, in a mesh with admission), \
            which every gateway started without ACME flags of its own follows, this one and those \
            made before it included: a service with a domain, or named under the gateway's --domain, \
            is served over HTTPS with a certificate from that CA (Let's Encrypt by default); \
            `https: false` in its file opts out.
            """
    )

    @Option(help: "The project whose backend and credentials are used.") var project: String
    @Option(help: ArgumentHelp("local, aws, azure or gcp (default: the project's backend, else local).", valueName: "KIND"))
    var backend: String?
    @Option(help: "The gateway's name (default: a generated warren-gateway-<adjective>-<animal>).") var name: String?
    @Option(help: "The cloud region or zone (default: the backend's).") var region: String?
    @Option(help: "The VM size (default: t3.micro, Standard_B1s, e2-micro).") var instanceType: String?
    @Option(help: ArgumentHelp("A domain that will point at the gateway (repeatable).", valueName: "DOMAIN")) var domain: [String] = []
    @Option(help: ArgumentHelp("local backend: the loopback address to use (default: the first free of 127.0.0.2 …).", valueName: "ADDR"))
    var address: String?
    @Option(help: ArgumentHelp("How long to wait for the gateway to join the mesh (default: 60 local, 600 cloud).", valueName: "SECONDS"))
    var timeout: Double?
    @Option(help: ArgumentHelp("The SHA-256 of the release a cloud gateway installs (the .sha256 file `make release` writes); the first boot refuses any other download (default: WARREN_RELEASE_SHA256, else the release this node was installed from).", valueName: "HEX"))
    var releaseSha256: String?
    @Option(help: ArgumentHelp("The contact e-mail of the mesh's account at its ACME CA: the mesh's gateways serve HTTPS for their names with certificates from that CA. A setting of the mesh.", valueName: "EMAIL"))
    var acmeEmail: String?
    @Option(help: ArgumentHelp("The ACME directory the mesh's gateways order certificates from (default: Let's Encrypt, \(GatewayACME.letsEncrypt)); a staging or private CA's. A setting of the mesh, like --acme-email.", valueName: "URL"))
    var acmeDirectory: String?
    @Option(help: ArgumentHelp("CA certificates (PEM) the mesh's gateways trust for the ACME directory's https instead of the system's: a private CA's. A setting of the mesh, like --acme-email.", valueName: "FILE"))
    var acmeCaBundle: String?
    @OptionGroup var node: NodeOptions

    func validate() throws {
        if let backend, !GatewayProvisioner.kinds.contains(backend.lowercased()) {
            throw ValidationError("unknown backend `\(backend)`: use one of \(GatewayProvisioner.kinds.joined(separator: ", "))")
        }
        if let name { do { try GatewayName.validate(name) } catch { throw ValidationError("\(error)") } }
        for d in domain { do { try GatewayDomain.validate(d) } catch { throw ValidationError("\(error)") } }
        if acmeEmail != nil || acmeDirectory != nil || acmeCaBundle != nil {
            do { _ = try GatewayACME(directory: acmeDirectory, email: acmeEmail, caBundlePEM: try caBundlePEM()) } catch { throw ValidationError("\(error)") }
        }
        if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
        if let releaseSha256, releaseSha256.count != 64 || !releaseSha256.allSatisfy(\.isHexDigit) {
            throw ValidationError("--release-sha256 must be 64 hexadecimal digits (the .sha256 file `make release` writes), got \(releaseSha256)")
        }
    }

    /// The text of --acme-ca-bundle's file: the mesh's gateways get the certificates, not a path.
    func caBundlePEM() throws -> String? {
        guard let acmeCaBundle else { return nil }
        guard let data = FileManager.default.contents(atPath: acmeCaBundle) else {
            throw ValidationError("--acme-ca-bundle \(acmeCaBundle) can't be read; give a file of PEM certificates")
        }
        return String(decoding: data, as: UTF8.self)
    }

    func run() async throws {
        let client = node.client
        try ProjectCheck.require(project, client: client)
        let request = GatewayCreateRequest(
            project: project, backend: backend?.lowercased(), name: name, region: region, instanceType: instanceType, domains: domain,
            address: address, timeoutSeconds: timeout,
            environment: GatewayCreateRequest.backendEnvironment(ProcessInfo.processInfo.environment)
                .merging(releaseSha256.map { ["WARREN_RELEASE_SHA256": $0.lowercased()] } ?? [:]) { _, flag in flag },
            acmeEmail: acmeEmail, acmeDirectory: acmeDirectory, acmeCaBundle: try caBundlePEM())
        if !node.json { Output.line("Creating gateway, it may take some time...") }
        let display = ProgressDisplay()
        let creating = CreatingName()
        // Ctrl-C: ask the node to cancel (it removes what it made); the stream then ends with
        // `failed` and the steps of the cleanup. Before the name is known, closing is enough.
        Interrupt.install {
            guard let name = creating.name else { Foundation.exit(130) }
            creating.interrupted = true
            _ = try? client.progress("DELETE", "/v1/gateways/\(name.urlPathEscaped)", GatewayDeleteRequest()) { _ in }
        }
        let last = try reportingFailures {
            try client.progress("POST", "/v1/gateways", request) { event in
                if event.step == .accepted {
                    creating.name = event.gateway?.name
                    if let kind = event.gateway?.gateway.backend, !node.json {
                        let source = backend != nil ? "--backend" : "project \(project)'s backend, else the default"
                        Output.error("Using the \(kind) backend (\(source)).")
                    }
                }
                if event.step != .failed { display.show(event) }
            }
        }
        guard let last, last.step == .ready, let record = last.gateway else {
            display.finish(success: false)
            Output.error("error: \(last?.error ?? "the node ended the creation without a result; see `warren gateway list`")")
            throw ExitCode(creating.interrupted ? 130 : 1)
        }
        display.finish(success: true)
        if node.json { try Output.json(record); return }
        Output.line(Output.table(["name", "address"], [[record.name, record.gateway.address ?? "-"]]))
    }
}

/// The name of the gateway being made, once the node has said it; read by the Ctrl-C handler.
final class CreatingName: @unchecked Sendable {
    private let lock = NSLock()
    private var _name: String?
    private var _interrupted = false

    var name: String? {
        get { lock.withLock { _name } }
        set { lock.withLock { _name = newValue } }
    }

    var interrupted: Bool {
        get { lock.withLock { _interrupted } }
        set { lock.withLock { _interrupted = newValue } }
    }
}
