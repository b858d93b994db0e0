public import Foundation

/// One replicated item as the gossip layer keeps it: a signed, last-writer-wins entry.
///
/// The store persists entries as they are given; deciding which write wins (by HLC, then author)
/// is the replicated map's job, not the store's.
public struct ReplicatedEntryRecord: Sendable, Hashable, Codable {
    /// The entry's kind (membership, lease, secret, …), as the gossip layer numbers them.
    public var kind: Int
    public var key: String
    public var value: Data
    /// The hybrid logical clock timestamp of the write.
    public var hlc: UInt64
    /// The author's node ID (Ed25519 public key).
    public var author: Data
    public var signature: Data
    /// A tombstone: the entry was deleted at `hlc`.
    public var deleted: Bool

    public init(kind: Int, key: String, value: Data, hlc: UInt64, author: Data, signature: Data, deleted: Bool = false) {
        self.kind = kind
        self.key = key
        self.value = value
        self.hlc = hlc
        self.author = author
        self.signature = signature
        self.deleted = deleted
    }
}

/// The lifecycle of a run as the node records it.
public enum RunState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Started; its commands run but its port does not accept yet.
    case starting
    /// Its port accepts; the gateway is being asked for the binding.
    case leasing
    /// Serving through its gateway.
    case running
    /// A stop was asked for; the process group is being terminated.
    case stopping
    /// Stopped by a user (`warren stop`, Ctrl-C).
    case stopped
    /// The process is gone by itself, or ended while the node was down.
    case exited
    /// It never became ready (bad configuration, port not accepting, lease refused).
    case failed

    /// Whether a process may still be alive in this state.
    public var isActive: Bool { self == .starting || self == .leasing || self == .running || self == .stopping }
}

/// A service run, as persisted so that a restarted node finds it again.
public struct RunRecord: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var project: String
    /// The run's configuration, as JSON text.
    public var configJSON: String
    /// The working directory of its commands.
    public var directory: String
    public var pid: Int32?
    /// The process group of its commands (the shell's pid).
    public var pgid: Int32?
    public var state: RunState
    /// The exit code, when the process exited normally and the node saw it.
    public var exitCode: Int32?
    /// Why the run failed or ended, in words a person can act on.
    public var detail: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var logPath: String

    public init(
        id: String, name: String, project: String, configJSON: String, directory: String,
        pid: Int32? = nil, pgid: Int32? = nil, state: RunState = .starting, exitCode: Int32? = nil,
        detail: String? = nil, createdAt: Date = Date(), updatedAt: Date = Date(), logPath: String
    ) {
        self.id = id
        self.name = name
        self.project = project
        self.configJSON = configJSON
        self.directory = directory
        self.pid = pid
        self.pgid = pgid
        self.state = state
        self.exitCode = exitCode
        self.detail = detail
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.logPath = logPath
    }
}

/// A binding on a gateway held by a run, until `expiresAt` unless renewed.
///
/// A binding is identified by (gateway address, port, host); `host == nil` is an exclusive binding
/// that holds the whole port.
public struct LeaseRecord: Sendable, Hashable, Codable {
    public var gatewayAddress: String
    public var port: Int
    /// The host name of a host-routed binding; nil for an exclusive one.
    public var host: String?
    public var runID: String
    /// The node that holds the run (printed node ID).
    public var holderNode: String
    /// The run's name as users see it, for messages that name the holder.
    public var runName: String
    /// The app's port on the holder, where the gateway's streams are dialled.
    public var appPort: Int
    public var expiresAt: Date
    /// False: the service opted out of TLS termination (`https: false`); nil: the default.
    public var https: Bool?

    public init(
        gatewayAddress: String, port: Int, host: String?, runID: String, holderNode: String,
        runName: String = "", appPort: Int = 0, expiresAt: Date, https: Bool? = nil
    ) {
        self.https = https
        self.gatewayAddress = gatewayAddress
        self.port = port
        self.host = host
        self.runID = runID
        self.holderNode = holderNode
        self.runName = runName
        self.appPort = appPort
        self.expiresAt = expiresAt
    }
}
