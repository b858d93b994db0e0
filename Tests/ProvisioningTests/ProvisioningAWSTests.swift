import CloudFakes
import Curl
import Foundation
@testable import Provisioning
import Testing

@Suite("AWS backend against moto")
struct ProvisioningAWSTests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDTESTTESTTEST", secretAccessKey: "test-secret")

    static let sha256 = String(repeating: "ab", count: 32)

    static func backend(_ moto: MotoServer, endpoint: String? = nil) -> AWSBackend {
        var configuration = AWSBackend.Configuration(credentials: credentials, region: "us-east-1", endpoint: (endpoint ?? moto.endpoint) + "/",
                                                     releaseURL: "https://releases.example.com/warren-linux-x86_64.tar.gz")
        configuration.releaseSHA256 = sha256
        configuration.retry = Retrying(attempts: 5, initialDelay: .milliseconds(10), maxDelay: .milliseconds(50))
        // moto has no Canonical jammy image: the test registers its own, owned by moto's account.
        configuration.imageOwner = "self"
        configuration.pollInterval = .milliseconds(100)
        configuration.waitTimeout = .seconds(30)
        return AWSBackend(configuration: configuration)
    }

    /// Registers two jammy images; the backend must pick the newer one.
    static func registerImages(_ backend: AWSBackend) async throws -> String {
        var newest = ""
        for date in ["20240101", "20240601"] {
            let answer = try await backend.call("RegisterImage", [
                ("Name", "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-\(date)"),
                ("Architecture", "x86_64"), ("RootDeviceName", "/dev/sda1"), ("VirtualizationType", "hvm"),
            ], region: "us-east-1")
            newest = try #require(answer.value("imageId"))
        }
        return newest
    }

    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var events: [ProvisioningEvent] = []
        func append(_ event: ProvisioningEvent) { lock.withLock { events.append(event) } }
        var all: [ProvisioningEvent] { lock.withLock { events } }
    }

    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func createListDelete() async throws {
        let moto = try MotoServer()
        let backend = Self.backend(moto)
        let image = try await Self.registerImages(backend)
        let spec = GatewaySpec(name: "warren-gateway-fast-walrus", joinToken: "wrn1-invite-token", meshPort: 7946)
        let events = Events()

        let gateway = try await backend.create(spec) { events.append($0) }
        #expect(gateway.name == spec.name)
        #expect(gateway.backend == "aws")
        #expect(gateway.resources["image"] == image)
        let address = try #require(gateway.address)
        #expect(address.split(separator: ".").count == 4)
        let instanceID = try #require(gateway.resources["instance"])
        let groupID = try #require(gateway.resources["securityGroup"])
        #expect(events.all.contains(.created(kind: "security group", id: groupID)))
        #expect(events.all.contains(.booting(instance: instanceID)))
        #expect(events.all.last == .addressAssigned(address))

        // The security group, with the mesh port (TCP and UDP) and the service ports open.
        let groups = try await backend.call("DescribeSecurityGroups", [("GroupId.1", groupID)], region: "us-east-1")
        let group = try #require(groups.at("securityGroupInfo", "item"))
        #expect(group.value("groupName") == spec.name)
        let permissions = group.at("ipPermissions")?.all("item") ?? []
        let rules = Set(permissions.map { "\($0.value("ipProtocol") ?? "")/\($0.value("fromPort") ?? "")-\($0.value("toPort") ?? "")" })
        #expect(rules.isSuperset(of: ["tcp/7946-7946", "udp/7946-7946", "tcp/80-80", "tcp/443-443", "tcp/1024-65535"]))

        // The instance: t3.micro, the newest image, the first-boot script as user data.
        let described = try await backend.call("DescribeInstances", [("InstanceId.1", instanceID)], region: "us-east-1")
        let instance = try #require(described.descendants("instancesSet").first?.child("item"))
        #expect(instance.value("instanceType") == "t3.micro")
        #expect(instance.value("imageId") == image)
        let attribute = try await backend.call("DescribeInstanceAttribute", [("InstanceId", instanceID), ("Attribute", "userData")], region: "us-east-1")
        let userData = try #require(attribute.value("userData", "value"))
        let script = String(decoding: try #require(Data(base64Encoded: userData)), as: UTF8.self)
        let expected = try FirstBootScript(releaseURL: backend.configuration.releaseURL, releaseSHA256: Self.sha256, spec: spec, publicAddress: .awsMetadata)
        #expect(script == expected.text)
        #expect(script.contains("warren node start --gateway --public-address ${PUBLIC_ADDRESS} --name \(spec.name) --serve-release 0.0.0.0:7421 --join-file /var/lib/warren/join-token"))
        #expect(script.contains("printf '%s\\n' 'wrn1-invite-token' > /var/lib/warren/join-token"))

        // list() shows it, by name, with its address.
        let listed = try await backend.list()
        #expect(listed.contains { $0.name == spec.name && $0.address == address && $0.resources["instance"] == instanceID })

        // delete() leaves no instance and no group.
        try await backend.delete(gateway) { events.append($0) }
        #expect(events.all.contains(.deleted(kind: "instance", id: instanceID)))
        #expect(events.all.contains(.deleted(kind: "security group", id: groupID)))
        #expect(try await backend.list().contains { $0.name == spec.name } == false)
        let after = try await backend.call("DescribeInstances", [("InstanceId.1", instanceID)], region: "us-east-1")
        #expect(after.descendants("instanceState").allSatisfy { $0.value("name") == "terminated" })
        await #expect {
            _ = try await backend.call("DescribeSecurityGroups", [("GroupId.1", groupID)], region: "us-east-1")
        } throws: { error in
            guard case ProvisioningError.api(_, let code, _) = error else { return false }
            return code == "InvalidGroup.NotFound"
        }
    }

    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func failedCreateCleansUpAndExplains() async throws {
        let moto = try MotoServer()
        let backend = Self.backend(moto)
        _ = try await Self.registerImages(backend)
        // moto (with MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION) refuses an unknown instance type;
        // the group made before must be removed again.
        var spec = GatewaySpec(name: "warren-gateway-calm-otter", joinToken: "tok", meshPort: 7946)
        spec.instanceType = "x9.nonexistent"
        let events = Events()
        await #expect {
            _ = try await backend.create(spec) { events.append($0) }
        } throws: { error in
            guard case ProvisioningError.api(_, let code, let message) = error else { return false }
            return code != "NoImage" && message.contains("RunInstances")
        }
        let created = events.all.compactMap { event -> String? in
            if case .created(kind: "security group", let id) = event { return id }
            return nil
        }
        #expect(created.count == 1)
        #expect(events.all.contains(.deleted(kind: "security group", id: created.first ?? "")))
        let groups = try await backend.call("DescribeSecurityGroups", [("Filter.1.Name", "group-name"), ("Filter.1.Value.1", spec.name)], region: "us-east-1")
        #expect(groups.at("securityGroupInfo")?.all("item").isEmpty ?? true)
        #expect(try await backend.list().isEmpty)
    }

    /// moto is strongly consistent and never throttles; EC2 is neither. A proxy in front of moto
    /// answers every third call with `RequestLimitExceeded` (503) or `InternalError` (500), and the
    /// first call naming a group or instance just made with its `….NotFound`.
    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func createSucceedsThroughThrottlingAndNotFoundAfterCreate() async throws {
        let moto = try MotoServer()
        _ = try await Self.registerImages(Self.backend(moto))
        let faults = FaultInjection(every: 3, limit: 6, notFoundReads: 1)
        let proxy = EC2FaultProxy(moto: moto.endpoint, faults: faults)
        let fake = try await ProvisioningFakeCloud { proxy.respond($0) }
        defer { Task { await fake.shutdown() } }
        let backend = Self.backend(moto, endpoint: fake.url)
        let spec = GatewaySpec(name: "warren-gateway-slow-yak", joinToken: "t", meshPort: 7946)
        let gateway = try await backend.create(spec) { _ in }
        #expect(gateway.address != nil)
        #expect(Set(faults.faults) == [.throttle, .serverError])
        #expect(faults.notFoundCount >= 2, "the new group and instance were not found at first, and retried")
        // Every RunInstances attempt of the creation carries the same ClientToken.
        #expect(Set(fake.requests.filter { $0.form["Action"] == "RunInstances" }.compactMap { $0.form["ClientToken"] }).count == 1)
        let running = try moto.boto("""
            r = ec2.describe_instances(Filters=[{"Name": "tag:warren:gateway", "Values": ["\(spec.name)"]}, {"Name": "instance-state-name", "Values": ["pending", "running"]}])
            print(sum(len(x["Instances"]) for x in r["Reservations"]))
            """)
        #expect(running == "1", "one instance, however many attempts")
        try await backend.delete(gateway) { _ in }
        #expect(try await Self.backend(moto).list().isEmpty)
    }

    /// Another gateway's security group and instance carry the name: the creation fails on
    /// `InvalidGroup.Duplicate` and touches neither (no clean-up by name or tag).
    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func aDuplicateGroupNameLeavesTheOtherGatewayAlone() async throws {
        let moto = try MotoServer()
        let backend = Self.backend(moto)
        let image = try await Self.registerImages(backend)
        let name = "warren-gateway-twin-fox"
        let (groupID, instanceID) = try await Self.otherGateway(named: name, image: image, backend)
        await #expect {
            _ = try await backend.create(GatewaySpec(name: name, joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            guard case ProvisioningError.api(_, let code, _) = error else { return false }
            return code == "InvalidGroup.Duplicate"
        }
        try await Self.expectAlive(groupID: groupID, instanceID: instanceID, backend)
    }

    /// A creation fails half-way (RunInstances refuses the type) while another gateway's instance
    /// carries the same name tag: the group made here goes, the other instance stays.
    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func aCreateFailingHalfWayRemovesOnlyWhatItMade() async throws {
        let moto = try MotoServer()
        let backend = Self.backend(moto)
        let image = try await Self.registerImages(backend)
        let name = "warren-gateway-twin-elk"
        // The other gateway's group has another name (a name is unique); its instance has the tag.
        let (groupID, instanceID) = try await Self.otherGateway(named: name, groupName: "other-group", image: image, backend)
        var spec = GatewaySpec(name: name, joinToken: "t", meshPort: 7946)
        spec.instanceType = "x9.nonexistent"
        let events = Events()
        await #expect(throws: ProvisioningError.self) { _ = try await backend.create(spec) { events.append($0) } }
        let made = events.all.compactMap { event -> String? in
            if case .created(kind: "security group", let id) = event { return id }
            return nil
        }
        #expect(made.count == 1)
        #expect(events.all.contains(.deleted(kind: "security group", id: made.first ?? "")))
        #expect(!events.all.contains { if case .deleted(kind: "instance", _) = $0 { return true } else { return false } })
        try await Self.expectAlive(groupID: groupID, instanceID: instanceID, backend)
    }

    /// A security group (named `groupName`, else `name`) and a running instance tagged as the gateway `name`.
    static func otherGateway(named name: String, groupName: String? = nil, image: String, _ backend: AWSBackend) async throws -> (String, String) {
        let group = try await backend.call("CreateSecurityGroup", [("GroupName", groupName ?? name), ("GroupDescription", "another")], region: "us-east-1")
        let groupID = try #require(group.value("groupId"))
        let run = try await backend.call("RunInstances", [("ImageId", image), ("InstanceType", "t3.micro"), ("MinCount", "1"), ("MaxCount", "1"),
                                                          ("SecurityGroupId.1", groupID)]
                                         + AWSBackend.tags(resourceType: "instance", name: name, creation: "another-creation"), region: "us-east-1")
        return (groupID, try #require(run.value("instancesSet", "item", "instanceId")))
    }

    static func expectAlive(groupID: String, instanceID: String, _ backend: AWSBackend) async throws {
        let described = try await backend.describe(instanceIDs: [instanceID], region: "us-east-1")
        #expect(described.first.map { ["pending", "running"].contains($0.status) } == true, "the other instance is not terminated: \(described)")
        let groups = try await backend.call("DescribeSecurityGroups", [("GroupId.1", groupID)], region: "us-east-1")
        #expect(groups.at("securityGroupInfo", "item")?.value("groupId") == groupID, "the other group is not deleted")
    }

    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func noImageIsAnActionableError() async throws {
        let moto = try MotoServer()
        let backend = Self.backend(moto)
        await #expect {
            _ = try await backend.create(GatewaySpec(name: "warren-gateway-bold-owl", joinToken: "tok", meshPort: 7946)) { _ in }
        } throws: { error in
            "\(error)".contains("no image named ubuntu/images/hvm-ssd/ubuntu-jammy-22.04") && "\(error)".contains("--region")
        }
    }

    /// moto, with authentication on, checks each request's signature as AWS does: a real verifier
    /// for the SigV4 signer. An IAM user and key are made first (the only unauthenticated calls).
    @Test(.enabled(if: MotoServer.isInstalled, Comment(rawValue: MotoServer.skipReason)))
    func motoVerifiesTheSignatureAndBadCredentialsAreExplained() async throws {
        let moto = try MotoServer(environment: ["INITIAL_NO_AUTH_ACTION_COUNT": "3"])
        func iam(_ action: String, _ parameters: [(String, String)]) async throws -> XMLNode {
            let form = ([("Action", action), ("Version", "2010-05-08")] + parameters)
                .map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
            let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "iam")
            let request = try signer.sign(HTTPRequest(method: "POST", url: moto.endpoint + "/", headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded")], text: form))
            // The Content-Length curl sends is among the signed headers moto checks.
            #expect(request.headers.last?.value.contains("SignedHeaders=content-length;content-type;host;x-amz-date,") == true)
            let response = try HTTPClient().perform(request)
            #expect(response.status == 200, "\(action): \(response.text)")
            return try #require(XMLNode.parse(response.body))
        }
        _ = try await iam("CreateUser", [("UserName", "warren")])
        _ = try await iam("PutUserPolicy", [("UserName", "warren"), ("PolicyName", "ec2"),
                                            ("PolicyDocument", #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)])
        let key = try await iam("CreateAccessKey", [("UserName", "warren")])
        let accessKeyID = try #require(key.descendants("AccessKeyId").first?.value())
        let secret = try #require(key.descendants("SecretAccessKey").first?.value())

        var good = Self.backend(moto).configuration
        good.credentials = AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secret)
        let answer = try await AWSBackend(configuration: good).call("DescribeSecurityGroups", [], region: "us-east-1")
        #expect(answer.name == "DescribeSecurityGroupsResponse")

        var bad = good
        bad.credentials.secretAccessKey = "not-the-secret"
        await #expect {
            _ = try await AWSBackend(configuration: bad).create(GatewaySpec(name: "warren-gateway-a-b", joinToken: "t", meshPort: 7946)) { _ in }
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("AWS rejected the credentials (AuthFailure): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
                && text.contains("AWS said: AWS was not able to validate the provided access credentials")
        }
    }

    @Test func apiErrorsTellWhatToDo() {
        let auth = AWSBackend.apiError(action: "RunInstances", code: "AuthFailure", message: "AWS was not able to validate the provided access credentials", region: "eu-west-1", instanceType: "t3.micro")
        #expect("\(auth)".hasPrefix("AWS rejected the credentials (AuthFailure): check AWS_ACCESS_KEY_ID"))
        #expect("\(auth)".contains("AWS said: AWS was not able to validate"))
        let capacity = AWSBackend.apiError(action: "RunInstances", code: "InsufficientInstanceCapacity", message: "We currently do not have sufficient t3.micro capacity", region: "eu-west-1", instanceType: "t3.micro")
        #expect("\(capacity)".contains("no t3.micro capacity in eu-west-1"))
        #expect("\(capacity)".contains("--instance-type"))
        #expect("\(capacity)".contains("--region"))
        let other = AWSBackend.apiError(action: "RunInstances", code: "Weird", message: "m", region: "r", instanceType: "t")
        #expect("\(other)" == "AWS refused RunInstances (Weird). AWS said: m")
    }

    @Test func settingsComeFromSecretsOverEnvironment() throws {
        let settings = BackendSettings(["AWS_REGION": "eu-west-3", "AWS_SECRET_ACCESS_KEY": "s"],
                                       environment: ["AWS_ACCESS_KEY_ID": "AK", "AWS_REGION": "us-east-1", "WARREN_RELEASE_URL": "https://r.example/w"])
        let configuration = try AWSBackend.Configuration(settings: settings)
        #expect(configuration.region == "eu-west-3")
        #expect(configuration.credentials.accessKeyID == "AK")
        #expect(configuration.endpoint == nil)
        #expect {
            _ = try AWSBackend.Configuration(settings: BackendSettings([:], environment: [:]))
        } throws: { error in
            "\(error)".contains("AWS_ACCESS_KEY_ID")
        }
    }
}

/// A proxy in front of moto making it behave as EC2 does at times: throttled and failing calls
/// (`faults.nextFault()`: `RequestLimitExceeded`, HTTP 503, and `InternalError`, HTTP 500:
/// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html), and a group or
/// instance just made not found by the next call naming it (`InvalidGroup.NotFound`,
/// `InvalidInstanceID.NotFound`: https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
final class EC2FaultProxy: Sendable {
    let moto: String
    let faults: FaultInjection

    init(moto: String, faults: FaultInjection) {
        self.moto = moto
        self.faults = faults
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> ProvisioningFakeCloud.Response {
        ProvisioningFakeCloud.Response(status: status, body: """
            <?xml version="1.0" encoding="UTF-8"?>
            <Response><Errors><Error><Code>\(code)</Code><Message>\(message)</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>
            """, headers: [("Content-Type", "text/xml")])
    }

    func respond(_ request: ProvisioningFakeCloud.Request) -> ProvisioningFakeCloud.Response {
        let form = request.form
        switch faults.nextFault() {
        case .throttle?: return Self.error(503, "RequestLimitExceeded", "Request limit exceeded.")
        case .serverError?: return Self.error(500, "InternalError", "An internal error has occurred.")
        case nil: break
        }
        for (key, value) in form.sorted(by: { $0.key < $1.key }) where key != "Action" && faults.hidesRead(of: value) {
            return value.hasPrefix("sg-")
                ? Self.error(400, "InvalidGroup.NotFound", "The security group '\(value)' does not exist")
                : Self.error(400, "InvalidInstanceID.NotFound", "The instance ID '\(value)' does not exist")
        }
        let forwarded = HTTPRequest(method: request.method, url: moto + request.uri,
                                    headers: request.headers.filter { ["content-type", "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"].contains($0.key) }
                                        .map { HTTPHeader($0.key, $0.value) },
                                    body: request.body)
        guard let response = try? HTTPClient().perform(forwarded) else { return Self.error(502, "InternalError", "moto did not answer") }
        let text = response.text
        if response.isSuccess {
            for tag in [["CreateSecurityGroup": "groupId", "RunInstances": "instanceId"][form["Action"] ?? ""]].compactMap({ $0 }) {
                if let range = text.range(of: "<\(tag)>"), let end = text.range(of: "</\(tag)>", range: range.upperBound..<text.endIndex) {
                    faults.created(String(text[range.upperBound..<end.lowerBound]))
                }
            }
        }
        return ProvisioningFakeCloud.Response(status: response.status, body: text,
                                              headers: [("Content-Type", response.header("Content-Type") ?? "text/xml")])
    }
}
