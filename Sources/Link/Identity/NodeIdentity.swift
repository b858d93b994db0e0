internal import Glibc
public import Gossip
public import Sodium

/// The long-lived identity of this node: an Ed25519 key pair kept in the state directory.
///
/// The node ID is the Ed25519 public key. The Noise static key of every link is the X25519 form of
/// the same key pair, so a completed handshake proves the node ID.
///
/// The key file `node.key` holds the 32-byte seed followed by the 32-byte public key (64 bytes); the
/// public key lets a damaged file be recognised instead of silently becoming another identity.
public final class NodeIdentity: Sendable {
    /// The file name of the key inside the state directory.
    public static let keyFileName = "node.key"

    /// The signing key pair.
    public let keyPair: Ed25519.KeyPair
    /// The node ID (the Ed25519 public key).
    public let id: NodeID
    /// The X25519 form of `keyPair`: the static key of Noise handshakes.
    public let staticKey: X25519.KeyPair

    /// An identity for an existing key pair (tests, or an in-memory node).
    public init(keyPair: Ed25519.KeyPair) {
        self.keyPair = keyPair
        // A 32-byte public key always makes a NodeID, and libsodium's own key pairs always have an
        // X25519 form: neither can fail for a key pair made by libsodium.
        self.id = NodeID(bytes: keyPair.publicKey)!
        self.staticKey = try! X25519.KeyPair(secretKey: Ed25519.x25519SecretKey(from: keyPair.secretKey))
    }

    /// A fresh identity that lives in memory only.
    public static func generate() -> NodeIdentity {
        NodeIdentity(keyPair: .generate())
    }

    /// A detached Ed25519 signature of `message`.
    public func sign(_ message: some ContiguousBytes) -> [UInt8] {
        keyPair.sign(message)
    }

    /// The state directory: `$WARREN_HOME`, or `~/.warren`.
    public static func defaultDirectory(environment: [String: String]) -> String {
        if let home = environment["WARREN_HOME"], !home.isEmpty { return home }
        return (environment["HOME"] ?? ".") + "/.warren"
    }

    /// Loads the identity kept in `directory`, or makes one on first start.
    ///
    /// The directory is created with mode 0700 and the key file with 0600. A key file readable or
    /// writable by others, not owned by this user, or damaged is refused with `IdentityError`, never
    /// replaced. So is a directory writable by group or others (anyone could swap the key).
    public static func loadOrCreate(directory: String) throws -> NodeIdentity {
        try ensureDirectory(directory)
        let path = directory + "/" + keyFileName
        if let identity = try load(path: path) { return identity }
        let identity = generate()
        try write(identity.keyPair, to: path, directory: directory)
        // Another process may have won the race to create the file: whatever is there now is the key.
        return try load(path: path) ?? identity
    }

    private static func ensureDirectory(_ directory: String) throws {
        var st = stat()
        if lstat(directory, &st) != 0 {
            guard errno == ENOENT else { throw IdentityError.io(path: directory, operation: "stat", errno: errno) }
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw IdentityError.io(path: directory, operation: "create directory", errno: errno)
            }
            guard lstat(directory, &st) == 0 else { throw IdentityError.io(path: directory, operation: "stat", errno: errno) }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw IdentityError.notADirectory(path: directory) }
        guard st.st_uid == geteuid() else { throw IdentityError.wrongOwner(path: directory, uid: st.st_uid) }
        let mode = UInt32(st.st_mode) & 0o777
        guard mode & 0o022 == 0 else { throw IdentityError.insecurePermissions(path: directory, mode: mode, expected: 0o700) }
    }

    /// The identity in `path`, nil when there is no such file.
    private static func load(path: String) throws -> NodeIdentity? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw IdentityError.corrupt(path: path, reason: "it is a symbolic link") }
            throw IdentityError.io(path: path, operation: "open", errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IdentityError.io(path: path, operation: "stat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw IdentityError.corrupt(path: path, reason: "it is not a regular file") }
        guard st.st_uid == geteuid() else { throw IdentityError.wrongOwner(path: path, uid: st.st_uid) }
        let mode = UInt32(st.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw IdentityError.insecurePermissions(path: path, mode: mode, expected: 0o600) }
        guard st.st_size == 64 else { throw IdentityError.corrupt(path: path, reason: "it holds \(st.st_size) bytes, a key file holds 64") }

        var bytes = [UInt8](repeating: 0, count: 64)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, 64) }
        guard n == 64 else {
            Sodium.zero(&bytes)
            throw IdentityError.corrupt(path: path, reason: "it could not be read whole")
        }
        var seed = Array(bytes[0..<32])
        let storedPublicKey = Array(bytes[32..<64])
        Sodium.zero(&bytes)
        let keyPair = try Ed25519.KeyPair.fromSeed(SecretBytes(consuming: &seed))
        guard keyPair.publicKey == storedPublicKey else {
            throw IdentityError.corrupt(path: path, reason: "the public key does not match the secret key")
        }
        return NodeIdentity(keyPair: keyPair)
    }

    /// Writes the key to a temporary file and links it into place, so a half-written key is never
    /// seen and an existing key is never overwritten.
    private static func write(_ keyPair: Ed25519.KeyPair, to path: String, directory: String) throws {
        let temporary = directory + "/.node.key.\(getpid()).tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IdentityError.io(path: temporary, operation: "create", errno: errno) }
        defer { unlink(temporary) }
        var bytes = keyPair.seed.copyBytes() + keyPair.publicKey
        defer { Sodium.zero(&bytes) }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == 64, synced else { throw IdentityError.io(path: temporary, operation: "write", errno: errno) }
        if link(temporary, path) != 0, errno != EEXIST {
            throw IdentityError.io(path: path, operation: "create", errno: errno)
        }
    }
}

/// Why the node's identity could not be loaded or made.
public enum IdentityError: Error, Equatable, CustomStringConvertible {
    case insecurePermissions(path: String, mode: UInt32, expected: UInt32)
    case wrongOwner(path: String, uid: UInt32)
    case notADirectory(path: String)
    case corrupt(path: String, reason: String)
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .insecurePermissions(let path, let mode, let expected):
            return "\(path) has mode \(String(mode, radix: 8)), which lets other users read or change the node key; "
                + "run `chmod \(String(expected, radix: 8)) \(path)` if you trust it"
        case .wrongOwner(let path, let uid):
            return "\(path) belongs to user \(uid), not to the user running warren; fix its owner or use another WARREN_HOME"
        case .notADirectory(let path):
            return "\(path) is not a directory; set WARREN_HOME to a directory for the node's state"
        case .corrupt(let path, let reason):
            return "the node key \(path) is damaged (\(reason)); it was left untouched: restore it from a backup, "
                + "or move it away to make this node a new identity"
        case .io(let path, let operation, let code):
            return "could not \(operation) \(path): \(String(cString: strerror(code)))"
        }
    }
}
