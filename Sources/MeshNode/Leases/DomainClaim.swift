public import Foundation
public import Trust

/// A run's claim on a domain, mesh-wide (entry kind `domainClaim`, key `domain|runID`, written by
/// the run's node: `MeshEntryGate` checks that `holder` is the entry's author).
///
/// Every contender writes a claim of its own rather than all writing one entry per domain: one
/// entry would be settled last-writer-wins, so the latest claimer would take a domain from a run
/// already serving it. With one entry each, every node that has heard the same claims picks the
/// same owner (`DomainClaims.owner`): the earliest claim, then the lowest run ID. That holds after
/// a partition heals as well: the run that claimed later learns of the earlier claim and fails.
public struct DomainClaim: Codable, Sendable, Equatable {
    /// The normalised domain (`Binding.normalize`).
    public var domain: String
    /// The run's node (printed node ID); the entry's author.
    public var holder: String
    public var runID: String
    public var runName: String
    /// When the run claimed it: the first claim wins. A renewal keeps it.
    public var claimed: Date
    /// A claim not renewed by then is its run's no longer (the node is gone): it stops counting.
    public var expires: Date

    public init(domain: String, holder: String, runID: String, runName: String, claimed: Date, expires: Date) {
        self.domain = Binding.normalize(domain)
        self.holder = holder
        self.runID = runID
        self.runName = runName
        self.claimed = claimed
        self.expires = expires
    }

    /// The entry key: one entry per run and domain.
    public var key: String { Self.key(domain: domain, runID: runID) }

    public static func key(domain: String, runID: String) -> String { "\(Binding.normalize(domain))|\(runID)" }

    public func isLive(at now: Date) -> Bool { expires > now }

    /// Whether this claim goes before `other` for the same domain: earlier, then the lower run ID.
    /// Claim times are kept to the millisecond, as the JSON that gossips them does.
    public func precedes(_ other: DomainClaim) -> Bool {
        let a = Self.milliseconds(claimed), b = Self.milliseconds(other.claimed)
        if a != b { return a < b }
        if runID != other.runID { return runID < other.runID }
        return holder < other.holder
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// What the run that lost is told.
    public var heldText: String {
        "domain \(domain) is held by run \"\(runName)\" (ID \(runID)) on node \(holder.prefix(8))…, which claimed it first, at "
            + "\(Self.time(claimed)); stop that run (`warren stop \(runName)` on its node) or use another domain"
    }

    static func time(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// JSON with millisecond times, so every node decodes the same instant it compares.
    public var encoded: [UInt8] {
        var copy = self
        copy.claimed = Self.toMillisecond(claimed)
        copy.expires = Self.toMillisecond(expires)
        return Self.millisecondJSON(copy)
    }

    /// `date` cut to the millisecond, the precision `millisecondJSON` carries.
    static func toMillisecond(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds(date)) / 1000)
    }

    /// A claim's JSON: millisecond times and sorted keys, the same bytes on every node.
    static func millisecondJSON(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(value)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> DomainClaim? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try? decoder.decode(DomainClaim.self, from: Data(bytes))
    }
}

/// The live claims a node has heard, and who owns each domain by them.
public struct DomainClaims: Sendable, Equatable {
    public private(set) var claims: [DomainClaim]

    public init(_ claims: [DomainClaim] = []) {
        self.claims = claims
    }

    /// The owner of `domain` at `now`: among the live claims, the earliest (then the lowest run
    /// ID). Nil when nobody claims it.
    public func owner(of domain: String, now: Date) -> DomainClaim? {
        let d = Binding.normalize(domain)
        return claims.filter { $0.domain == d && $0.isLive(at: now) }.min { $0.precedes($1) }
    }

    /// Every domain's owner at `now`, by domain.
    public func owners(now: Date) -> [DomainClaim] {
        Set(claims.map(\.domain)).sorted().compactMap { owner(of: $0, now: now) }
    }
}
