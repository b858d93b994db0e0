// HTTP/1.x on an exclusive port: a splice that adds the forwarding headers to each request head.

import Logging
import NIOCore
import NIOHTTP1

/// Told to the client's `ExclusiveHTTPHandler` by the ingress.
enum ExclusiveHTTPEvent: Sendable {
    /// The port's upstream could not be connected: the client is answered why.
    case upstreamFailed(any Error)
}

/// Sits in front of the client's `SpliceHandler` on an exclusive port whose client speaks
/// HTTP/1.x. Requests are framed by `ExclusiveRequestFramer` and forwarded with `X-Forwarded-*`;
/// the app's bytes, written to the client by the upstream's splice half, pass through `write`
/// unchanged and are followed by `ExclusiveResponseFollower`. The port belongs to one app and its
/// upstream to one client connection, so nothing else is parsed, decoded or re-encoded: a request
/// costs about what a spliced one does.
///
/// The gateway answers of its own (`400`, `405`, `408`, `431`, and `502`/`503`/`504` when the
/// upstream can't be reached, or says nothing) are put in only where no response of the app is
/// owed or under way, then the connection closes. After a `101` both directions pass as they are.
final class ExclusiveHTTPHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private typealias Answer = ProxyConnectionStateMachine.Answer

    private let ingress: IngressContext
    private let route: Route
    private let headTimer: RequestHeadTimeoutHandler
    private var requests: ExclusiveRequestFramer
    private var responses = ExclusiveResponseFollower()
    /// A refusal waiting for the responses owed before it.
    private var refusal: Answer?
    private var answered = false
    private var readPending = false
    /// The client's end of input, held with the bytes an upgrade answer holds.
    private var inputClosedHeld = false
    /// When the app's answer to the request it has whole is late.
    private var answerDue: NIODeadline?
    /// At most one timer, which may be due before `answerDue`; it sets itself again if needed.
    private var answerTimer: Scheduled<Void>?

    init(ingress: IngressContext, route: Route, headTimer: RequestHeadTimeoutHandler, clientAddress: String?) {
        self.ingress = ingress
        self.route = route
        self.headTimer = headTimer
        self.requests = ExclusiveRequestFramer(maxHeaderBytes: ingress.configuration.maxHeaderBytes, clientAddress: clientAddress)
    }

    // MARK: The client's bytes

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.answered else { return }  // drained: the client is told and the connection closes
        let output = self.requests.feed(self.unwrapInboundIn(data))
        self.forward(output, context: context)
    }

    /// Carries out what the framer made of the client's bytes.
    private func forward(_ output: ExclusiveRequestFramer.Output, context: ChannelHandlerContext) {
        for (index, kind) in output.requests.enumerated() {
            self.responses.requestForwarded(kind, closes: output.lastRequestCloses && index == output.requests.count - 1)
        }
        if output.headCompleted { self.headTimer.headReceived() }
        if self.requests.isReadingHead { self.headTimer.requestEnded() }
        for buffer in output.forward { context.fireChannelRead(self.wrapInboundOut(buffer)) }
        if let refusal = output.refusal {
            self.headTimer.cancel()
            self.refusal = refusal
            self.answerWhenIdle(context: context)
        }
        self.watchAnswer(context: context)
    }

    func read(context: ChannelHandlerContext) {
        if self.requests.isHolding && !self.answered {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case ChannelEvent.inputClosed where self.requests.isHolding:
            self.inputClosedHeld = true
        case let expired as RequestHeadTimeoutHandler.Expired:
            guard !self.answered, self.refusal == nil else { return }
            self.ingress.limits.countTimeout(.requestHead)
            self.requests.refuseRest()
            self.refusal = Answer(
                status: .requestTimeout,
                text: "the request head was not complete within \(ProxyConnectionStateMachine.seconds(expired.timeout)) s; send it whole, then retry\n")
            self.answerWhenIdle(context: context)
        case ExclusiveHTTPEvent.upstreamFailed(let error):
            // Nothing of the app came: the answer goes out at once.
            self.requests.refuseRest()
            self.answer(
                Answer.connectFailed(error, route: self.route, retryAfterSeconds: self.ingress.configuration.retryAfterSeconds),
                context: context)
        case SpliceEvent.partnerClosed where self.responses.isAwaitingAnswer && !self.answered,
             SpliceEvent.partnerInputClosed where self.responses.isAwaitingAnswer && !self.answered:
            // The app went without a byte of the answer owed: say so, rather than a bare close.
            self.requests.refuseRest()
            self.answer(Answer(status: .badGateway, text: "the service closed the connection without an answer\n"), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: The app's bytes, on their way to the client

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard self.responses.isTracked, !self.requests.isTunnel else {
            context.write(data, promise: promise)
            return
        }
        let buffer = self.unwrapOutboundIn(data)
        let events = buffer.readableBytes > 0 ? self.responses.follow(buffer) : []
        context.write(data, promise: promise)
        for event in events {
            switch event {
            case .switched:
                self.upgradeAnswered(switched: true, context: context)
            case .upgradeDeclined:
                self.upgradeAnswered(switched: false, context: context)
            case .lost:
                // Whether the app switched protocols, and where an answer could go, is unknown
                // from here on: a connection that needs either ends.
                if self.requests.isHolding || self.refusal != nil { context.close(promise: nil) }
            case .closingResponseEnded:
                // The client asked to close after this response (RFC 9112 §9.6), whether or not
                // the app closes its side.
                let channel = context.channel
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer())).whenComplete { _ in channel.close(promise: nil) }
            }
        }
        self.answerWhenIdle(context: context)
        self.watchAnswer(context: context)
    }

    private func upgradeAnswered(switched: Bool, context: ChannelHandlerContext) {
        let output = self.requests.upgradeAnswered(switched: switched)
        if switched {
            self.headTimer.cancel()
            self.answerDue = nil
        }
        self.forward(output, context: context)
        if !output.forward.isEmpty { context.fireChannelReadComplete() }
        guard !self.requests.isHolding else { return }
        if self.inputClosedHeld {
            self.inputClosedHeld = false
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
        if self.readPending {
            self.readPending = false
            context.read()
        }
    }

    // MARK: Answers of the gateway's own

    /// Sends the refusal once no response of the app is owed or under way.
    private func answerWhenIdle(context: ChannelHandlerContext) {
        guard let refusal = self.refusal, !self.answered else { return }
        if self.responses.isIdle {
            self.answer(refusal, context: context)
        } else if !self.responses.isTracked {
            context.close(promise: nil)
        }
    }

    /// Times the app's answer to a request it has whole (`answerTimeout`); a response's first
    /// byte stops the clock.
    private func watchAnswer(context: ChannelHandlerContext) {
        guard !self.answered, self.responses.isAwaitingAnswer, self.requests.isBetweenRequests else {
            self.answerDue = nil
            return
        }
        guard self.answerDue == nil else { return }
        let deadline = NIODeadline.now() + self.ingress.configuration.answerTimeout
        self.answerDue = deadline
        if self.answerTimer == nil { self.scheduleAnswerTimer(at: deadline, context: context) }
    }

    private func scheduleAnswerTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.answerTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.answerTimer = nil
            guard let due = handler.answerDue, !handler.answered else { return }
            if due > .now() {
                handler.scheduleAnswerTimer(at: due, context: context)
                return
            }
            handler.answerDue = nil
            guard handler.responses.isAwaitingAnswer else { return }
            handler.ingress.limits.countTimeout(.answer)
            handler.requests.refuseRest()
            handler.answer(
                Answer(
                    status: .gatewayTimeout,
                    text: "service \"\(handler.route.runID)\" did not answer: its app accepted the connection but sent no response "
                        + "within \(ProxyConnectionStateMachine.seconds(handler.ingress.configuration.answerTimeout)) s\n"),
                context: context)
        }
    }

    /// Answers with a short plain-text body, half-closes, keeps draining what the client still
    /// sends (a close with unread bytes would reset the connection and could destroy the answer),
    /// and closes for good after a grace time; the app's connection goes with it.
    private func answer(_ answer: Answer, context: ChannelHandlerContext) {
        guard !self.answered else { return }
        self.answered = true
        self.refusal = nil
        self.answerDue = nil
        self.headTimer.cancel()
        self.ingress.logger.debug(
            "answering from the gateway",
            metadata: ["http.status": "\(answer.status.code)", "listen.address": "\(self.ingress.address)"]
        )
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(answer.response())).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        context.eventLoop.scheduleTask(in: HTTPProxyHandler.lingerTime) { channel.close(promise: nil) }
        if self.readPending {
            self.readPending = false
            context.read()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.answerTimer?.cancel()
        self.answerTimer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.answerTimer?.cancel()
        self.answerTimer = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ExclusiveHTTPHandler: Sendable {}

extension ProxyConnectionStateMachine.Answer {
    /// The whole response, as bytes: the status, the headers, `connection: close`, the text.
    func response() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("HTTP/1.1 \(self.status.code) \(self.status.reasonPhrase)\r\n")
        buffer.writeStaticString("content-type: text/plain; charset=utf-8\r\n")
        buffer.writeString("content-length: \(self.text.utf8.count)\r\nconnection: close\r\n")
        for header in self.headers { buffer.writeString("\(header.name): \(header.value)\r\n") }
        buffer.writeStaticString("\r\n")
        buffer.writeString(self.text)
        return buffer
    }
}
