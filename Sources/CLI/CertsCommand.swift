import ArgumentParser
import Foundation
import MeshNode

/// `warren certs`: the certificates this gateway terminates TLS with.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "List the HTTPS certificates of this gateway: name, issuer, expiry, last error.")
    @OptionGroup var node: NodeOptions

    func run() async throws {
        let certificates: [CertificateStatus] = try reportingFailures { try node.client.get("/v1/certs") }
        if node.json { try Output.json(certificates); return }
        if certificates.isEmpty {
            Output.line("No certificates: this node serves no HTTPS (start a gateway with --acme-email or --acme-directory).")
            return
        }
        Output.line(Output.table(["name", "issuer", "expires", "gateway", "last error"], certificates.map {
            [$0.name, $0.issuer ?? "-", $0.notAfter.map { Self.expiry($0) } ?? "(not issued yet)", $0.gateway,
             $0.lastError ?? "-"]
        }))
    }

    /// "2027-03-02 (in 89 days)", or "2027-03-02 (expired)".
    static func expiry(_ date: Date, now: Date = Date()) -> String {
        let days = Int((date.timeIntervalSince(now) / 86_400).rounded(.down))
        let day = ISO8601DateFormatter.string(from: date, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate])
        if date < now { return "\(day) (expired)" }
        return days < 1 ? "\(day) (in \(Int(date.timeIntervalSince(now) / 3600)) h)" : "\(day) (in \(days) days)"
    }
}
