/// The version of this Warren, written in this one place: `warren --version` prints it, `warren
/// status` shows it for the node, and `make release` (scripts/release.sh) reads it from this file
/// to name the tarball `warren-<version>-linux-<arch>.tar.gz`.
public enum WarrenVersion {
    public static let current = "0.1.0"
}
