/// A binary min-heap of timed events, ordered by (time, insertion order) so equal times replay
/// in a fixed order.
struct EventHeap<Payload> {
    struct Event {
        var time: Duration
        var seq: UInt64
        var payload: Payload

        func precedes(_ other: Event) -> Bool {
            time != other.time ? time < other.time : seq < other.seq
        }
    }

    private var items: [Event] = []
    private var counter: UInt64 = 0

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var first: Event? { items.first }

    mutating func push(_ payload: Payload, at time: Duration) {
        counter += 1
        items.append(Event(time: time, seq: counter, payload: payload))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Event? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, items[l].precedes(items[m]) { m = l }
            if r < items.count, items[r].precedes(items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
extension EventHeap: Sendable where Payload: Sendable {}
extension EventHeap.Event: Sendable where Payload: Sendable {}
