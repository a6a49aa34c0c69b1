import Glibc

/// Wall-clock time as integer microseconds since the Unix epoch: the unit of every *_at column.
public typealias Microseconds = Int64

public enum WallClock {
    public static func now() -> Microseconds {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
    }
}

/// Monotonic time for deadlines and intervals; never jumps with the wall clock.
public struct MonotonicInstant: Comparable, Sendable, Hashable {
    public let nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool { a.nanoseconds < b.nanoseconds }

    public func adding(_ duration: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds &+ duration.nanosecondsClamped)
    }

    public func duration(since earlier: MonotonicInstant) -> Duration {
        nanoseconds >= earlier.nanoseconds
            ? .nanoseconds(Int64(nanoseconds - earlier.nanoseconds))
            : .nanoseconds(-Int64(earlier.nanoseconds - nanoseconds))
    }
}

extension Duration {
    /// Whole nanoseconds, clamped at zero and at UInt64.max.
    public var nanosecondsClamped: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let (ns, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        return ns &+ UInt64(attoseconds / 1_000_000_000)
    }

    public var millisecondsClamped: Int {
        Int(min(nanosecondsClamped / 1_000_000, UInt64(Int32.max)))
    }

    /// "850us", "12ms", "1.49s", "2m05s": for log lines.
    public var short: String {
        let ns = nanosecondsClamped
        if ns < 1_000_000 { return "\(ns / 1000)us" }
        if ns < 1_000_000_000 { return "\(ns / 1_000_000)ms" }
        let seconds = secondsDouble
        if seconds < 120 { return "\((seconds * 100).rounded() / 100)s" }
        let whole = Int(seconds)
        return "\(whole / 60)m\(whole % 60 < 10 ? "0" : "")\(whole % 60)s"
    }

    public var secondsDouble: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
