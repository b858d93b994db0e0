public import Curl
import Foundation

/// Gateways on AWS EC2, through the EC2 Query API signed with SigV4: a security group, the newest
/// Ubuntu 22.04 image, a `t3.micro` instance with the first-boot script as user data.
public struct AWSBackend: GatewayBackend {
    public struct Configuration: Sendable {
        public var credentials: AWSCredentials
        public var region: String
        /// Overrides `https://ec2.REGION.amazonaws.com/` (moto, LocalStack, a VPC endpoint).
        public var endpoint: String?
        /// Where the first-boot script downloads Warren from.
        public var releaseURL: String
        /// The SHA-256 the first boot checks the download against (WARREN_RELEASE_SHA256,
        /// `gateway create --release-sha256`); a creation without one is refused.
        public var releaseSHA256: String?
        public var instanceType = "t3.micro"
        /// Canonical's account, and its Ubuntu 22.04 (jammy) server images.
        public var imageOwner = "099720109477"
        public var imageNamePattern = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"
        public var pollInterval: Duration = .seconds(3)
        /// How calls refused for a passing reason (throttling, a 5xx, eventual consistency) are retried.
        var retry = Retrying()
        /// How long to wait for an instance's public address, or for its termination.
        public var waitTimeout: Duration = .seconds(300)

        public init(credentials: AWSCredentials, region: String, endpoint: String? = nil, releaseURL: String) {
            self.credentials = credentials
            self.region = region
            self.endpoint = endpoint
            self.releaseURL = releaseURL
        }

        /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`
        /// (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_EC2` (or `AWS_ENDPOINT_URL`), `AWS_IMAGE_OWNER` and `WARREN_RELEASE_URL`.
        public init(settings: BackendSettings) throws {
            try settings.requireAll([
                (["AWS_ACCESS_KEY_ID"], "the AWS access key"), (["AWS_SECRET_ACCESS_KEY"], "the AWS secret key"),
                (["AWS_REGION", "AWS_DEFAULT_REGION"], "the AWS region"),
                (["WARREN_RELEASE_URL"], "the URL of the Warren release gateways install"),
            ], backend: "aws")
            let credentials = AWSCredentials(
                accessKeyID: try settings.required("AWS_ACCESS_KEY_ID", purpose: "the AWS access key"),
                secretAccessKey: try settings.required("AWS_SECRET_ACCESS_KEY", purpose: "the AWS secret key"),
                sessionToken: settings["AWS_SESSION_TOKEN"]
            )
            self.init(
                credentials: credentials,
                region: try settings.required("AWS_REGION", "AWS_DEFAULT_REGION", purpose: "the AWS region"),
                endpoint: settings["AWS_ENDPOINT_URL_EC2"] ?? settings["AWS_ENDPOINT_URL"],
                releaseURL: try settings.required("WARREN_RELEASE_URL", purpose: "the URL of the Warren release gateways install")
            )
            // Canonical publishes under other accounts in some partitions (aws-cn, GovCloud); "self" for your own images.
            if let owner = settings["AWS_IMAGE_OWNER"] { imageOwner = owner }
            releaseSHA256 = settings["WARREN_RELEASE_SHA256"]
        }
    }

    public static let apiVersion = "2016-11-15"
    /// The tag every resource made here carries, valued with the gateway's name.
    public static let tagKey = "warren:gateway"
    /// The tag valued with the token of the creation that made the resource.
    public static let creationTagKey = "warren:creation"

    public let configuration: Configuration
    let http: HTTPClient
    public var kind: String { "aws" }

    public init(configuration: Configuration, http: HTTPClient = HTTPClient()) {
        self.configuration = configuration
        self.http = http
    }

    // MARK: - GatewayBackend

    public func create(_ spec: GatewaySpec, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws -> ProvisionedGateway {
        try GatewayName.validate(spec.name)
        let region = spec.region ?? configuration.region
        let instanceType = spec.instanceType ?? configuration.instanceType
        let script = try FirstBootScript(releaseURL: configuration.releaseURL, releaseSHA256: configuration.releaseSHA256, spec: spec, publicAddress: .awsMetadata)
        let image = try await newestImage(region: region)
        // One token per creation: RunInstances' ClientToken (a retried launch starts no second
        // instance: https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html), and
        // a tag on the security group, by which a retried CreateSecurityGroup knows its own group.
        let creation = UUID().uuidString.lowercased()

        let pending = ProvisionedGateway(name: spec.name, backend: kind, region: region, address: nil, status: "pending", resources: [:])
        return try await creating(pending, progress: progress, cleanUp: { made in
            _ = try await self.removeRecorded(made.resources, region: region, progress: progress, justCreated: true)
        }) { made in
            let groupID = try await createSecurityGroup(spec, creation: creation, region: region)
            made.resources["securityGroup"] = groupID
            progress(.created(kind: "security group", id: groupID))

            do {
                _ = try await call("AuthorizeSecurityGroupIngress", [("GroupId", groupID)] + Self.ingress(spec), region: region, justCreated: true)
            } catch ProvisioningError.api(_, let code, _) where code == "InvalidPermission.Duplicate" {
                // A retried call whose first attempt went through: the group is new, the rules are these.
            }

            let run = try await call("RunInstances", [
                ("ImageId", image),
                ("InstanceType", instanceType),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("ClientToken", creation),
                ("SecurityGroupId.1", groupID),
                ("UserData", Data(script.text.utf8).base64EncodedString()),
            ] + Self.tags(resourceType: "instance", name: spec.name, creation: creation), region: region, instanceType: instanceType, justCreated: true)
            guard let instanceID = run.value("instancesSet", "item", "instanceId") else { throw unexpected("RunInstances answered no instanceId") }
            made.resources["instance"] = instanceID
            progress(.created(kind: "instance", id: instanceID))
            progress(.booting(instance: instanceID))

            let address = try await waitForAddress(instanceID, region: region)
            made.address = address
            made.status = "running"
            made.resources["image"] = image
            progress(.addressAssigned(address))
        }
    }

    /// A new security group named after the gateway; its ID. A name taken already fails with
    /// `InvalidGroup.Duplicate` (the group is someone else's, and left alone), unless the group of
    /// that name carries this creation's token: then an earlier attempt of this very call made it.
    func createSecurityGroup(_ spec: GatewaySpec, creation: String, region: String) async throws -> String {
        do {
            let group = try await call("CreateSecurityGroup", [
                ("GroupName", spec.name),
                ("GroupDescription", "Warren gateway \(spec.name)"),
            ] + Self.tags(resourceType: "security-group", name: spec.name, creation: creation), region: region)
            guard let groupID = group.value("groupId") else { throw unexpected("CreateSecurityGroup answered no groupId") }
            return groupID
        } catch let error as ProvisioningError {
            guard case .api(_, "InvalidGroup.Duplicate", _) = error else { throw error }
            let found = try await call("DescribeSecurityGroups", [
                ("Filter.1.Name", "group-name"), ("Filter.1.Value.1", spec.name),
                ("Filter.2.Name", "tag:\(Self.creationTagKey)"), ("Filter.2.Value.1", creation),
            ], region: region)
            guard let groupID = found.at("securityGroupInfo", "item")?.value("groupId") else { throw error }
            return groupID
        }
    }

    public func delete(_ gateway: ProvisionedGateway, progress: @escaping @Sendable (ProvisioningEvent) -> Void) async throws {
        var resources = gateway.resources
        // A gateway deleted by name (its record may predate an ID): what its tag finds completes it.
        if resources["instance"] == nil || resources["securityGroup"] == nil, let found = try await list().first(where: { $0.name == gateway.name }) {
            resources.merge(found.resources) { mine, _ in mine }
        }
        guard try await removeRecorded(resources, region: gateway.region, progress: progress, justCreated: false) else {
            throw ProvisioningError.notFound(gateway.name)
        }
    }

    /// Terminates the instance and deletes the security group `resources` name by ID, and nothing
    /// else; whether there was either. `justCreated`: they were made moments ago, so "not found"
    /// may only mean "not visible yet" (EC2's eventual consistency) and is retried.
    func removeRecorded(_ resources: [String: String], region: String, progress: @escaping @Sendable (ProvisioningEvent) -> Void,
                        justCreated: Bool) async throws -> Bool {
        if let instanceID = resources["instance"] {
            _ = try await call("TerminateInstances", [("InstanceId.1", instanceID)], region: region, justCreated: justCreated)
            try await waitUntil("instance \(instanceID) to terminate") {
                let described = try await self.describe(instanceIDs: [instanceID], region: region, justCreated: justCreated)
                return described.allSatisfy { $0.status == "terminated" }
            }
            progress(.deleted(kind: "instance", id: instanceID))
        }
        if let groupID = resources["securityGroup"] {
            // The group stays "in use" for a while after the instance is gone.
            try await waitUntil("security group \(groupID) to be deletable") {
                do {
                    _ = try await self.call("DeleteSecurityGroup", [("GroupId", groupID)], region: region, justCreated: justCreated)
                    return true
                } catch ProvisioningError.api(_, let code, _) where code == "DependencyViolation" {
                    return false
                } catch ProvisioningError.api(_, let code, _) where code == "InvalidGroup.NotFound" {
                    return true
                }
            }
            progress(.deleted(kind: "security group", id: groupID))
        }
        return resources["instance"] != nil || resources["securityGroup"] != nil
    }

    public func list() async throws -> [ProvisionedGateway] {
        try await describe(instanceIDs: [], region: configuration.region).filter { $0.status != "terminated" && $0.status != "shutting-down" }
    }

    // MARK: - Steps

    /// The newest image matching the configured owner and name pattern.
    func newestImage(region: String) async throws -> String {
        let answer = try await call("DescribeImages", [
            ("Owner.1", configuration.imageOwner),
            ("Filter.1.Name", "name"), ("Filter.1.Value.1", configuration.imageNamePattern),
            ("Filter.2.Name", "state"), ("Filter.2.Value.1", "available"),
        ], region: region)
        let images = answer.at("imagesSet")?.all("item") ?? []
        // Newest by creation date; Canonical's names end in the build date, which breaks ties.
        // (The name pattern already says amd64.)
        let newest = images.max { a, b in
            (a.value("creationDate") ?? "", a.value("name") ?? "") < (b.value("creationDate") ?? "", b.value("name") ?? "")
        }
        guard let id = newest?.value("imageId") else {
            throw ProvisioningError.api(backend: kind, code: "NoImage",
                message: "no image named \(configuration.imageNamePattern) from owner \(configuration.imageOwner) in \(region): choose another region with --region")
        }
        return id
    }

    static func ingress(_ spec: GatewaySpec) -> [(String, String)] {
        var rules: [(proto: String, range: ClosedRange<Int>)] = [("tcp", spec.meshPort...spec.meshPort), ("udp", spec.meshPort...spec.meshPort)]
        rules += spec.servicePorts.map { ("tcp", $0) }
        return rules.enumerated().flatMap { index, rule -> [(String, String)] in
            let p = "IpPermissions.\(index + 1)."
            return [
                (p + "IpProtocol", rule.proto),
                (p + "FromPort", String(rule.range.lowerBound)),
                (p + "ToPort", String(rule.range.upperBound)),
                (p + "IpRanges.1.CidrIp", "0.0.0.0/0"),
            ]
        }
    }

    static func tags(resourceType: String, name: String, creation: String) -> [(String, String)] {
        [
            ("TagSpecification.1.ResourceType", resourceType),
            ("TagSpecification.1.Tag.1.Key", "Name"), ("TagSpecification.1.Tag.1.Value", name),
            ("TagSpecification.1.Tag.2.Key", tagKey), ("TagSpecification.1.Tag.2.Value", name),
            ("TagSpecification.1.Tag.3.Key", creationTagKey), ("TagSpecification.1.Tag.3.Value", creation),
        ]
    }

    func waitForAddress(_ instanceID: String, region: String) async throws -> String {
        try await waitFor("instance \(instanceID) to get a public address") {
            let instance: ProvisionedGateway?
            do {
                instance = try await self.describe(instanceIDs: [instanceID], region: region, justCreated: true).first
            } catch ProvisioningError.api(_, let code, _) where code == "InvalidInstanceID.NotFound" {
                return nil  // not visible yet, even after the call's own retries: poll on
            }
            if let status = instance?.status, ["terminated", "shutting-down", "stopped"].contains(status) {
                throw ProvisioningError.api(backend: self.kind, code: "InstanceStopped",
                    message: "instance \(instanceID) stopped while booting (state \(status)); see its console output in the EC2 console")
            }
            return instance?.address
        }
    }

    /// Instances tagged as gateways (all of them when `instanceIDs` is empty).
    func describe(instanceIDs: [String], region: String, justCreated: Bool = false) async throws -> [ProvisionedGateway] {
        var parameters: [(String, String)] = instanceIDs.enumerated().map { ("InstanceId.\($0.offset + 1)", $0.element) }
        if instanceIDs.isEmpty { parameters += [("Filter.1.Name", "tag-key"), ("Filter.1.Value.1", Self.tagKey)] }
        let answer = try await call("DescribeInstances", parameters, region: region, justCreated: justCreated)
        return answer.descendants("instancesSet").flatMap { $0.all("item") }.compactMap { item -> ProvisionedGateway? in
            guard let id = item.value("instanceId") else { return nil }
            let tags = Dictionary((item.at("tagSet")?.all("item") ?? []).compactMap { tag in
                tag.value("key").map { ($0, tag.value("value") ?? "") }
            }, uniquingKeysWith: { first, _ in first })
            var resources = ["instance": id]
            resources["securityGroup"] = item.at("groupSet", "item")?.value("groupId")
            resources["image"] = item.value("imageId")
            return ProvisionedGateway(name: tags[Self.tagKey] ?? tags["Name"] ?? id, backend: kind, region: region,
                                      address: item.value("ipAddress"), status: item.value("instanceState", "name") ?? "unknown", resources: resources)
        }
    }

    // MARK: - The Query API

    func endpoint(region: String) -> String {
        configuration.endpoint ?? "https://ec2.\(region).amazonaws.com/"
    }

    /// Error codes of a refusal for a passing reason, retried with backoff: throttling
    /// (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, "RequestLimitExceeded"),
    /// and server errors (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html, server error codes).
    static let passingCodes: Set<String> = ["RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled",
                                            "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"]
    /// A resource just made and not visible yet to the next call: EC2 is eventually consistent
    /// (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html: "this does not
    /// mean the instance does not exist"), retried with backoff when the resource is new.
    static let notYetVisibleCodes: Set<String> = ["InvalidInstanceID.NotFound", "InvalidGroup.NotFound"]

    /// One signed Query API call; the parsed XML answer, or an error a person can act on. Throttling,
    /// server errors and transport failures are retried (`Configuration.retry`); with `justCreated`,
    /// so is a resource not found.
    func call(_ action: String, _ parameters: [(String, String)], region: String, instanceType: String? = nil,
              justCreated: Bool = false) async throws -> XMLNode {
        try await configuration.retry.run { _ -> Retrying.Attempt<Result<XMLNode, ProvisioningError>> in
            do {
                return .done(.success(try await callOnce(action, parameters, region: region, instanceType: instanceType)))
            } catch let error as ProvisioningError {
                switch error {
                case .transport:
                    return .again(.failure(error), retryAfter: nil)
                case .api(_, let code, _) where Self.passingCodes.contains(code) || (justCreated && Self.notYetVisibleCodes.contains(code))
                                              || code.hasPrefix("HTTP5"):
                    return .again(.failure(error), retryAfter: nil)
                default:
                    return .done(.failure(error))
                }
            }
        }.get()
    }

    func callOnce(_ action: String, _ parameters: [(String, String)], region: String, instanceType: String?) async throws -> XMLNode {
        let form = ([("Action", action), ("Version", Self.apiVersion)] + parameters)
            .map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }
            .joined(separator: "&")
        let request = HTTPRequest(method: "POST", url: endpoint(region: region),
                                  headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], text: form)
        let signer = SigV4Signer(credentials: configuration.credentials, region: region, service: "ec2")
        let response: HTTPResponse
        do {
            response = try await http.send(try signer.sign(request))
        } catch let error as CurlError {
            throw ProvisioningError.transport(backend: "AWS EC2 at \(endpoint(region: region))", message: error.description)
        }
        guard let xml = XMLNode.parse(response.body) else {
            if response.status >= 500 {
                throw ProvisioningError.api(backend: kind, code: "HTTP\(response.status)", message: "AWS answered \(action) with HTTP \(response.status): \(response.text.prefix(200))")
            }
            throw unexpected("\(action) answered HTTP \(response.status) with a body that is not XML: \(response.text.prefix(200))")
        }
        guard response.isSuccess else {
            let error = xml.descendants("Error").first
            let code = error?.value("Code") ?? "HTTP\(response.status)"
            let message = error?.value("Message") ?? response.text
            throw Self.apiError(action: action, code: code, message: message, region: region, instanceType: instanceType ?? configuration.instanceType)
        }
        return xml
    }

    /// AWS's error codes turned into what to do about them.
    static func apiError(action: String, code: String, message: String, region: String, instanceType: String) -> ProvisioningError {
        let advice: String
        switch code {
        case "AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException", "IncompleteSignature":
            advice = "AWS rejected the credentials (\(code)): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), and that this machine's clock is right"
        case "RequestExpired":
            advice = "AWS says the request is too old (\(code)): this machine's clock is off; fix it (e.g. enable NTP) and retry"
        case "UnauthorizedOperation":
            advice = "the AWS credentials may not call \(action) (\(code)): grant the user ec2:\(action) in IAM"
        case "OptInRequired":
            advice = "the AWS account is not enabled in \(region) (\(code)): enable the region in the AWS console or use --region"
        case "InsufficientInstanceCapacity", "Unsupported":
            advice = "AWS has no \(instanceType) capacity in \(region) right now (\(code)): try another instance type with --instance-type or another region with --region"
        case "InstanceLimitExceeded", "VcpuLimitExceeded", "ResourceLimitExceeded":
            advice = "the AWS account reached its instance quota in \(region) (\(code)): delete unused instances or request a quota increase"
        case "InvalidGroup.Duplicate":
            advice = "a security group of that name already exists in \(region) (\(code)): delete the old gateway with `warren gateway delete` or choose another --name"
        default:
            advice = "AWS refused \(action) (\(code))"
        }
        return .api(backend: "aws", code: code, message: "\(advice). AWS said: \(message)")
    }

    func unexpected(_ message: String) -> ProvisioningError {
        .unexpectedResponse(backend: "AWS EC2", message: message)
    }

    /// Polls `condition` every `pollInterval` until it holds, or fails after `waitTimeout`.
    func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        _ = try await waitFor(what) { try await condition() ? true : nil }
    }

    /// Polls `poll` every `pollInterval` until it answers a value, or fails after `waitTimeout`.
    func waitFor<T>(_ what: String, _ poll: () async throws -> T?) async throws -> T {
        try await Polling(interval: configuration.pollInterval, timeout: configuration.waitTimeout).waitFor(what, poll)
    }
}
