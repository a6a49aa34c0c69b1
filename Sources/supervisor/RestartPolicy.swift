import Shared

/// When a component that died is started again, with systemd's semantics (systemd.service(5)
/// Restart=on-failure, RestartSec, RestartSteps/RestartMaxDelaySec; systemd.unit(5)
/// StartLimitIntervalSec/StartLimitBurst): the first restart is fast, each consecutive failure
/// doubles the delay up to a cap, a stable run resets the steps, and too many failures within the
/// interval mark the component failed instead of restarting it in a hot loop.
struct RestartPolicy: Equatable {
    var firstDelay: Duration = .milliseconds(100)
    var maxDelay: Duration = .seconds(30)
    /// A run at least this long (from start to exit) resets the delay to `firstDelay`.
    var stablePeriod: Duration = .seconds(60)
    var startLimitBurst = 5
    var startLimitInterval: Duration = .seconds(60)

    enum Decision: Equatable {
        case restart(after: Duration)
        case giveUp(reason: String)
    }

    /// The failure history one component needs for the decision.
    struct History: Equatable {
        var consecutiveFailures = 0
        var failureTimes: [MonotonicInstant] = []
    }

    /// Records a failure at `now` of a run that lasted `runTime`, and decides.
    func recordFailure(_ history: inout History, now: MonotonicInstant, runTime: Duration) -> Decision {
        if runTime >= stablePeriod { history.consecutiveFailures = 0 }
        history.consecutiveFailures += 1
        history.failureTimes.append(now)
        let windowStart = now.nanoseconds > startLimitInterval.nanosecondsClamped
            ? MonotonicInstant(nanoseconds: now.nanoseconds - startLimitInterval.nanosecondsClamped)
            : MonotonicInstant(nanoseconds: 0)
        history.failureTimes.removeAll { $0 < windowStart }
        if history.failureTimes.count > startLimitBurst {
            return .giveUp(reason: "\(history.failureTimes.count) failures within \(startLimitInterval.short) (start limit \(startLimitBurst))")
        }
        return .restart(after: delay(forFailure: history.consecutiveFailures))
    }

    /// The first failure restarts at once (a crash is usually a one-off, and every millisecond
    /// here is an outage); then firstDelay * 2^(n-2), capped.
    func delay(forFailure n: Int) -> Duration {
        if n <= 1 { return .zero }
        let factor = Double(1 << max(0, min(n - 2, 30)))
        let seconds = min(firstDelay.secondsDouble * factor, maxDelay.secondsDouble)
        return .microseconds(Int64(seconds * 1_000_000))
    }
}
