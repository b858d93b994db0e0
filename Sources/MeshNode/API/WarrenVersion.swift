import CBuildInfo

/// The version of this Warren, written in this one place: `warren --version` prints it, `warren
/// status` shows it for the node, and `make release` (scripts/release.sh) reads it from this file
/// to name the tarball `warren-<version>-linux-<arch>.tar.gz`.
public enum WarrenVersion {
    public static let current = "0.1.0"

    /// The short commit the binary was built from (set at build time; see Package.swift), or
    /// "unknown" for a build outside git.
    public static let commit = String(cString: warren_build_commit())

    /// What `warren --version` prints: the version and the commit.
    public static var line: String { "\(current) (commit \(commit))" }
}
