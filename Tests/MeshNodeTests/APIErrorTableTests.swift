import Foundation
@testable import MeshNode
import Provisioning
import Testing
import Trust
import TrustTestSupport

/// The one table from the domain's errors to the local API's statuses: each error keeps the
/// status and the words it was answered with when the domain threw HTTP errors itself.
@Suite struct APIErrorTableTests {
    static func answer(_ error: any Error) -> (status: Int, message: String)? {
        APIErrorTable.known(error).map { ($0.status, $0.message) }
    }

    @Test func runRefusalsKeepTheirStatusesAndWords() {
        let cases: [(RunRefusal, Int, String)] = [
            (.secretsUnavailable(reason: "node X is not a member of project p"), 403, "node X is not a member of project p"),
            (.noBinding(reason: "no gateway named gw-1"), 400, "no gateway named gw-1"),
            (.invalidName("a b"), 400, "run name \(PlainName.describe("a b")) is not a plain name: \(PlainName.rule)"),
            (.appPortInUse(port: 8000, run: "web", configurationPath: "service.yml", external: 80), 409,
             "app port 8000 is used by run \"web\" on this node; change the app port in service.yml "
                + "(`port: \"80:OTHER\"` and the port the app listens on) or stop web first"),
            (.nameInUse("web"), 409, "a run named \"web\" is already active on this node; stop it (`warren stop web`) or change `name:`"),
            (.bindingHeld("port 80 on gateway 127.0.0.2 is held by run \"web\""), 409, "port 80 on gateway 127.0.0.2 is held by run \"web\""),
            (.unknownRun("web"), 404, "no run \"web\" on this node (see `warren ps -a`)"),
            (.stillActive(name: "web", state: "running"), 409, "run web is running; stop it first with `warren stop web`"),
            (.startFailed(name: "web", reason: "no /bin/sh"), 500, "the commands of web could not be started: no /bin/sh"),
            (.storeFailed(what: "the run's record could not be saved", reason: "disk full"), 500, "the run's record could not be saved: disk full"),
        ]
        for (error, status, message) in cases {
            let got = Self.answer(error)
            #expect(got?.status == status, "\(error)")
            #expect(got?.message == message)
        }
        let invalid = APIErrorTable.known(RunRefusal.invalidConfiguration(path: "service.yml", issues: ["service.yml:2:7: port 99999 is outside 1–65535"]))
        #expect(invalid?.status == 400)
        #expect(invalid?.message == "service.yml is not a valid service configuration")
        #expect(invalid?.issues == ["service.yml:2:7: port 99999 is outside 1–65535"])
    }

    @Test func admissionAndProjectRefusalsKeepTheirStatuses() {
        let node = TestNode().id
        let cases: [(any Error, Int)] = [
            (MeshAdminRefusal.noAdmission, 409),
            (MeshAdminRefusal.rosterNotReceived, 409),
            (MeshAdminRefusal.unknownRole("king"), 400),
            (MeshAdminRefusal.notANodeID("xyz"), 400),
            (MeshAdminRefusal.admission(.notAnAdmin(node)), 403),
            (MeshAdminRefusal.admission(.invalidTTL(0)), 400),
            (MeshAdminRefusal.admission(.notAMember(node)), 409),
            (MeshAdminRefusal.project(.noSuchProject("p")), 404),
            (MeshAdminRefusal.project(.notAMember(node, project: "p")), 403),
            (MeshAdminRefusal.project(.lastMember(node, project: "p")), 409),
            (MeshAdminRefusal.notWritten(what: "the removal", reason: "read-only"), 500),
            (MeshAdminRefusal.neitherMemberNorAdmin(node, project: "p"), 403),
            (MeshAdminRefusal.refusedByMember(status: 403, reason: "no"), 403),
            (MeshAdminRefusal.refusedByMember(status: nil, reason: "no"), 409),
            (MeshAdminRefusal.noRotator(project: "p", node: node, failures: []), 503),
            (ProjectError.invalidProjectName("P P"), 400),
            (ProjectError.notAMeshMember(node), 403),
            (ProjectError.projectExists("p"), 409),
            (AdmissionError.notAnAdmin(node), 403),
            (GatewayRefusal.invalidRequest("unknown gateway backend \"x\""), 400),
            (GatewayRefusal.notDeletable("gateway g was not created by this node"), 409),
            (ProvisioningError.notFound("gw-1"), 404),
        ]
        for (error, status) in cases {
            #expect(Self.answer(error)?.status == status, "\(error)")
        }
        #expect(Self.answer(MeshAdminRefusal.notWritten(what: "the removal", reason: "read-only"))?.message == "could not write the removal: read-only")
        #expect(Self.answer(MeshAdminRefusal.project(.noSuchProject("p")))?.message == ProjectError.noSuchProject("p").description)
        #expect(Self.answer(ProvisioningError.notFound("gw-1"))?.message == "no gateway named gw-1 (`warren gateway list` shows the mesh's gateways)")
        // Not the table's: a cloud's refusal during a creation is described in its progress stream.
        #expect(Self.answer(ProvisioningError.timedOut("late")) == nil)
    }

    struct Unknown: Error {}

    /// The router answers a handler's domain error through the table, and anything else as a 500
    /// that names the request.
    @Test func theRouterAnswersThroughTheTable() async throws {
        var router = APIRouter()
        router.get("/v1/runs/:id") { req in throw RunRefusal.unknownRun(try req.parameter("id")) }
        router.get("/v1/boom") { _ in throw Unknown() }
        let missing = await router.respond(to: APIRequest(method: "GET", path: "/v1/runs/web"))
        #expect(missing.status == 404)
        guard case .bytes(let body) = missing.body else { Issue.record("a streamed error"); return }
        let decoded = try APIJSON.makeDecoder().decode(APIErrorBody.self, from: body)
        #expect(decoded.error == "no run \"web\" on this node (see `warren ps -a`)")
        let boom = await router.respond(to: APIRequest(method: "GET", path: "/v1/boom"))
        #expect(boom.status == 500)
    }
}
