/// The version of this Warren: the one place it is written. `make release` (scripts/release.sh)
/// reads it from this file to name the tarball `warren-<version>-linux-<arch>.tar.gz`.
public enum WarrenVersion {
    public static let version = "0.1.0"
}
