/// Splits a byte stream into lines with a hard cap on line length, so memory is bounded by the
/// cap whatever the producer writes: a longer line keeps its first `maxLineBytes` bytes, is marked
/// truncated, and the rest up to the next newline is discarded. A pure value: tests feed it bytes.
public struct LineSplitter: Sendable {
    public struct Line: Sendable, Equatable {
        public var text: String
        public var truncated: Bool
    }

    public let maxLineBytes: Int
    private var partial: [UInt8] = []
    private var discarding = false

    public init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes currently held for an unfinished line (never more than maxLineBytes).
    public var bufferedBytes: Int { partial.count }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, into lines: inout [Line]) {
        var start = 0
        let count = bytes.count
        while start < count {
            // memchr-speed scan for the next newline.
            let rest = UnsafeRawBufferPointer(rebasing: bytes[start..<count])
            let newline = rest.firstIndex(of: 0x0a).map { start + $0 }
            let end = newline ?? count
            if !discarding {
                let room = maxLineBytes - partial.count
                let take = min(room, end - start)
                if take > 0 { partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + take)])) }
                if end - start > room { discarding = true }
            }
            guard let newline else { return }
            emit(into: &lines)
            start = newline + 1
        }
    }

    /// The last line when the stream ends without a newline.
    public mutating func finish(into lines: inout [Line]) {
        if !partial.isEmpty || discarding { emit(into: &lines) }
    }

    private mutating func emit(into lines: inout [Line]) {
        var bytes = partial
        if bytes.last == 0x0d { bytes.removeLast() }  // CRLF
        // Invalid UTF-8 becomes U+FFFD rather than an error: agent output is evidence, keep it.
        lines.append(Line(text: String(decoding: bytes, as: UTF8.self), truncated: discarding))
        partial.removeAll(keepingCapacity: partial.count <= 65_536)
        discarding = false
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var last: MonotonicInstant

    public init(rate: Double, burst: Double, now: MonotonicInstant = .now()) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now
    }

    private mutating func refill(_ now: MonotonicInstant) {
        tokens = min(burst, tokens + now.duration(since: last).secondsDouble * rate)
        last = now
    }

    /// Takes `count` tokens, going into debt if needed. Returns how long to pause until the debt
    /// is paid (zero when there was enough).
    public mutating func take(_ count: Double, now: MonotonicInstant = .now()) -> Duration {
        refill(now)
        tokens -= count
        return tokens >= 0 ? .zero : .microseconds(Int64(-tokens / rate * 1_000_000))
    }

    /// Tokens available now (may be negative while in debt).
    public mutating func available(now: MonotonicInstant = .now()) -> Double {
        refill(now)
        return tokens
    }

    /// Takes one token if available (for dropping what exceeds the rate).
    public mutating func tryTake(now: MonotonicInstant = .now()) -> Bool {
        refill(now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
