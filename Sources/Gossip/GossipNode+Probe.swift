/// SWIM failure detection: one probe target per period in randomised round-robin, direct ping,
/// then ping-req through `indirectChecks` members, then suspicion. Lifeguard adds nacks from the
/// intermediaries (a missing nack counts against our own health) and the buddy system.
struct ProbeInFlight: Sendable {
    var seq: UInt32
    var target: NodeID
    var indirectAt: Duration
    var endAt: Duration
    var indirectSent = false
    var expectedNacks = 0
    var nacks = 0
}

/// A ping we send on behalf of another member's indirect probe.
struct Relay: Sendable {
    var requester: NodeID
    var requesterSeq: UInt32
    var nackAt: Duration
    var expiresAt: Duration
    var nackSent = false
}

extension GossipNode {
    mutating func newSeq() -> UInt32 {
        nextSeq &+= 1
        return nextSeq
    }

    func isProbeable(_ node: NodeID) -> Bool {
        guard let r = records[node] else { return false }
        return r.member.state == .alive || r.member.state == .suspect
    }

    /// The next target in the shuffled list; reshuffled after each full pass, as in SWIM.
    mutating func nextProbeTarget() -> NodeID? {
        for _ in 0..<2 {
            while probeCursor < probeList.count {
                let node = probeList[probeCursor]
                probeCursor += 1
                if isProbeable(node) { return node }
            }
            probeList = memberIDs.filter(isProbeable)
            probeList.shuffle(using: &rng)
            probeCursor = 0
            if probeList.isEmpty { return nil }
        }
        return nil
    }

    mutating func startProbe(now: Duration) {
        nextProbeAt = now + awareness.scale(config.probeInterval)
        if let stale = probe { finishFailedProbe(stale, now: now) }
        guard !leaving, let target = nextProbeTarget(), let record = records[target] else { return }
        let seq = newSeq()
        probe = ProbeInFlight(
            seq: seq, target: target,
            indirectAt: now + awareness.scale(config.probeTimeout), endAt: nextProbeAt
        )
        // Buddy system: a suspect hears of the suspicion first, from the node that probes it.
        var prefix: [Update] = []
        if config.lifeguard, record.member.state == .suspect {
            prefix = [.suspect(node: target, incarnation: record.member.incarnation, from: id)]
        }
        send(.ping(seq: seq, target: target, updates: piggyback(after: prefix)), to: target)
    }

    mutating func advanceProbe(now: Duration) {
        guard var p = probe else { return }
        if !p.indirectSent, now >= p.indirectAt {
            p.indirectSent = true
            let helpers = randomMembers(config.indirectChecks, excluding: p.target) { $0.member.state == .alive }
            let address = records[p.target]?.member.address ?? ""
            for helper in helpers {
                send(.indirectPing(seq: p.seq, target: p.target, targetAddress: address, updates: piggyback()), to: helper)
            }
            p.expectedNacks = config.lifeguard ? helpers.count : 0
            probe = p
        }
        if now >= p.endAt {
            finishFailedProbe(p, now: now)
        }
    }

    mutating func finishFailedProbe(_ p: ProbeInFlight, now: Duration) {
        probe = nil
        counters.probesFailed += 1
        // Lifeguard: intermediaries that did not even nack point at our own slowness.
        if config.lifeguard {
            awareness.apply(delta: p.expectedNacks > 0 ? max(0, p.expectedNacks - p.nacks) : 1)
        }
        guard let record = records[p.target] else { return }
        applySuspect(p.target, incarnation: record.member.incarnation, from: id, now: now)
    }

    mutating func handleAck(seq: UInt32, from: NodeID, now: Duration) {
        if let p = probe, p.seq == seq {
            probe = nil
            if config.lifeguard { awareness.apply(delta: -1) }
            return
        }
        if let relay = relays.removeValue(forKey: seq) {
            send(.ack(seq: relay.requesterSeq, updates: piggyback()), to: relay.requester)
        }
    }

    mutating func relayProbe(seq: UInt32, target: NodeID, targetAddress: String, requester: NodeID, now: Duration) {
        if target == id {
            send(.ack(seq: seq, updates: piggyback()), to: requester)
            return
        }
        let localSeq = newSeq()
        relays[localSeq] = Relay(
            requester: requester, requesterSeq: seq,
            nackAt: now + config.probeTimeout, expiresAt: now + config.probeInterval
        )
        let address = records[target]?.member.address ?? targetAddress
        send(.ping(seq: localSeq, target: target, updates: piggyback()), to: target, address: address)
    }

    mutating func expireRelays(now: Duration) {
        guard !relays.isEmpty else { return }
        for seq in relays.keys.sorted() {
            guard var relay = relays[seq] else { continue }
            if now >= relay.expiresAt {
                relays.removeValue(forKey: seq)
            } else if !relay.nackSent, now >= relay.nackAt {
                relay.nackSent = true
                relays[seq] = relay
                if config.lifeguard { send(.nack(seq: relay.requesterSeq), to: relay.requester) }
            }
        }
    }

    /// Up to `k` distinct members matching `accept`, uniformly at random, deterministic for a seed.
    mutating func randomMembers(_ k: Int, excluding: NodeID? = nil, where accept: (MemberRecord) -> Bool) -> [NodeID] {
        guard k > 0, !memberIDs.isEmpty else { return [] }
        func ok(_ node: NodeID) -> Bool {
            node != excluding && records[node].map(accept) == true
        }
        if memberIDs.count <= 4 * k + 8 {
            var candidates = memberIDs.filter(ok)
            candidates.shuffle(using: &rng)
            return Array(candidates.prefix(k))
        }
        var picked: [NodeID] = []
        var attempts = 0
        while picked.count < k, attempts < 16 * k {
            attempts += 1
            let node = memberIDs[Int.random(in: 0..<memberIDs.count, using: &rng)]
            if ok(node), !picked.contains(node) { picked.append(node) }
        }
        return picked
    }
}
