/// Project names: what `--project P` accepts and entry keys embed.
public enum ProjectName {
    public static let maxLength = 64

    /// 1 to 64 of letters, digits, `-`, `_` and `.`, starting with a letter or a digit (so a name
    /// never holds the `/` that separates the parts of an entry key).
    public static func isValid(_ name: String) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard let first = scalars.first, scalars.count <= maxLength, isAlphanumeric(first) else { return false }
        return scalars.allSatisfy { isAlphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    private static func isAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(c) || ("a"..."z").contains(c) || ("A"..."Z").contains(c)
    }
}
