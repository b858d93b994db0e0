import Foundation
@testable import MeshNode
import Testing

/// `RunLifecycle` driven event by event with a given time, no processes and no gateways: each test
/// feeds what `RunManager` would report and checks what it would carry out.
@Suite("Run lifecycle")
struct RunLifecycleTests {
    typealias Action = RunLifecycle.Action

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let timing = RunLifecycle.Timing(
        renewInterval: .seconds(20), retryInitial: .milliseconds(500), retryCap: .seconds(5), claimSettle: .seconds(3))

    static func run(gateways: [String] = ["198.51.100.1"], domain: String? = nil, claimedAt: Date? = nil,
                    state: RunState = .starting) -> RunLifecycle {
        RunLifecycle(state: state, appPort: 8080, gateways: gateways, domain: domain, claimedAt: claimedAt, timing: timing)
    }

    /// A run whose app listens and whose first gateway granted: serving.
    static func serving(gateways: [String] = ["198.51.100.1"]) -> RunLifecycle {
        var run = run(gateways: gateways)
        run.started(now: t0)
        _ = run.appListening(now: t0)
        _ = run.granted(gateways[0], now: t0)
        return run
    }

    // MARK: Up

    @Test func aRunWaitsForItsPortThenAsksEveryGatewayAndServesOnTheFirstGrant() {
        var run = Self.run(gateways: ["198.51.100.1", "198.51.100.2"])
        run.started(now: Self.t0)
        #expect(run.waiting == "the app to listen on port 8080")
        #expect(run.path?.state == .pending)
        #expect(run.appListening(now: Self.t0) == [
            .save(.leasing), .askGateway("198.51.100.1", after: .zero), .askGateway("198.51.100.2", after: .zero),
        ])
        #expect(run.state == .leasing)
        #expect(run.granted("198.51.100.2", now: Self.t0 + 1) == [
            .pathChanged(from: .pending, to: .serving), .save(.running), .announceServing,
            .askGateway("198.51.100.2", after: .seconds(20)),
        ])
        #expect(run.state == .running && run.waiting == nil)
        #expect(run.granted("198.51.100.1", now: Self.t0 + 2) == [.askGateway("198.51.100.1", after: .seconds(20))],
                "the second gateway joins without a second announcement")
    }

    @Test func aClaimedDomainWaitsForRivalClaimsBeforeLeasing() {
        var run = Self.run(domain: "app.example", claimedAt: Self.t0)
        run.started(now: Self.t0)
        #expect(run.appListening(now: Self.t0 + 1) == [.settleClaims(after: .seconds(2))])
        #expect(run.waiting == "other claims on app.example to arrive")
        #expect(run.state == .starting)
        #expect(run.claimsSettled() == [.save(.leasing), .askGateway("198.51.100.1", after: .zero)])
        var late = Self.run(domain: "app.example", claimedAt: Self.t0)
        #expect(late.appListening(now: Self.t0 + 10) == [.save(.leasing), .askGateway("198.51.100.1", after: .zero)],
                "a claim older than the settle time leases at once")
    }

    @Test func aRunAdoptedAfterARestartLeasesAgain() {
        var run = Self.run(state: .running)
        #expect(run.appListening(now: Self.t0) == [.save(.leasing), .askGateway("198.51.100.1", after: .zero)])
        #expect(run.granted("198.51.100.1", now: Self.t0).contains(.announceServing))
    }

    // MARK: Gateways that can't be asked

    @Test func anUnreachableGatewayIsAskedAgainWithBackoffUpToTheCap() {
        var run = Self.run()
        run.started(now: Self.t0)
        _ = run.appListening(now: Self.t0)
        var waits: [Duration] = []
        for second in 1...6 {
            let actions = run.notGranted("198.51.100.1", .unreachable("link down", departure: nil), now: Self.t0 + Double(second))
            for case .askGateway(_, let after) in actions { waits.append(after) }
        }
        #expect(waits == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
        #expect(run.isLive, "the app keeps running while its gateway can't be asked")
        #expect(run.waiting == "gateway 198.51.100.1 (retrying, last error: link down)")
        #expect(run.path?.state == .pending)
        #expect(run.path?.since == Self.t0, "the path's time moves only when its state changes")
        #expect(run.path?.lastError == "link down")
        // Back: the backoff starts over.
        _ = run.granted("198.51.100.1", now: Self.t0 + 10)
        let actions = run.notGranted("198.51.100.1", .unreachable("link down", departure: nil), now: Self.t0 + 31)
        #expect(actions.last == .askGateway("198.51.100.1", after: .milliseconds(500)))
    }

    @Test func aRenewalThatFailsMarksThePathUnreachableAndAsksSoonerThanARenewal() {
        var run = Self.serving()
        let actions = run.notGranted("198.51.100.1", .unreachable("timed out", departure: nil), now: Self.t0 + 20)
        #expect(actions == [.pathChanged(from: .serving, to: .unreachable), .askGateway("198.51.100.1", after: .milliseconds(500))])
        #expect(run.state == .running, "the lease lasts its TTL meanwhile")
        #expect(run.path?.state == .unreachable && run.path?.since == Self.t0 + 20)
        #expect(run.granted("198.51.100.1", now: Self.t0 + 21) == [
            .pathChanged(from: .unreachable, to: .serving), .askGateway("198.51.100.1", after: .seconds(20)),
        ])
    }

    @Test func theLastLinkToAServingGatewayClosingMarksItsPathUnreachableAtOnce() {
        var run = Self.serving(gateways: ["198.51.100.1", "198.51.100.2"])
        _ = run.granted("198.51.100.2", now: Self.t0)
        #expect(run.linkLost("203.0.113.9", reason: "no link", now: Self.t0 + 1).isEmpty, "not one of its gateways")
        #expect(run.linkLost("198.51.100.2", reason: "no link to gateway gw-2", now: Self.t0 + 2).isEmpty,
                "still served through the other gateway")
        #expect(run.gatewayPaths["198.51.100.2"] == RunPath(state: .unreachable, since: Self.t0 + 2, lastError: "no link to gateway gw-2"))
        #expect(run.linkLost("198.51.100.1", reason: "no link to gateway gw-1", now: Self.t0 + 3) == [.pathChanged(from: .serving, to: .unreachable)])
        #expect(run.path?.state == .unreachable && run.path?.since == Self.t0 + 3)
        #expect(run.state == .running && run.isLive, "the lease lasts its TTL meanwhile; the run is asked about again")
        // A path that was not serving keeps what it was told last.
        var pending = Self.run()
        pending.started(now: Self.t0)
        _ = pending.appListening(now: Self.t0)
        #expect(pending.linkLost("198.51.100.1", reason: "no link", now: Self.t0 + 1).isEmpty)
        #expect(pending.path?.state == .pending)
    }

    @Test func oneGatewayDownLeavesARunServingThroughTheOther() {
        var run = Self.serving(gateways: ["198.51.100.1", "198.51.100.2"])
        _ = run.notGranted("198.51.100.2", .unreachable("refused", departure: nil), now: Self.t0 + 1)
        #expect(run.gatewayPaths["198.51.100.2"]?.state == .pending)
        #expect(run.path?.state == .serving, "it serves while any gateway serves it")
        _ = run.notGranted("198.51.100.1", .unreachable("refused", departure: nil), now: Self.t0 + 2)
        #expect(run.path?.state == .unreachable, "then the gravest state counts")
    }

    @Test func aGatewayThatLeftTheMeshIsGoneAndStillAskedInCaseItComesBack() {
        var run = Self.run()
        run.started(now: Self.t0)
        _ = run.appListening(now: Self.t0)
        let actions = run.notGranted("198.51.100.1", .unreachable("link down", departure: "gateway gw-1 was removed"), now: Self.t0 + 1)
        #expect(actions == [.pathChanged(from: .pending, to: .gone), .askGateway("198.51.100.1", after: .milliseconds(500))])
        #expect(run.waiting == "gateway 198.51.100.1, but gateway gw-1 was removed (retrying in case it comes back)")
    }

    @Test func aGatewayThisNodeDeletedIsGoneAtOnce() {
        var run = Self.serving(gateways: ["198.51.100.1", "198.51.100.2"])
        #expect(run.gatewayDeleted(name: "gw-9", address: "203.0.113.9", now: Self.t0).isEmpty, "not one of its gateways")
        _ = run.gatewayDeleted(name: "gw-2", address: "198.51.100.2", now: Self.t0 + 1)
        #expect(run.gatewayPaths["198.51.100.2"] == RunPath(state: .gone, since: Self.t0 + 1, lastError: "gateway gw-2 was deleted"))
        _ = run.gatewayDeleted(name: "gw-1", address: "198.51.100.1", now: Self.t0 + 2)
        #expect(run.path?.state == .gone)
        #expect(run.isLive)
    }

    // MARK: The gateway's no

    @Test func aConflictOnTheFirstGrantFailsTheRunOnce() {
        var run = Self.run(gateways: ["198.51.100.1", "198.51.100.2"])
        run.started(now: Self.t0)
        _ = run.appListening(now: Self.t0)
        let held = "port 5001 on gateway 198.51.100.1 is held by run \"web-1\""
        #expect(run.notGranted("198.51.100.1", .conflict(holder: "web-1", description: held), now: Self.t0 + 1) == [
            .pathChanged(from: .pending, to: .lost), .stopProcess(gracePeriod: .seconds(2)), .release,
            .finish(.failed, detail: held, exitCode: nil),
        ])
        #expect(run.path?.holder == "web-1")
        #expect(run.notGranted("198.51.100.2", .refused("no"), now: Self.t0 + 2).isEmpty, "a second reason does not fail it twice")
        #expect(run.granted("198.51.100.2", now: Self.t0 + 3).isEmpty, "a late grant does not bring it back")
        #expect(run.state == .failed && run.detail == held)
    }

    @Test func aBindingTakenWhileItCouldNotRenewFailsTheRun() {
        var run = Self.serving()
        let actions = run.notGranted("198.51.100.1", .conflict(holder: "other", description: "held by other"), now: Self.t0 + 60)
        #expect(actions.contains(.stopProcess(gracePeriod: .seconds(5))))
        #expect(actions.last == .finish(.failed, detail: "its binding was taken while it could not renew: held by other", exitCode: nil))
    }

    @Test func aRefusedRenewalFailsTheRun() {
        var run = Self.serving()
        let actions = run.notGranted("198.51.100.1", .refused("the project was removed"), now: Self.t0 + 20)
        #expect(actions.first == .pathChanged(from: .serving, to: .refused))
        #expect(actions.last == .finish(.failed, detail: "the gateway refused its binding: the project was removed", exitCode: nil))
        #expect(!actions.contains { if case .askGateway = $0 { true } else { false } }, "nobody asks again")
    }

    @Test func aRivalClaimFailsTheRun() {
        var run = Self.run(domain: "app.example", claimedAt: Self.t0)
        run.started(now: Self.t0)
        let actions = run.claimTaken(holder: "rival", description: "app.example is claimed by run rival", now: Self.t0 + 1)
        #expect(actions == [
            .pathChanged(from: .pending, to: .lost), .stopProcess(gracePeriod: .seconds(2)), .release,
            .finish(.failed, detail: "app.example is claimed by run rival", exitCode: nil),
        ])
    }

    @Test func anAppThatNeverListensFailsTheRun() {
        var run = Self.run()
        run.started(now: Self.t0)
        #expect(run.appFailedToListen("port 8080 did not accept within 60 s").last
            == .finish(.failed, detail: "port 8080 did not accept within 60 s", exitCode: nil))
        #expect(run.appListening(now: Self.t0 + 61).isEmpty)
    }

    // MARK: Stop and exits

    @Test func aStopEndsTheRunAndLaterAnswersAreIgnored() {
        var run = Self.serving()
        #expect(run.stopRequested() == [
            .save(.stopping), .cancelTasks, .stopProcess(gracePeriod: nil), .release, .finish(.stopped, detail: nil, exitCode: nil),
        ])
        #expect(!run.isLive)
        #expect(run.granted("198.51.100.1", now: Self.t0 + 20).isEmpty)
        #expect(run.processExited(exitCode: nil, status: "killed by SIGTERM", awaitingPort: false).isEmpty, "the exit the stop caused")
        #expect(run.stopRequested() == [.release], "stopping an ended run gives back what a gateway may still hold")
    }

    @Test func anExitWhileThePortIsAwaitedIsLeftToThatWait() {
        var run = Self.run()
        run.started(now: Self.t0)
        #expect(run.processExited(exitCode: 1, status: "exit code 1", awaitingPort: true).isEmpty)
        #expect(run.processExited(exitCode: 1, status: "exit code 1", awaitingPort: false)
            == [.cancelTasks, .release, .finish(.failed, detail: nil, exitCode: 1)])
    }

    @Test func aServingRunWhoseCommandsEndHasExited() {
        var run = Self.serving()
        #expect(run.processExited(exitCode: 3, status: "exit code 3", awaitingPort: false)
            == [.cancelTasks, .release, .finish(.exited, detail: "the commands ended (exit code 3)", exitCode: 3)])
        var leasing = Self.run()
        _ = leasing.appListening(now: Self.t0)
        #expect(leasing.processExited(exitCode: 0, status: "exit code 0", awaitingPort: false).last
            == .finish(.exited, detail: nil, exitCode: 0), "a clean exit before serving is not a failure")
    }

    @Test func aFailureNotedFirstIsTheDetailOfTheExitItCauses() {
        var run = Self.run(gateways: ["198.51.100.1"])
        _ = run.appListening(now: Self.t0)
        _ = run.notGranted("198.51.100.1", .refused("bad port"), now: Self.t0)
        #expect(run.processExited(exitCode: nil, status: "killed", awaitingPort: false).isEmpty)
        #expect(run.detail == "bad port")
    }

    @Test func commandsThatCannotStartFailTheRun() {
        var run = Self.run()
        #expect(run.startFailed("no such file") == [.finish(.failed, detail: "no such file", exitCode: nil)])
        #expect(run.startFailed("again").isEmpty)
    }
}
