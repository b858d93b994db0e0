/// A Noise handshake pattern (section 7 of the specification): pre-messages and message token
/// lists, with psk modifiers applied (section 9). Messages alternate, the initiator's first.
public struct NoisePattern: Sendable, Equatable {
    public enum Token: String, Sendable {
        case e, s, ee, es, se, ss, psk
    }

    public let name: String
    public let initiatorPreMessage: [Token]
    public let responderPreMessage: [Token]
    public let messages: [[Token]]

    /// True for one-way patterns (N, K, X and their psk variants): only the initiator sends.
    public var isOneWay: Bool { messages.count == 1 }
    /// True when the pattern has psk tokens (then `e` also mixes the key).
    public var usesPSK: Bool { messages.contains { $0.contains(.psk) } }
    public var pskCount: Int { messages.reduce(0) { $0 + $1.filter { $0 == .psk }.count } }

    /// The pattern named `name`, e.g. `XX`, `IKpsk2`, `X1K1`, `NNpsk0+psk2`; nil if unknown.
    public init?(name: String) {
        let base = String(name.prefix { !$0.isLowercase })
        let modifierText = name.dropFirst(base.count)
        guard let table = NoisePattern.table[base] else { return nil }
        var messages = table.messages
        if !modifierText.isEmpty {
            for modifier in modifierText.split(separator: "+", omittingEmptySubsequences: false) {
                guard modifier.hasPrefix("psk"), let n = Int(modifier.dropFirst(3)) else { return nil }
                if n == 0 {
                    messages[0].insert(.psk, at: 0)
                } else {
                    guard n <= messages.count else { return nil }
                    messages[n - 1].append(.psk)
                }
            }
        }
        self.name = name
        initiatorPreMessage = table.initiatorPre
        responderPreMessage = table.responderPre
        self.messages = messages
    }

    private struct Entry {
        let initiatorPre: [Token]
        let responderPre: [Token]
        let messages: [[Token]]
    }

    /// Patterns written as the specification prints them: "pre-messages | message; message; …",
    /// where a pre-message section is "initiator / responder".
    private static let source: [String: String] = [
        "N": "/ s | e, es",
        "K": "s / s | e, es, ss",
        "X": "/ s | e, es, s, ss",
        "NN": "/ | e; e, ee",
        "NK": "/ s | e, es; e, ee",
        "NX": "/ | e; e, ee, s, es",
        "XN": "/ | e; e, ee; s, se",
        "XK": "/ s | e, es; e, ee; s, se",
        "XX": "/ | e; e, ee, s, es; s, se",
        "KN": "s / | e; e, ee, se",
        "KK": "s / s | e, es, ss; e, ee, se",
        "KX": "s / | e; e, ee, se, s, es",
        "IN": "/ | e, s; e, ee, se",
        "IK": "/ s | e, es, s, ss; e, ee, se",
        "IX": "/ | e, s; e, ee, se, s, es",
        "NK1": "/ s | e; e, ee, es",
        "NX1": "/ | e; e, ee, s; es",
        "X1N": "/ | e; e, ee; s; se",
        "X1K": "/ s | e, es; e, ee; s; se",
        "XK1": "/ s | e; e, ee, es; s, se",
        "X1K1": "/ s | e; e, ee, es; s; se",
        "X1X": "/ | e; e, ee, s, es; s; se",
        "XX1": "/ | e; e, ee, s; es, s, se",
        "X1X1": "/ | e; e, ee, s; es, s; se",
        "K1N": "s / | e; e, ee; se",
        "K1K": "s / s | e, es; e, ee; se",
        "KK1": "s / s | e; e, ee, se, es",
        "K1K1": "s / s | e; e, ee, es; se",
        "K1X": "s / | e; e, ee, s, es; se",
        "KX1": "s / | e; e, ee, se, s; es",
        "K1X1": "s / | e; e, ee, s; se, es",
        "I1N": "/ | e, s; e, ee; se",
        "I1K": "/ s | e, es, s; e, ee; se",
        "IK1": "/ s | e, s; e, ee, se, es",
        "I1K1": "/ s | e, s; e, ee, es; se",
        "I1X": "/ | e, s; e, ee, s, es; se",
        "IX1": "/ | e, s; e, ee, se, s; es",
        "I1X1": "/ | e, s; e, ee, s; se, es",
    ]

    private static let table: [String: Entry] = source.mapValues { text in
        let halves = text.split(separator: "|", omittingEmptySubsequences: false)
        let pre = halves[0].split(separator: "/", omittingEmptySubsequences: false)
        func tokens(_ s: Substring) -> [Token] {
            s.split(separator: ",").compactMap { Token(rawValue: $0.trimmingCharacters(in: " ")) }
        }
        return Entry(
            initiatorPre: tokens(pre[0]),
            responderPre: tokens(pre[1]),
            messages: halves[1].split(separator: ";").map(tokens))
    }
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
