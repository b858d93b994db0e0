import Foundation
import Trust

/// One run's life on this node as a value: events in (the app listens, a gateway grants, refuses
/// or can't be asked, the process exits, a stop is asked for), actions out (save a state, ask a
/// gateway after a wait, stop the process, release the bindings, finish the run). `RunManager`
/// carries out the actions: it owns the processes, the store and the calls to the gateways; this
/// value decides, with the time given to each event, so that every path is tested without them.
///
/// States: `starting` (the app is not listening yet), `leasing` (the gateways are being asked),
/// `running` (at least one gateway serves it; `path` tells whether it serves now or its path is
/// down), `stopping`, and the ends `stopped`, `exited`, `failed`.
struct RunLifecycle: Sendable {
    struct Timing: Sendable, Equatable {
        var renewInterval: Duration
        /// The first and the longest wait between grant attempts while a gateway can't be asked.
        var retryInitial: Duration
        var retryCap: Duration
        /// How long after its claim a run waits before it leases (rival claims arrive meanwhile).
        var claimSettle: Duration = .zero
    }

    /// A gateway's answer to a grant (or renewal) that did not grant.
    enum Refusal: Sendable, Equatable {
        /// Another run holds the binding (`holder` its name).
        case conflict(holder: String, description: String)
        /// The gateway refuses the binding for good.
        case refused(String)
        /// The gateway could not be asked; `departure` says why it is gone from the mesh, if it is.
        case unreachable(String, departure: String?)

        /// The gateway's answer, from the error a grant threw.
        init(_ error: any Error, departure: String?) {
            switch error {
            case let conflict as LeaseConflict: self = .conflict(holder: conflict.holder.runName, description: conflict.description)
            case let refusal as LeaseRefused: self = .refused(refusal.description)
            default: self = .unreachable("\(error)", departure: departure)
            }
        }
    }

    enum Action: Sendable, Equatable {
        /// Save the run's new state.
        case save(RunState)
        /// The run serves now (first gateway granted).
        case announceServing
        /// Wait this long for rival claims on the domain, then report `claimsSettled`.
        case settleClaims(after: Duration)
        /// Ask the gateway at `address` for the binding after `after` (a first grant or a renewal);
        /// report its answer with `granted` or `notGranted`. No such action: stop asking it.
        case askGateway(String, after: Duration)
        /// Stop the run's process group (nil: the supervisor's grace period).
        case stopProcess(gracePeriod: Duration?)
        /// Cancel the run's tasks (port wait, leasing, renewals, claim).
        case cancelTasks
        /// Give back every binding on its gateway and withdraw the domain claim.
        case release
        /// The run ended: save its final state.
        case finish(RunState, detail: String?, exitCode: Int32?)
        /// The public path's summed state changed (for the log).
        case pathChanged(from: RunPath.State, to: RunPath.State)
    }

    let appPort: Int
    /// The gateways of its binding(s), by address, the first one first.
    let gateways: [String]
    let domain: String?
    let claimedAt: Date?
    let timing: Timing

    private(set) var state: RunState
    /// Being failed now: a second reason (another gateway's refusal) does not fail it twice.
    private(set) var failing = false
    /// Why the run ended or is failing, as noted first.
    private(set) var detail: String?
    /// What the run waits for now (nil once it serves or ends).
    private(set) var waiting: String?
    /// The path through each gateway, by address; `path` sums them up.
    private(set) var gatewayPaths: [String: RunPath] = [:]
    private(set) var path: RunPath?
    /// Per gateway: grant attempts that failed in a row, and whether it granted once (renewing).
    private var failures: [String: Int] = [:]
    private var renewing: Set<String> = []

    init(state: RunState, appPort: Int, gateways: [String], domain: String? = nil, claimedAt: Date? = nil,
         detail: String? = nil, timing: Timing) {
        self.state = state
        self.appPort = appPort
        self.gateways = gateways
        self.domain = domain
        self.claimedAt = claimedAt
        self.detail = detail
        self.timing = timing
    }

    /// Still going on: not ended, not being stopped or failed.
    var isLive: Bool { state.isActive && state != .stopping && !failing }

    // MARK: Starting

    /// The commands started (or a restarted node adopted them): wait for the app's port.
    mutating func started(now: Date) {
        guard isLive else { return }
        waiting = "the app to listen on port \(appPort)"
        if path == nil { path = RunPath(state: .pending, since: now) }
    }

    /// The app listens on its port: lease its bindings once rival claims had time to arrive.
    mutating func appListening(now: Date) -> [Action] {
        guard isLive else { return [] }
        if let domain, let claimedAt {
            let left = timing.claimSettle - .milliseconds(Int(now.timeIntervalSince(claimedAt) * 1000))
            if left > .zero {
                waiting = "other claims on \(domain) to arrive"
                return [.settleClaims(after: left)]
            }
        }
        return claimsSettled()
    }

    /// The claim's settle time is over: ask every gateway at once. A run a restarted node adopted
    /// leases again too, as its gateways may have let its leases go meanwhile.
    mutating func claimsSettled() -> [Action] {
        guard isLive else { return [] }
        state = .leasing
        return [.save(.leasing)] + gateways.map { .askGateway($0, after: .zero) }
    }

    /// The commands could not be started: nothing runs, nothing was leased.
    mutating func startFailed(_ reason: String) -> [Action] {
        guard state.isActive else { return [] }
        return end(.failed, detail: reason, exitCode: nil)
    }

    /// The app did not listen in time, or its commands failed before it did.
    mutating func appFailedToListen(_ reason: String) -> [Action] {
        fail(reason, gracePeriod: .seconds(2))
    }

    // MARK: Gateways

    /// The gateway at `address` granted (or renewed) the binding: it serves the run; renew later.
    mutating func granted(_ address: String, now: Date) -> [Action] {
        guard isLive else { return [] }
        failures[address] = nil
        let first = renewing.insert(address).inserted
        var actions = setPath(address, .serving, now: now)
        if state == .leasing {
            state = .running
            waiting = nil
            actions += [.save(.running), .announceServing]
        } else if !first {
            waiting = nil
        }
        return actions + [.askGateway(address, after: timing.renewInterval)]
    }

    /// The gateway at `address` did not grant. Its own no fails the run; a gateway that can't be
    /// asked is asked again with backoff however long it takes (the app keeps running).
    mutating func notGranted(_ address: String, _ refusal: Refusal, now: Date) -> [Action] {
        guard isLive else { return [] }
        let renewal = renewing.contains(address)
        switch refusal {
        case .conflict(let holder, let description):
            let actions = setPath(address, .lost, holder: holder, lastError: description, now: now)
            // Someone else holds it now (the run was gone too long): it can no longer serve.
            return actions + (renewal
                ? fail("its binding was taken while it could not renew: \(description)", gracePeriod: .seconds(5))
                : fail(description, gracePeriod: .seconds(2)))
        case .refused(let description):
            let actions = setPath(address, .refused, lastError: description, now: now)
            return actions + (renewal
                ? fail("the gateway refused its binding: \(description)", gracePeriod: .seconds(5))
                : fail(description, gracePeriod: .seconds(2)))
        case .unreachable(let error, let departure):
            let attempt = failures[address, default: 0]
            failures[address] = attempt + 1
            var actions: [Action]
            if let gone = departure {
                if !renewal, state != .running { waiting = "gateway \(address), but \(gone) (retrying in case it comes back)" }
                actions = setPath(address, .gone, lastError: gone, now: now)
            } else if renewal {
                // The lease lasts its TTL meanwhile; the run may still serve through it.
                actions = setPath(address, .unreachable, lastError: error, now: now)
            } else {
                if state != .running { waiting = "gateway \(address) (retrying, last error: \(error))" }
                actions = setPath(address, .pending, lastError: error, now: now)
            }
            // While the gateway can't be asked, ask sooner than a renewal would: the run serves
            // again as soon as it is back (a restarted gateway may have let the lease go).
            let wait = Self.backoff(attempt: attempt, initial: timing.retryInitial, cap: timing.retryCap)
            return actions + [.askGateway(address, after: renewal ? min(timing.renewInterval, wait) : wait)]
        }
    }

    /// This node's last link (direct or relayed) to the gateway at `address` closed. The gateway
    /// opens a public connection's stream on a link to the run's node, so while none is up it
    /// serves nobody, however long the lease has left: a path that served says so now, not at the
    /// next failed renewal. The caller asks the gateway again at once; its answer decides next (a
    /// link relayed by another member serves again).
    mutating func linkLost(_ address: String, reason: String, now: Date) -> [Action] {
        guard isLive, renewing.contains(address), gatewayPaths[address]?.state == .serving else { return [] }
        return setPath(address, .unreachable, lastError: reason, now: now)
    }

    /// This node deleted the gateway `name` at `address`: a run bound to it says so now and drops
    /// its dead URL; it keeps asking, so a gateway made again at that address serves it again.
    mutating func gatewayDeleted(name: String, address: String, now: Date) -> [Action] {
        guard isLive, gateways.contains(address) else { return [] }
        if state != .running {
            waiting = "gateway \(address), but gateway \(name) was deleted (retrying in case it comes back)"
        }
        return setPath(address, .gone, lastError: "gateway \(name) was deleted", now: now)
    }

    /// A claim that goes before the run's own on its domain was heard.
    mutating func claimTaken(holder: String, description: String, now: Date) -> [Action] {
        guard isLive else { return [] }
        return setRunPath(.lost, holder: holder, lastError: description, now: now)
            + fail(description, gracePeriod: .seconds(2))
    }

    // MARK: Ending

    /// `warren stop`: an active run is stopped and released; an ended one only gives back any
    /// binding a gateway may still hold for it.
    mutating func stopRequested() -> [Action] {
        guard state.isActive else { return [.release] }
        state = .stopping
        return [.save(.stopping), .cancelTasks, .stopProcess(gracePeriod: nil), .release]
            + end(.stopped, detail: nil, exitCode: nil)
    }

    /// The process group ended by itself. While the app's port is awaited, that wait reports the
    /// cause instead (`appFailedToListen`, with the log's tail).
    mutating func processExited(exitCode: Int32?, status: String, awaitingPort: Bool) -> [Action] {
        guard isLive else { return [] }
        if state == .starting && awaitingPort { return [] }
        let wasServing = state == .running
        let final: RunState = wasServing || exitCode == 0 ? .exited : .failed
        let detail = wasServing ? "the commands ended (\(status))" : self.detail
        return [.cancelTasks, .release] + end(final, detail: detail, exitCode: exitCode)
    }

    /// Stops a run that can't go on. The reason is noted first: an exit the stop causes ends the
    /// run with it. The bindings are released too: a grant whose answer was lost must not hold
    /// the port until its TTL runs out.
    private mutating func fail(_ reason: String, gracePeriod: Duration) -> [Action] {
        guard isLive else { return [] }
        failing = true
        detail = reason
        return [.stopProcess(gracePeriod: gracePeriod), .release] + end(.failed, detail: reason, exitCode: nil)
    }

    private mutating func end(_ final: RunState, detail: String?, exitCode: Int32?) -> [Action] {
        state = final
        self.detail = detail
        waiting = nil
        return [.finish(final, detail: detail, exitCode: exitCode)]
    }

    // MARK: Paths

    /// The wait before grant attempt `attempt + 1`: doubling from `initial`, at most `cap`.
    static func backoff(attempt: Int, initial: Duration, cap: Duration) -> Duration {
        min(initial * (1 << min(attempt, 20)), cap)
    }

    /// Records the path through the gateway at `address` and sums the run's paths up: it serves
    /// while any gateway serves it; otherwise the gravest state counts.
    private mutating func setPath(
        _ address: String, _ new: RunPath.State, holder: String? = nil, lastError: String? = nil, now: Date
    ) -> [Action] {
        let old = gatewayPaths[address]
        let since = old?.state == new ? old!.since : now
        gatewayPaths[address] = RunPath(state: new, since: since, holder: holder, lastError: lastError ?? old?.lastError)
        let all = gatewayPaths.values
        let order: [RunPath.State] = [.serving, .lost, .refused, .gone, .unreachable, .pending]
        guard let top = order.lazy.compactMap({ s in all.first { $0.state == s } }).first else { return [] }
        return setRunPath(top.state, holder: top.holder, lastError: top.lastError, now: now)
    }

    /// Records the run's public path; its time moves only when its state changes.
    private mutating func setRunPath(_ new: RunPath.State, holder: String? = nil, lastError: String? = nil, now: Date) -> [Action] {
        let old = path
        let since = old?.state == new ? old!.since : now
        path = RunPath(state: new, since: since, holder: holder, lastError: lastError ?? old?.lastError)
        guard let old, old.state != new else { return [] }
        return [.pathChanged(from: old.state, to: new)]
    }
}
