/// Generated gateway names in the style `warren-gateway-fast-walrus`.
public enum GatewayName {
    static let adjectives = [
        "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "eager", "fast",
        "fierce", "gentle", "golden", "happy", "jolly", "keen", "lively", "lucky", "mellow", "merry",
        "mighty", "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid", "rustic", "shiny",
        "silent", "silver", "smooth", "snowy", "steady", "sunny", "swift", "tidy", "vivid", "witty",
    ]
    static let animals = [
        "badger", "beaver", "bison", "camel", "cheetah", "condor", "coyote", "crane", "dolphin", "eagle",
        "falcon", "ferret", "gazelle", "gecko", "heron", "ibis", "jaguar", "koala", "lemur", "lynx",
        "marmot", "moose", "narwhal", "ocelot", "otter", "owl", "panda", "pelican", "puffin", "rabbit",
        "raven", "seal", "sparrow", "tapir", "tiger", "toucan", "turtle", "walrus", "wombat", "zebra",
    ]

    /// A random name not in `taken` (after a bounded number of draws, a numeric suffix decides).
    public static func generate(avoiding taken: Set<String> = [], using rng: inout some RandomNumberGenerator) -> String {
        var name = ""
        for _ in 0..<32 {
            name = "warren-gateway-\(adjectives.randomElement(using: &rng)!)-\(animals.randomElement(using: &rng)!)"
            if !taken.contains(name) { return name }
        }
        var suffix = 2
        while taken.contains("\(name)-\(suffix)") { suffix += 1 }
        return "\(name)-\(suffix)"
    }

    public static func generate(avoiding taken: Set<String> = []) -> String {
        var rng = SystemRandomNumberGenerator()
        return generate(avoiding: taken, using: &rng)
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
