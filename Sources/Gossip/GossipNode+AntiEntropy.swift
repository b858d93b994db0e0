import Logging

/// Push-pull anti-entropy: a periodic full-state exchange with one random member, and on join.
extension GossipNode {
    func localState(isReply: Bool, isJoin: Bool) -> PushPull {
        var members = [local]
        members.reserveCapacity(memberIDs.count + 1)
        for node in memberIDs { if let r = records[node] { members.append(r.member) } }
        // The floors go too: a node that never held a collected tombstone would otherwise take a
        // replay of what it deleted as new.
        return PushPull(isReply: isReply, isJoin: isJoin, members: members, entries: map.allEntries + map.floorEntries)
    }

    /// Exchanges state with a random member that is not known to have left and that this node
    /// reaches (behind NAT, not another site's member). Dead members are candidates too: that is
    /// how the two sides of a healed partition find each other again.
    mutating func startPushPull(now: Duration) {
        guard !leaving else { return }
        let me = local
        let reaches = self.reaches
        let target = randomMembers(1) { $0.member.state != .left && reaches(me, $0.member) }
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

/// A join waiting for a seed's reply: the push-pull travels once per attempt, and either message
/// can be lost (a link that closes, a node still starting).
struct PendingJoin: Sendable {
    struct Seed: Sendable {
        var id: NodeID
        var address: String
    }

    var seeds: [Seed]
    var retryAt: Duration
    var interval: Duration
    var attempts = 0
}

extension GossipNode {
    /// Sends the join push-pull to the seeds again; gives up after `joinAttempts` (the periodic
    /// push-pull repairs from there).
    mutating func retryJoin(now: Duration) {
        guard var join = pendingJoin, !leaving, join.attempts < config.joinAttempts else {
            pendingJoin = nil
            return
        }
        for seed in join.seeds {
            send(.pushPull(localState(isReply: false, isJoin: true)), to: seed.id, address: seed.address)
        }
        join.attempts += 1
        join.retryAt = now + join.interval
        join.interval = min(join.interval * 2, config.pushPullInterval)
        pendingJoin = join
    }

    /// A seed replied: the join is done. This node now knows the members; its own alive record
    /// goes first in what it sends next, so they learn of it from it as well as from the seed.
    mutating func joined() {
        pendingJoin = nil
        if !leaving { broadcast(.alive(local)) }
    }

    /// The seed of a join tells the newcomer's arrival to every member it reaches (up to
    /// `joinAnnouncements`, at random), besides the usual gossip. Gossip's few transmissions go to
    /// random members, the newcomer itself among them, and where NATs leave each member only a
    /// few others to talk to, a member they all missed would not list the newcomer until a
    /// full-state exchange, up to a push-pull interval later. Once per join, so the cost is small.
    mutating func announce(_ newcomer: NodeID) {
        guard let member = records[newcomer]?.member, member.state == .alive else { return }
        let me = local
        let reaches = self.reaches
        let told = randomMembers(config.joinAnnouncements, excluding: newcomer) { r in
            (r.member.state == .alive || r.member.state == .suspect) && reaches(me, r.member)
        }
        for node in told { send(.gossip(updates: [.alive(member)]), to: node) }
    }

    /// A message from `node`, which this node does not know and which did not introduce itself:
    /// the news of its arrival missed this node. An admitted node is sent this node's full state
    /// (over the link it came by; never to an address, as none is known), and its reply, which
    /// carries its own alive record, introduces it. At most once per `introductionInterval` per
    /// node, and for a bounded number of nodes at a time.
    mutating func askForIntroduction(_ node: NodeID, now: Duration) {
        guard !leaving, node != id, admitsMember(node) else { return }
        if let asked = introductionsAsked[node], now - asked < config.introductionInterval { return }
        introductionsAsked = introductionsAsked.filter { now - $0.value < config.introductionInterval }
        guard introductionsAsked.count < Self.maxIntroductionsAsked else { return }
        introductionsAsked[node] = now
        counters.introductionsAsked += 1
        logger.debug("asked a node not known here for its state", metadata: ["peer.id": "\(node.short)"])
        send(.pushPull(localState(isReply: false, isJoin: false)), to: node, address: "")
    }

    /// How many unknown nodes may wait for an answer to `askForIntroduction` at once.
    static let maxIntroductionsAsked = 64

    /// Whether `message` carries its sender's own alive record: how a node not known yet
    /// introduces itself (a joined node's first gossip, a join push-pull, a seed's reply).
    static func introduces(_ message: Message, sender: NodeID) -> Bool {
        func aliveSelf(_ updates: [Update]) -> Bool {
            updates.contains { if case let .alive(m) = $0 { m.id == sender } else { false } }
        }
        switch message {
        case let .ping(_, _, updates), let .indirectPing(_, _, _, updates), let .ack(_, updates), let .gossip(updates):
            return aliveSelf(updates)
        case let .pushPull(state):
            return state.members.contains { $0.id == sender && $0.state == .alive }
        case .nack:
            return false
        }
    }
}

