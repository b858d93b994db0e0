import Provisioning
import Trust

/// The one place where the node's domain errors become HTTP statuses. Runs, admission, projects
/// and gateway provisioning throw errors that say what is wrong in words (their `description`,
/// sent unchanged as the message); this table adds the status that says what kind of failure it
/// was. A handler's own `APIError` passes through; an error the table does not know is a 500.
public enum APIErrorTable {
    /// The status and message `error` is answered with, or nil when the table does not know it.
    public static func known(_ error: any Error) -> APIError? {
        switch error {
        case let error as APIError: return error
        case let error as RunRefusal: return run(error)
        case let error as MeshAdminRefusal: return admin(error)
        case let error as ProjectError: return project(error)
        case let error as AdmissionError: return admission(error)
        case let error as GatewayRefusal: return gateway(error)
        case let error as ProvisioningError:
            guard case .notFound(let name) = error else { return nil }
            return .notFound("no gateway named \(name) (`warren gateway list` shows the mesh's gateways)")
        default: return nil
        }
    }

    /// The status and message of `error`; a 500 naming it when the table does not know it.
    public static func apiError(for error: any Error) -> APIError {
        known(error) ?? .internalError("\(error)")
    }

    static func run(_ error: RunRefusal) -> APIError {
        switch error {
        case .secretsUnavailable: return APIError(status: 403, error.description)
        case .invalidConfiguration(_, let issues): return APIError(status: 400, error.description, issues: issues)
        case .noBinding, .invalidName: return .badRequest(error.description)
        case .appPortInUse, .nameInUse, .bindingHeld, .stillActive: return .conflict(error.description)
        case .unknownRun: return .notFound(error.description)
        case .startFailed, .storeFailed: return .internalError(error.description)
        }
    }

    static func admin(_ error: MeshAdminRefusal) -> APIError {
        switch error {
        case .noAdmission, .rosterNotReceived: return .conflict(error.description)
        case .unknownRole, .notANodeID, .noAddress: return .badRequest(error.description)
        case .admission(let error): return admission(error)
        case .project(let error): return project(error)
        case .notWritten: return .internalError(error.description)
        case .neitherMemberNorAdmin: return APIError(status: 403, error.description)
        case .refusedByMember(let status, _): return APIError(status: status ?? 409, error.description)
        case .noRotator: return .unavailable(error.description)
        }
    }

    static func project(_ error: ProjectError) -> APIError {
        switch error {
        case .notAMember, .notAMeshMember: return APIError(status: 403, error.description)
        case .noSuchProject: return .notFound(error.description)
        case .invalidProjectName, .invalidSecretName: return .badRequest(error.description)
        default: return .conflict(error.description)
        }
    }

    static func admission(_ error: AdmissionError) -> APIError {
        switch error {
        case .notAnAdmin: return APIError(status: 403, error.description)
        case .invalidAddresses, .invalidTTL: return .badRequest(error.description)
        case .notAMember: return .conflict(error.description)
        }
    }

    static func gateway(_ error: GatewayRefusal) -> APIError {
        switch error {
        case .invalidRequest: return .badRequest(error.description)
        case .notDeletable: return .conflict(error.description)
        }
    }
}
