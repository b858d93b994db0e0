/// Generated gateway names in the style `warren-gateway-fast-walrus`.
public enum GatewayName {
    /// A random name not in `taken`.
    public static func generate(avoiding taken: Set<String> = [], using rng: inout some RandomNumberGenerator) -> String {
        RandomName.make(avoiding: taken, prefix: "warren-gateway-", using: &rng)
    }

    public static func generate(avoiding taken: Set<String> = []) -> String {
        RandomName.make(avoiding: taken, prefix: "warren-gateway-")
    }

    /// Checks a name given with `--name`: clouds accept lower-case letters, digits and dashes,
    /// starting with a letter, at most 63 characters (GCP's rule, the strictest of the three).
    public static func validate(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
        guard !name.isEmpty, name.count <= 63, allowed, name.first!.isLetter, name.last != "-" else {
            throw ProvisioningError.invalidConfiguration(
                "invalid gateway name \(name.debugDescription): use lower-case letters, digits and dashes, starting with a letter, at most 63 characters")
        }
    }
}
