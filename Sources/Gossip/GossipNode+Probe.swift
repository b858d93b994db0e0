/// SWIM failure detection: one probe target per period in randomised round-robin, direct ping,
/// then ping-req through `indirectChecks` members, then suspicion. Lifeguard adds nacks from the
/// intermediaries (a missing nack counts against our own health) and the buddy system.
struct ProbeInFlight: Sendable {
    var seq: UInt32
    var target: NodeID
    var indirectAt: Duration
    var endAt: Duration
    var indirectSent = false
    /// Whether the target was pinged directly; if not (it cannot be reached from here), the
    /// indirect pings carry the buddy system's notice instead.
    var direct = true
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
        // A member this node cannot reach (behind another site's NAT, with no link from here)
        // would only let the direct ping's timeout pass: it is asked about through others at once.
        let direct = reaches(local, record.member)
        probe = ProbeInFlight(
            seq: seq, target: target,
            indirectAt: direct ? now + awareness.scale(config.probeTimeout) : now, endAt: nextProbeAt, direct: direct
        )
        guard direct else {
            advanceProbe(now: now)
            return
        }
        send(.ping(seq: seq, target: target, updates: piggyback(after: buddyNotice(for: record.member))), to: target)
    }

    /// Buddy system: a suspect hears of the suspicion first, from the node that probes it (or,
    /// when this node cannot reach it, from the members asked to).
    func buddyNotice(for member: Member) -> [Update] {
        guard config.lifeguard, member.state == .suspect else { return [] }
        return [.suspect(node: member.id, incarnation: member.incarnation, from: id)]
    }

    mutating func advanceProbe(now: Duration) {
        guard var p = probe else { return }
        if !p.indirectSent, now >= p.indirectAt {
            p.indirectSent = true
            var helpers: [NodeID] = []
            if let target = records[p.target]?.member {
                helpers = indirectHelpers(for: target)
                for helper in helpers {
                    let updates = piggyback(after: p.direct ? [] : buddyNotice(for: target))
                    send(.indirectPing(seq: p.seq, target: p.target, targetAddress: target.address, updates: updates), to: helper)
                }
            }
            p.expectedNacks = config.lifeguard ? helpers.count : 0
            probe = p
        }
        if now >= p.endAt {
            finishFailedProbe(p, now: now)
        }
    }

    /// Up to `indirectChecks` alive members to probe `target` for this node. Only members this
    /// node reaches (`reaches`): a request that cannot arrive brings no answer, not even a nack,
    /// and Lifeguard would count the silence against this node's own health. Among those, members
    /// that reach the target go first (behind NAT, those holding links to it: the gateways);
    /// others fill the remaining places and at least answer with a nack.
    mutating func indirectHelpers(for target: Member) -> [NodeID] {
        let k = config.indirectChecks
        let me = local
        let reaches = self.reaches
        var helpers = randomMembers(k, excluding: target.id) {
            $0.member.state == .alive && reaches(me, $0.member) && reaches($0.member, target)
        }
        if helpers.count < k {
            let chosen = helpers
            helpers += randomMembers(k - helpers.count, excluding: target.id) {
                $0.member.state == .alive && !chosen.contains($0.member.id) && reaches(me, $0.member)
            }
        }
        return helpers
    }

    mutating func finishFailedProbe(_ p: ProbeInFlight, now: Duration) {
        probe = nil
        counters.probesFailed += 1
        // Lifeguard: intermediaries that did not even nack point at our own slowness.
        if config.lifeguard {
            awareness.apply(delta: p.expectedNacks > 0 ? max(0, p.expectedNacks - p.nacks) : 1)
        }
        guard let record = records[p.target] else { return }
        // This node's own live link to the member says it is up (the same evidence that outweighs
        // another member's rumour): a lost probe is the path's, and the link's liveness check,
        // which closes a silent link within seconds, decides; the probes after that suspect.
        if vouches(p.target) {
            counters.probesOutweighedByLink += 1
            return
        }
        // A member this node cannot reach is asked about only through helpers. When none of them
        // answered, not even with a nack, the probe says nothing of the member, only of this
        // node's own path to the helpers (Lifeguard counted it against its health above): a
        // later probe decides. A helper that got the request and could not reach the member
        // nacks, and then the member is suspected as before.
        if !p.direct, config.lifeguard, p.expectedNacks > 0, p.nacks == 0 {
            counters.probesInconclusive += 1
            return
        }
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
