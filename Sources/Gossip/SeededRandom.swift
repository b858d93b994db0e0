/// A small, fast, seedable generator (SplitMix64), so a node's choices can be replayed exactly.
/// Production nodes seed it from the system generator; the simulator from its scenario seed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Seeded from the system's random source.
    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        return FNV1a.mix(state &- 0x9e37_79b9_7f4a_7c15)
    }
}
