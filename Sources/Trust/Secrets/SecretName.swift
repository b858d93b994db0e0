/// Secret names: what `${{ secrets.NAME }}` can refer to.
public enum SecretName {
    /// Letters, digits and `_`, not starting with a digit, at most 128 characters.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 128, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ("0"..."9").contains($0) || ("a"..."z").contains($0) || ("A"..."Z").contains($0) }
    }
}
