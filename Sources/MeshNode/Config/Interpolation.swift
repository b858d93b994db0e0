import Foundation

/// Where `${{ secrets.NAME }}` takes its values from: the secrets of one project.
public struct SecretValues: Sendable {
    public var project: String
    public var values: [String: String]

    public init(project: String, values: [String: String]) {
        self.project = project
        self.values = values
    }
}

/// `${{ secrets.NAME }}` and `${{ env.NAME }}` in a string, as dstack writes them.
struct Interpolation {
    let secrets: SecretValues
    let environment: [String: String]

    enum Failure: Error, Equatable {
        /// `${{` with no `}}`; the offset is of the `${{`.
        case unterminated(offset: Int)
        case unknownSecret(name: String, offset: Int)
        case unknownEnvironment(name: String, offset: Int)
        case unsupported(expression: String, offset: Int)

        var offset: Int {
            switch self {
            case .unterminated(let o), .unknownSecret(_, let o), .unknownEnvironment(_, let o), .unsupported(_, let o): return o
            }
        }
    }

    /// The string with every `${{ … }}` replaced, and a display form with secrets masked.
    func resolve(_ text: String) throws(Failure) -> ResolvedString {
        guard text.contains("${{") else { return ResolvedString(text) }
        var value = "", display = ""
        var rest = Substring(text)
        var offset = 0
        while let open = rest.range(of: "${{") {
            let before = rest[..<open.lowerBound]
            value += before
            display += before
            offset += before.count
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.range(of: "}}") else { throw .unterminated(offset: offset) }
            let expression = afterOpen[..<close.lowerBound].trimmingSpaces()
            let (namespace, name) = split(expression)
            switch namespace {
            case "secrets":
                guard let secret = secrets.values[name] else { throw .unknownSecret(name: name, offset: offset) }
                value += secret
                display += "***"
            case "env":
                guard let env = environment[name] else { throw .unknownEnvironment(name: name, offset: offset) }
                value += env
                display += env
            default:
                throw .unsupported(expression: String(expression), offset: offset)
            }
            offset += rest[open.lowerBound..<close.upperBound].count
            rest = afterOpen[close.upperBound...]
        }
        value += rest
        display += rest
        return ResolvedString(value, display: display)
    }

    private func split(_ expression: Substring) -> (String, String) {
        guard let dot = expression.firstIndex(of: ".") else { return ("", String(expression)) }
        return (String(expression[..<dot]), String(expression[expression.index(after: dot)...]))
    }
}
