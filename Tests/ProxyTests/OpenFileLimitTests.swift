import Proxy
import Testing

@Suite(.serialized) struct OpenFileLimitTests {
    @Test func aLowSoftLimitIsRaisedToTheHardLimit() throws {
        let before = try #require(OpenFileLimit.current)
        defer { OpenFileLimit.setSoftLimit(before.soft) }
        let low = min(before.hard, 256)
        try #require(OpenFileLimit.setSoftLimit(low))
        #expect(OpenFileLimit.current?.soft == low)
        // Wanting no more than the hard limit never touches the hard limit.
        #expect(OpenFileLimit.raise(toAtLeast: before.hard) == before.hard)
        #expect(OpenFileLimit.current?.hard == before.hard)
    }

    @Test func wantingMoreThanTheHardLimitGetsItOrTheHardLimit() throws {
        let before = try #require(OpenFileLimit.current)
        try #require(OpenFileLimit.setSoftLimit(min(before.hard, 256)))
        let wanted = before.hard + 1
        let after = try #require(OpenFileLimit.raise(toAtLeast: wanted))
        let now = try #require(OpenFileLimit.current)
        // A privileged process (CAP_SYS_RESOURCE) gets what it wants; any other the hard limit.
        #expect(after == now.soft && now.soft == now.hard)
        #expect(now.hard == wanted || now.hard == before.hard)
    }
}
