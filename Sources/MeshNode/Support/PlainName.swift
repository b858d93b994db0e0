/// The names people give runs and gateways, checked where they are made: they are gossiped to
/// every member and printed in their tables and logs, so they hold no control characters, spaces
/// or terminal escapes, whatever the source.
public enum PlainName {
    public static let maxLength = 63
    public static let rule = "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters"

    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= maxLength, isLetterOrDigit(first) else { return false }
        return name.unicodeScalars.allSatisfy { isLetterOrDigit($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }

    /// The name as an error message may show it: quoted, escapes visible, cut short.
    public static func describe(_ name: String) -> String {
        String(name.prefix(80)).debugDescription
    }

    private static func isLetterOrDigit(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
    }
}
