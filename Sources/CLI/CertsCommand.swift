import ArgumentParser
import Foundation
import MeshNode

/// `warren certs`: the certificates this gateway terminates TLS with, which gateways of the mesh
/// serve the same one, and the last failure of the gateway that orders it.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "List the HTTPS certificates of this gateway: name, issuer, expiry, the gateways holding it, last error.",
        discussion: """
            Run on a gateway with ACME. "held by" lists the gateways of the mesh that serve this same \
            certificate now (one gateway orders each name and shares it sealed with the others). \
            "last error" is the most recent failed order for the name, this gateway's or that of the \
            gateway ordering it (named first), such as a CA refusing the challenge, a name that does \
            not resolve to the gateway, or a rate limit; it clears once a certificate is served. \
            --json prints the same, with "holders", "lastError", "lastErrorBy" and "lastErrorAt".
            """)
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let certificates: [CertificateStatus] = try reportingFailures { try node.client.get("/v1/certs") }
        if node.json { try Output.json(certificates); return }
        if certificates.isEmpty {
            Output.line("No certificates: this node serves no HTTPS (a gateway does with --acme-email or --acme-directory, or with the mesh's setting: `warren gateway create --acme-…`).")
            return
        }
        Output.line(Output.table(["name", "issuer", "expires", "gateway", "held by", "last error"], certificates.map {
            [$0.name, $0.issuer ?? "-", $0.notAfter.map { Self.expiry($0) } ?? "(not issued yet)", $0.gateway,
             Self.holders($0), Self.lastError($0)]
        }))
    }

    static func holders(_ status: CertificateStatus) -> String {
        guard let holders = status.holders, !holders.isEmpty else { return "-" }
        return holders.joined(separator: ", ")
    }

    /// The error, named by the gateway that hit it when that is another gateway (the orderer).
    static func lastError(_ status: CertificateStatus) -> String {
        guard let error = status.lastError else { return "-" }
        guard let by = status.lastErrorBy, by != status.gateway else { return error }
        return "\(by) (orders it): \(error)"
    }

    /// "2027-03-02 (in 89 days)", or "2027-03-02 (expired)".
    static func expiry(_ date: Date, now: Date = Date()) -> String {
        let days = Int((date.timeIntervalSince(now) / 86_400).rounded(.down))
        let day = ISO8601DateFormatter.string(from: date, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
        if date < now { return "\(day) (expired)" }
        return days < 1 ? "\(day) (in \(Int(date.timeIntervalSince(now) / 3600)) h)" : "\(day) (in \(days) days)"
    }
}
