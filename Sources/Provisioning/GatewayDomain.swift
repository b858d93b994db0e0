/// A domain given to `gateway create --domain`: it goes into a first-boot script and a systemd
/// unit, so only what DNS names hold is let through.
public enum GatewayDomain {
    /// Letters, digits, dashes and dots, labels of 1 to 63 characters, at most 253 in all.
    public static func validate(_ domain: String) throws {
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        let valid = !domain.isEmpty && domain.utf8.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
        }
        guard valid else {
            throw ProvisioningError.invalidConfiguration(
                "invalid domain \(domain.debugDescription): use a DNS name such as api.example.com (letters, digits, dashes and dots)")
        }
    }
}
