/// Push-pull anti-entropy: a periodic full-state exchange with one random member, and on join.
extension GossipNode {
    func localState(isReply: Bool, isJoin: Bool) -> PushPull {
        var members = [local]
        members.reserveCapacity(memberIDs.count + 1)
        for node in memberIDs { if let r = records[node] { members.append(r.member) } }
        return PushPull(isReply: isReply, isJoin: isJoin, members: members, entries: map.allEntries)
    }

    /// Exchanges state with a random member that is not known to have left. Dead members are
    /// candidates too: that is how the two sides of a healed partition find each other again.
    mutating func startPushPull(now: Duration) {
        guard !leaving else { return }
        let target = randomMembers(1) { $0.member.state != .left }
        guard let node = target.first else { return }
        send(.pushPull(localState(isReply: false, isJoin: false)), to: node)
    }

    /// Merges a remote full state: members first (so their entries verify as by members), then
    /// entries. Entries that change the replica are disseminated onwards.
    mutating func merge(_ state: PushPull, from: NodeID, now: Duration) {
        for m in state.members {
            switch m.state {
            case .alive:
                applyAlive(m, now: now)
            case .suspect:
                if records[m.id] == nil { applyAlive(m, now: now) }
                applySuspect(m.id, incarnation: m.incarnation, from: from, now: now)
            case .dead:
                // As memberlist does: another node's verdict only makes us suspect; our own
                // probes and timers decide. An unknown dead member is recorded, so that the
                // entries it wrote still verify as a member's.
                if m.id != id, records[m.id] == nil {
                    insertRecord(m, now: now)
                } else {
                    applySuspect(m.id, incarnation: m.incarnation, from: from, now: now)
                }
            case .left:
                if m.id != id, records[m.id] == nil {
                    insertRecord(m, now: now)
                } else {
                    applyDead(m.id, incarnation: m.incarnation, from: m.id, now: now)
                }
            }
        }
        for entry in state.entries { ingest(entry, now: now, rebroadcast: true) }
    }
}
