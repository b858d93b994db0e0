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
    /// The SHA-256 (lower-case hex) the download must have; any other download is refused.
    public var releaseSHA256: String
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
    /// Where the first boot records the release it installed (URL and SHA-256), so that this
    /// gateway, creating gateways in turn, gives them the same release by default.
    public static let releaseURLFile = "release.url"
    public static let releaseSHA256File = "release.sha256"
    /// Where the first boot writes the invite token (mode 0600) for `node start --join-file`, so
    /// the token never sits in the node's arguments, which anyone on the machine reads with `ps`.
    public static let joinTokenFile = "join-token"

    /// Whether the node joins through a seed address ("host:port", a mesh without admission) rather
    /// than with an invite token. A seed is no secret and stays a `--join` argument; a token's
    /// alphabet (base64url after its prefix) has no colon.
    public var joinsWithSeedAddress: Bool { joinToken.contains(":") }

    /// The release tarball as downloaded and checked, kept so this gateway serves it to the
    /// gateways made after it (`node start --serve-release`).
    public static let releaseTarballFile = "release.tar.gz"
    /// Where a gateway serves its release (inside the service ports every backend opens).
    public static let releasePort = 7421
    /// The Debian and Ubuntu packages of the C libraries the release binary links (`ldd warren`:
    /// the Swift runtime is linked in statically, these are not), and what the script itself
    /// needs to download and check the release. The same names on Debian 12 and Ubuntu 22.04.
    public static let runtimePackages = ["ca-certificates", "curl", "libcurl4", "libsodium23", "libsqlite3-0", "libssl3", "libxml2", "libstdc++6", "zlib1g"]

    public init(releaseURL: String, releaseSHA256: String?, joinToken: String, publicAddress: PublicAddress, meshPort: Int,
                name: String? = nil, domains: [String] = []) throws {
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
        self.releaseSHA256 = try Self.validSHA256(releaseSHA256)
        self.joinToken = joinToken
        self.name = name
        self.domains = domains
        self.publicAddress = publicAddress
        self.meshPort = meshPort
    }

    /// The script of the gateway `spec` describes.
    public init(releaseURL: String, releaseSHA256: String?, spec: GatewaySpec, publicAddress: PublicAddress) throws {
        try self.init(releaseURL: releaseURL, releaseSHA256: releaseSHA256, joinToken: spec.joinToken, publicAddress: publicAddress,
                      meshPort: spec.meshPort, name: spec.name, domains: spec.domains)
    }

    /// `value` in lower case when it is a SHA-256 in hex; else an error saying where to get one.
    static func validSHA256(_ value: String?) throws -> String {
        guard let value else {
            throw ProvisioningError.invalidConfiguration(
                "the SHA-256 of the Warren release is not known, and a gateway installs only a release it can check: pass --release-sha256 (the content of the .sha256 file `make release` writes beside the tarball) or set WARREN_RELEASE_SHA256")
        }
        let lower = value.lowercased()
        guard lower.count == 64, lower.allSatisfy({ $0.isHexDigit }) else {
            throw ProvisioningError.invalidConfiguration("the release SHA-256 must be 64 hexadecimal digits, got \(value.debugDescription): take it from the .sha256 file `make release` writes beside the tarball")
        }
        return lower
    }

    /// The command the systemd unit runs, `$PUBLIC_ADDRESS` being filled at boot. The test that
    /// plays cloud-init runs this (with the binary and address of the test machine).
    /// `joinFile`: where the token file is (`joinTokenFile` in the state directory on a gateway).
    public func startArguments(
        publicAddress: String, binary: String = FirstBootScript.binaryPath,
        joinFile: String = FirstBootScript.stateDirectory + "/" + FirstBootScript.joinTokenFile
    ) -> [String] {
        [binary, "node", "start", "--gateway", "--public-address", publicAddress]
            + (name.map { ["--name", $0] } ?? []) + domains.flatMap { ["--domain", $0] }
            + ["--serve-release", "0.0.0.0:\(Self.releasePort)"]
            + (joinsWithSeedAddress ? ["--join", joinToken] : ["--join-file", joinFile])
    }

    /// The whole script, a bash script cloud-init and GCP's startup agent both run as root. Its
    /// output goes to the console log too (what the clouds show of a VM that does not come up), so
    /// a refused download or a missing package says so there.
    public var text: String {
        let start = startArguments(publicAddress: "${PUBLIC_ADDRESS}").joined(separator: " ")
        return """
        #!/bin/bash
        # Warren gateway first boot, written by `warren gateway create`.
        set -euo pipefail
        if systemctl is-enabled --quiet \(Self.unitName) 2>/dev/null; then exit 0; fi
        if [ -w /dev/console ]; then exec > >(tee -a /dev/console) 2>&1; fi
        fail() { echo "warren first boot FAILED: $*" >&2; exit 1; }

        RELEASE_URL=\(Self.shellQuote(releaseURL))
        RELEASE_SHA256=\(Self.shellQuote(releaseSHA256))

        # The C libraries the binary links come from the distribution (Debian and Ubuntu only).
        . /etc/os-release 2>/dev/null || fail "no /etc/os-release: cannot tell the distribution; use a Debian 12 or Ubuntu 22.04 image"
        case " ${ID:-} ${ID_LIKE:-} " in
          *" debian "*|*" ubuntu "*) ;;
          *) fail "this image is ${PRETTY_NAME:-${ID:-unknown}}; the first boot installs Warren's libraries with apt-get and supports Debian and Ubuntu only: use a Debian 12 or Ubuntu 22.04 image" ;;
        esac
        export DEBIAN_FRONTEND=noninteractive
        for attempt in 1 2 3 4 5; do
          apt-get update -q && apt-get install -y -q --no-install-recommends \(Self.runtimePackages.joined(separator: " ")) && break
          [ "$attempt" = 5 ] && fail "apt-get could not install \(Self.runtimePackages.joined(separator: " "))"
          sleep 10
        done

        DOWNLOAD="$(mktemp -d)"
        for attempt in 1 2 3 4 5; do
          curl -fsSL --retry 5 -o "$DOWNLOAD/release" "$RELEASE_URL" && break
          [ "$attempt" = 5 ] && fail "could not download the release from $RELEASE_URL"
          sleep 5
        done
        ACTUAL_SHA256="$(sha256sum "$DOWNLOAD/release" | cut -d ' ' -f 1)"
        if [ "$ACTUAL_SHA256" != "$RELEASE_SHA256" ]; then
          fail "refusing to install the release from $RELEASE_URL: its SHA-256 is $ACTUAL_SHA256, not the expected $RELEASE_SHA256 (a corrupted or tampered download, or the wrong --release-sha256)"
        fi
        if tar -tzf "$DOWNLOAD/release" >/dev/null 2>&1; then
          tar -xzf "$DOWNLOAD/release" -C "$DOWNLOAD" warren || fail "the release tarball from $RELEASE_URL holds no file named warren"
          install -m 0755 "$DOWNLOAD/warren" \(Self.binaryPath)
        else
          install -m 0755 "$DOWNLOAD/release" \(Self.binaryPath)
        fi
        mkdir -p \(Self.stateDirectory)
        chmod 0700 \(Self.stateDirectory)
        # Kept, checked, for the gateways made after this one (served by hash on port \(Self.releasePort)).
        install -m 0600 "$DOWNLOAD/release" \(Self.stateDirectory)/\(Self.releaseTarballFile)
        rm -rf "$DOWNLOAD"
        \(Self.binaryPath) --help >/dev/null || fail "the installed \(Self.binaryPath) does not run; its libraries: $(ldd \(Self.binaryPath) 2>&1 | grep 'not found' | tr '\\n' ' ')"

        PUBLIC_ADDRESS="$(\(publicAddress.shellExpression))"
        mkdir -p \(Self.stateDirectory)
        chmod 0700 \(Self.stateDirectory)
        \(joinsWithSeedAddress ? "" : "(umask 077 && printf '%s\\n' \(Self.shellQuote(joinToken)) > \(Self.stateDirectory)/\(Self.joinTokenFile))")
        echo "$RELEASE_URL" > \(Self.stateDirectory)/\(Self.releaseURLFile)
        echo "$RELEASE_SHA256" > \(Self.stateDirectory)/\(Self.releaseSHA256File)

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

        if [ -d /run/systemd/system ]; then
          systemctl daemon-reload
          systemctl enable --now \(Self.unitName)
        else
          echo "warren first boot: installed; systemd is not running here, so \(Self.unitName) is written but not started"
        fi
        echo "warren first boot: done"

        """
    }

    static func shellQuote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
