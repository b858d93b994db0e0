import CloudFakes
import Curl
import Foundation
@testable import Provisioning
import Testing

@Suite("AWS backend against moto")
struct ProvisioningAWSTests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDTESTTESTTEST", secretAccessKey: "test-secret")

    static func backend(_ moto: MotoServer) -> AWSBackend {
        var configuration = AWSBackend.Configuration(credentials: credentials, region: "us-east-1", endpoint: moto.endpoint + "/",
                                                     releaseURL: "https://releases.example.com/warren-linux-x86_64.tar.gz")
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
        let expected = try FirstBootScript(releaseURL: backend.configuration.releaseURL, spec: spec, publicAddress: .awsMetadata)
        #expect(script == expected.text)
        #expect(script.contains("warren node start --gateway --public-address ${PUBLIC_ADDRESS} --name \(spec.name) --join wrn1-invite-token"))

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
