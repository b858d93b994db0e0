import Logging

/// Applying alive, suspect and dead updates (SWIM's rules: incarnations order the claims about a
/// member, and only the member raises its own incarnation, to refute).
extension GossipNode {
    mutating func insertRecord(_ m: Member, now: Duration, joinProbePass: Bool = true) {
        records[m.id] = MemberRecord(member: m, stateChangedAt: now)
        memberSlots[m.id] = memberIDs.count
        memberIDs.append(m.id)
        if m.state == .alive || m.state == .suspect { liveCount += 1 }
        // New members join the current probe pass at a random place, as in memberlist.
        if joinProbePass {
            let at = Int.random(in: probeCursor...probeList.count, using: &rng)
            probeList.insert(m.id, at: at)
        }
    }

    mutating func removeRecord(_ node: NodeID) {
        guard let r = records.removeValue(forKey: node), let slot = memberSlots.removeValue(forKey: node) else { return }
        if r.member.state == .alive || r.member.state == .suspect { liveCount -= 1 }
        let last = memberIDs.removeLast()
        if slot < memberIDs.count {
            memberIDs[slot] = last
            memberSlots[last] = slot
        }
        suspicions.removeValue(forKey: node)
    }

    mutating func setState(_ node: NodeID, _ state: MemberState, incarnation: UInt32, now: Duration) {
        guard var r = records[node] else { return }
        let wasLive = r.member.state == .alive || r.member.state == .suspect
        let isLive = state == .alive || state == .suspect
        if wasLive != isLive { liveCount += isLive ? 1 : -1 }
        r.member.state = state
        r.member.incarnation = incarnation
        r.stateChangedAt = now
        records[node] = r
        pending.append(.memberChanged(r.member))
    }

    /// Raises our incarnation above `incarnation` and announces that we are alive.
    mutating func refute(_ incarnation: UInt32) {
        guard !leaving else { return }
        local.incarnation = max(local.incarnation, incarnation) &+ 1
        counters.refutations += 1
        if config.lifeguard { awareness.apply(delta: 1) }
        broadcast(.alive(local))
    }

    mutating func applyAlive(_ m: Member, now: Duration) {
        if m.id == id {
            // An alive claim about us newer than ours comes from a previous life of this node.
            if m.incarnation > local.incarnation { refute(m.incarnation) }
            return
        }
        guard let r = records[m.id] else {
            var fresh = m
            fresh.state = .alive
            insertRecord(fresh, now: now)
            pending.append(.memberChanged(fresh))
            broadcast(.alive(fresh))
            return
        }
        guard m.incarnation > r.member.incarnation else { return }
        suspicions.removeValue(forKey: m.id)
        var updated = r
        updated.member.address = m.address
        updated.member.metadata = m.metadata
        records[m.id] = updated
        setState(m.id, .alive, incarnation: m.incarnation, now: now)
        broadcast(.alive(records[m.id]!.member))
    }

    mutating func applySuspect(_ node: NodeID, incarnation: UInt32, from: NodeID, now: Duration) {
        if node == id {
            if incarnation >= local.incarnation { refute(incarnation) }
            return
        }
        guard let r = records[node], incarnation >= r.member.incarnation else { return }
        if from != id, r.member.state == .alive, outweighRumour(about: node, incarnation: incarnation) { return }
        switch r.member.state {
        case .dead, .left:
            return
        case .suspect:
            guard incarnation == r.member.incarnation || suspicions[node] == nil else { break }
            // Lifeguard: an independent confirmation shortens the timeout and is passed on.
            if suspicions[node]?.confirm(from: from) == true, let next = suspicions[node]?.nextTimer {
                suspicionTimers.push(node, at: next)
                broadcast(.suspect(node: node, incarnation: incarnation, from: from))
            }
            return
        case .alive:
            break
        }
        let n = liveCount
        let minTimeout = config.minSuspicionTimeout(members: n)
        var expected = config.suspicionMult - 2
        if n - 2 < expected || !config.lifeguard { expected = 0 }
        let suspicion = Suspicion(
            incarnation: incarnation, start: now, minTimeout: minTimeout,
            maxTimeout: minTimeout * config.suspicionMaxTimeoutMult, expected: expected, from: from,
            noticeLead: config.probeTimeout
        )
        suspicions[node] = suspicion
        suspicionTimers.push(node, at: suspicion.nextTimer)
        counters.suspicionsRaised += 1
        setState(node, .suspect, incarnation: incarnation, now: now)
        broadcast(.suspect(node: node, incarnation: incarnation, from: from))
    }

    mutating func applyDead(_ node: NodeID, incarnation: UInt32, from: NodeID, now: Duration) {
        if node == id {
            if !leaving, incarnation >= local.incarnation { refute(incarnation) }
            return
        }
        guard let r = records[node], incarnation >= r.member.incarnation else { return }
        guard r.member.state == .alive || r.member.state == .suspect else { return }
        if from != id, from != node, outweighRumour(about: node, incarnation: incarnation) { return }
        suspicions.removeValue(forKey: node)
        setState(node, from == node ? .left : .dead, incarnation: incarnation, now: now)
        broadcast(.dead(node: node, incarnation: incarnation, from: from))
    }

    /// A rumour about `node` from another member, when this node's own link to `node` is live:
    /// not adopted; `node` hears of it (over that link, for a member behind NAT) and refutes,
    /// which ends the rumour everywhere.
    private mutating func outweighRumour(about node: NodeID, incarnation: UInt32) -> Bool {
        guard vouches(node) else { return false }
        counters.rumoursOutweighed += 1
        send(.gossip(updates: [.suspect(node: node, incarnation: incarnation, from: id)]), to: node)
        return true
    }

    mutating func expireSuspicions(now: Duration) {
        while let timer = suspicionTimers.first, timer.time <= now {
            _ = suspicionTimers.pop()
            let node = timer.payload
            guard var s = suspicions[node], s.nextTimer == timer.time else { continue }
            if !s.noticed {
                // The last word before the verdict, to the suspect itself: a member that missed
                // its refutation (lost to loss, or crowded out of the retransmit budget) would
                // otherwise declare a live node dead. The suspect answers with its current
                // incarnation (`apply`), which ends the suspicion here; a dead one stays silent.
                s.markNoticed()
                suspicions[node] = s
                let notice = Message.gossip(updates: [.suspect(node: node, incarnation: s.incarnation, from: id)])
                if let suspect = records[node]?.member, !reaches(local, suspect) {
                    // Behind another NAT: through the members that reach it, which pass it on
                    // (or, holding a link to it, tell it; `outweighRumour`).
                    for helper in indirectHelpers(for: suspect) { send(notice, to: helper) }
                } else {
                    send(notice, to: node)
                }
                suspicionTimers.push(node, at: s.nextTimer)
                continue
            }
            suspicions.removeValue(forKey: node)
            counters.deathsDeclared += 1
            logger.debug("suspicion timed out; member declared dead", metadata: ["peer.id": "\(node.short)"])
            applyDead(node, incarnation: s.incarnation, from: id, now: now)
        }
    }

    /// Sends queued updates to `gossipNodes` random members (recently dead ones included, so they
    /// can learn of their death and refute it).
    mutating func gossip(now: Duration) {
        guard hasPendingBroadcasts else { return }
        let toTheDead = config.gossipToTheDead
        let me = local
        let reaches = self.reaches
        // Only members this node reaches: behind NAT, a datagram to another site's member is
        // lost, and would use up one of the update's few transmissions.
        let targets = randomMembers(config.gossipNodes) { r in
            guard reaches(me, r.member) else { return false }
            return switch r.member.state {
            case .alive, .suspect: true
            case .dead, .left: now - r.stateChangedAt < toTheDead
            }
        }
        for target in targets {
            let updates = piggyback()
            if updates.isEmpty { break }
            send(.gossip(updates: updates), to: target)
        }
    }
}
