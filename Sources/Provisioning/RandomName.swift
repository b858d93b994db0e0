/// Memorable names in dstack's style: `fast-walrus`, for runs and gateways.
public enum RandomName {
    static let adjectives = [
        "amber", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "eager", "fast", "fierce", "gentle",
        "glad", "golden", "grand", "happy", "keen", "kind", "lively", "lucky", "mellow", "mighty", "nimble", "noble",
        "plucky", "proud", "quick", "quiet", "rapid", "shiny", "silent", "smart", "snappy", "steady", "sunny", "swift",
        "tidy", "vivid", "warm", "wise", "witty", "zesty",
    ]
    static let animals = [
        "badger", "bat", "bear", "beaver", "bison", "cat", "cobra", "crane", "crow", "deer", "dingo", "dolphin", "eagle",
        "falcon", "ferret", "finch", "fox", "gecko", "goat", "heron", "ibis", "koala", "lemur", "lion", "lynx", "marmot",
        "mole", "moose", "newt", "otter", "owl", "panda", "puffin", "quail", "rabbit", "raven", "seal", "shrew", "sloth",
        "stoat", "tapir", "tiger", "toad", "walrus", "wolf", "wombat", "yak", "zebra",
    ]

    /// `adjective-animal`, avoiding every name in `taken` (a number is added when all are taken).
    public static func make(avoiding taken: Set<String> = [], prefix: String = "", using generator: inout some RandomNumberGenerator) -> String {
        for _ in 0..<64 {
            let name = prefix + adjectives.randomElement(using: &generator)! + "-" + animals.randomElement(using: &generator)!
            if !taken.contains(name) { return name }
        }
        var n = 2
        let base = prefix + adjectives.randomElement(using: &generator)! + "-" + animals.randomElement(using: &generator)!
        while taken.contains("\(base)-\(n)") { n += 1 }
        return "\(base)-\(n)"
    }

    public static func make(avoiding taken: Set<String> = [], prefix: String = "") -> String {
        var g = SystemRandomNumberGenerator()
        return make(avoiding: taken, prefix: prefix, using: &g)
    }
}
