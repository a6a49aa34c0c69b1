/// What happens to a failed attempt: capped exponential backoff with jitter, then dead; a failure
/// that retrying cannot fix goes to an operator (needs_review).
public struct RetryPolicy: Sendable, Equatable {
    /// Delay before the second attempt; doubles for each further one.
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Fraction of the delay drawn at random (+/-), so retries of a burst do not stampede together.
    public var jitter: Double

    public init(baseDelay: Duration = .seconds(10), maxDelay: Duration = .seconds(300), jitter: Double = 0.2) {
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    public enum Decision: Equatable, Sendable {
        case retry(after: Duration)
        case dead
        case review
    }

    /// `attempt` is the attempt that just failed (1-based).
    public func decide(attempt: Int, maxAttempts: Int, retryable: Bool,
                       random: Double = Double.random(in: 0..<1)) -> Decision {
        guard retryable else { return .review }
        guard attempt < maxAttempts else { return .dead }
        return .retry(after: delay(afterAttempt: attempt, random: random))
    }

    /// baseDelay * 2^(attempt-1), capped at maxDelay, then +/- jitter.
    public func delay(afterAttempt attempt: Int, random: Double) -> Duration {
        let exponent = max(0, min(attempt - 1, 30))
        let raw = min(baseDelay.secondsDouble * Double(1 << exponent), maxDelay.secondsDouble)
        let spread = raw * jitter * (random * 2 - 1)
        let seconds = max(0, min(raw + spread, maxDelay.secondsDouble))
        return .microseconds(Int64(seconds * 1_000_000))
    }
}
