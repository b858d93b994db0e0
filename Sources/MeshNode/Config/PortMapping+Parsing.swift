extension PortMapping {
    /// Why a port value was refused; the parser adds the file position.
    enum ParseError: Error, Equatable {
        case outOfRange(String)
        case malformed(String)

        var message: String {
            switch self {
            case .outOfRange(let value):
                return "port \(value) is outside 1–65535"
            case .malformed(let text):
                return "port \"\(text)\" is not a port: use 8000 (external 80 → app 8000) or \"5001:8000\" (external 5001 → app 8000)"
            }
        }
    }

    /// Parses the string form: `"8000"` or `"EXT:APP"`.
    static func parse(_ text: String) throws(ParseError) -> PortMapping {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { throw .malformed(text) }
        var numbers: [Int] = []
        for part in parts {
            let trimmed = part.trimmingSpaces()
            guard !trimmed.isEmpty, trimmed.allSatisfy(\.isASCIIDigit), let n = Int(trimmed) else { throw .malformed(text) }
            guard (1...65535).contains(n) else { throw .outOfRange(String(trimmed)) }
            numbers.append(n)
        }
        return numbers.count == 1 ? PortMapping(app: numbers[0]) : PortMapping(external: numbers[0], app: numbers[1])
    }

    /// Checks the integer form (`port: 8000`).
    static func fromInteger(_ value: Int) throws(ParseError) -> PortMapping {
        guard (1...65535).contains(value) else { throw .outOfRange(String(value)) }
        return PortMapping(app: value)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}
