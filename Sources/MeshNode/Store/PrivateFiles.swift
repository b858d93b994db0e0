#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creating files and directories that only this user can read: the state directory holds the
/// node's keys, its database and the socket that controls it.
enum PrivateFiles {
    /// Creates `path` (and its parents) if missing, and makes it mode 0700.
    static func ensureDirectory(_ path: String) throws(PrivateFileError) {
        var isDirectory = stat()
        if stat(path, &isDirectory) != 0 {
            let parent = parentDirectory(of: path)
            if parent != path, !parent.isEmpty {
                try ensureParent(parent)
            }
            if mkdir(path, 0o700) != 0, errno != EEXIST {
                throw PrivateFileError(path: path, operation: "create directory", errno: errno)
            }
        } else if (isDirectory.st_mode & S_IFMT) != S_IFDIR {
            throw PrivateFileError(path: path, operation: "use as a directory (it is a file)", errno: ENOTDIR)
        }
        if chmod(path, 0o700) != 0 {
            throw PrivateFileError(path: path, operation: "set mode 0700 on", errno: errno)
        }
    }

    /// Creates an empty file at `path` with mode 0600 if missing, and makes it mode 0600.
    static func ensureFile(_ path: String) throws(PrivateFileError) {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            throw PrivateFileError(path: path, operation: "create", errno: errno)
        }
        close(fd)
        if chmod(path, 0o600) != 0 {
            throw PrivateFileError(path: path, operation: "set mode 0600 on", errno: errno)
        }
    }

    /// Parents are made like `mkdir -p` would, with the usual mode: only the state directory
    /// itself must be private.
    private static func ensureParent(_ path: String) throws(PrivateFileError) {
        var info = stat()
        if stat(path, &info) == 0 { return }
        let parent = parentDirectory(of: path)
        if parent != path, !parent.isEmpty {
            try ensureParent(parent)
        }
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw PrivateFileError(path: path, operation: "create directory", errno: errno)
        }
    }

    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }
}

/// A file-system operation on the state directory failed.
public struct PrivateFileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var operation: String
    public var errno: Int32

    public var description: String {
        "cannot \(operation) \(path): \(String(cString: strerror(errno)))"
    }
}
