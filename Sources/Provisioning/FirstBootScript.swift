import Foundation

/// The first-boot script of a gateway VM (cloud-init user data on AWS and Azure, `startup-script`
/// on GCP): installs Warren from a release URL and runs it as a systemd service that joins the mesh.
public struct FirstBootScript: Sendable {
    /// How the VM learns its own public address at boot.
    public enum PublicAddress: Sendable, Equatable {
        /// Known before boot (a reserved address).
        case literal(String)
        /// Asked of the cloud's metadata service at boot.
        case awsMetadata
        case azureMetadata
        case gcpMetadata

        /// A shell expression that prints the address.
        var shellExpression: String {
            switch self {
            case .literal(let address):
                return "echo \(FirstBootScript.shellQuote(address))"
            case .awsMetadata:
                // IMDSv2: a session token first, then the address.
                return #"curl -fsS -H "X-aws-ec2-metadata-token: $(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)" http://169.254.169.254/latest/meta-data/public-ipv4"#
            case .azureMetadata:
                return #"curl -fsS -H Metadata:true 'http://169.254.169.254/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text'"#
            case .gcpMetadata:
                return #"curl -fsS -H 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip"#
            }
        }
    }

    /// Where the Warren binary (or a .tar.gz holding `warren`) is downloaded from.
    public var releaseURL: String
    public var joinToken: String
    /// The gateway's name and domains, which its node gossips in its gateway entry.
    public var name: String?
    public var domains: [String]
    public var publicAddress: PublicAddress
    /// The mesh port the node listens on (its default; the firewall opens it).
    public var meshPort: Int
    /// Where the binary is installed.
    public static let binaryPath = "/usr/local/bin/warren"
    public static let unitName = "warren-gateway.service"
    public static let stateDirectory = "/var/lib/warren"

    public init(releaseURL: String, joinToken: String, publicAddress: PublicAddress, meshPort: Int, name: String? = nil, domains: [String] = []) throws {
        if let name { try GatewayName.validate(name) }
        for domain in domains { try GatewayDomain.validate(domain) }
        for (what, value) in [("release URL", releaseURL), ("join token", joinToken)] {
            // Both end up in a shell script and a systemd unit: no quotes, spaces or line breaks.
            guard !value.isEmpty, value.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 32 && !"'\"\\`$;%".unicodeScalars.contains($0) }) else {
                throw ProvisioningError.invalidConfiguration("the \(what) for the first-boot script is empty or holds characters a shell would interpret: \(value.debugDescription)")
            }
        }
        guard releaseURL.hasPrefix("https://") || releaseURL.hasPrefix("http://") else {
            throw ProvisioningError.invalidConfiguration("the release URL must be http(s), got \(releaseURL); set WARREN_RELEASE_URL")
        }
        self.releaseURL = releaseURL
        self.joinToken = joinToken
        self.name = name
        self.domains = domains
        self.publicAddress = publicAddress
        self.meshPort = meshPort
    }

    /// The script of the gateway `spec` describes.
    public init(releaseURL: String, spec: GatewaySpec, publicAddress: PublicAddress) throws {
        try self.init(releaseURL: releaseURL, joinToken: spec.joinToken, publicAddress: publicAddress, meshPort: spec.meshPort,
                      name: spec.name, domains: spec.domains)
    }

    /// The command the systemd unit runs, `$PUBLIC_ADDRESS` being filled at boot. The test that
    /// plays cloud-init runs this (with the binary and address of the test machine).
    public func startArguments(publicAddress: String, binary: String = FirstBootScript.binaryPath) -> [String] {
        [binary, "node", "start", "--gateway", "--public-address", publicAddress]
            + (name.map { ["--name", $0] } ?? []) + domains.flatMap { ["--domain", $0] } + ["--join", joinToken]
    }

    /// The whole script, a bash script cloud-init and GCP's startup agent both run as root.
    public var text: String {
        let start = startArguments(publicAddress: "${PUBLIC_ADDRESS}").joined(separator: " ")
        return """
        #!/bin/bash
        # Warren gateway first boot, written by `warren gateway create`.
        set -euo pipefail
        if systemctl is-enabled --quiet \(Self.unitName) 2>/dev/null; then exit 0; fi

        RELEASE_URL=\(Self.shellQuote(releaseURL))
        for attempt in 1 2 3 4 5; do
          curl -fsSL --retry 5 -o /tmp/warren-release "$RELEASE_URL" && break
          sleep 5
        done
        if tar -tzf /tmp/warren-release >/dev/null 2>&1; then
          tar -xzf /tmp/warren-release -C /tmp warren
          install -m 0755 /tmp/warren \(Self.binaryPath)
        else
          install -m 0755 /tmp/warren-release \(Self.binaryPath)
        fi

        PUBLIC_ADDRESS="$(\(publicAddress.shellExpression))"
        mkdir -p \(Self.stateDirectory)
        chmod 0700 \(Self.stateDirectory)

        cat > /etc/systemd/system/\(Self.unitName) <<UNIT
        [Unit]
        Description=Warren gateway node
        After=network-online.target
        Wants=network-online.target

        [Service]
        Environment=WARREN_HOME=\(Self.stateDirectory)
        ExecStart=\(start)
        Restart=on-failure
        RestartSec=5
        # A descriptor per proxied connection: the default soft limit (1,024) is far too low.
        LimitNOFILE=65536

        [Install]
        WantedBy=multi-user.target
        UNIT

        systemctl daemon-reload
        systemctl enable --now \(Self.unitName)

        """
    }

    static func shellQuote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
