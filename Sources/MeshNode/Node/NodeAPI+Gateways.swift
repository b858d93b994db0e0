import Foundation
import Provisioning

/// The gateway provisioning routes (see GatewayProvisioningTypes.swift): creation and deletion
/// answer with their progress as NDJSON, one `GatewayProgress` a line, as it happens.
extension NodeAPI {
    func addGatewayProvisioningRoutes(to r: inout APIRouter) {
        let provisioner = self.provisioner

        r.get("/v1/gateways/provisioned") { _ in try .json(await provisioner.records()) }

        r.post("/v1/gateways") { req in
            let body = try req.decode(GatewayCreateRequest.self)
            let creation: GatewayProvisioner.Creation
            do {
                creation = try await provisioner.prepare(body)
            } catch {
                throw GatewayRefusal.invalidRequest(GatewayProvisioner.describe(error))
            }
            return Self.progressStream { progress in
                _ = try await provisioner.create(creation, progress: progress)
            }
        }

        r.delete("/v1/gateways/:name") { req in
            let name = try req.parameter("name")
            let body = req.body.isEmpty ? GatewayDeleteRequest() : try req.decode(GatewayDeleteRequest.self)
            // Unknown names and gateways made elsewhere are refused before the stream starts.
            try await provisioner.checkDeletable(name)
            let address = await provisioner.records().first { $0.name == name }?.gateway.address
            let runs = self.runs
            return Self.progressStream { progress in
                try await provisioner.delete(name: name, environment: body.environment, progress: progress)
                // This node's runs bound to it say so at once; other nodes learn it from gossip.
                if let address { await runs.gatewayDeleted(name: name, address: address) }
            }
        }
    }

    /// Runs `operation`, streaming its progress lines; a failure becomes the last line, `failed`.
    /// When the client goes away the stream's task is cancelled, and so is `operation`.
    static func progressStream(_ operation: @escaping @Sendable (_ progress: @escaping @Sendable (GatewayProgress) -> Void) async throws -> Void) -> APIResponse {
        APIResponse(status: 200, headers: ["content-type": "application/x-ndjson"], body: .stream { writer in
            let (events, continuation) = AsyncStream<GatewayProgress>.makeStream()
            async let outcome: Void = {
                do {
                    try await operation { continuation.yield($0) }
                } catch {
                    let message = GatewayProvisioner.describe(error)
                    continuation.yield(GatewayProgress(step: .failed, message: message, error: message))
                }
                continuation.finish()
            }()
            let encoder = APIJSON.makeEncoder()
            for await event in events {
                guard let line = try? encoder.encode(event) else { continue }
                // A client that went away cancels this task; the operation still cleans up.
                try? await writer.write(line + Data("\n".utf8))
            }
            await outcome
        })
    }
}
