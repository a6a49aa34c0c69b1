/// A daemon that works in sweeps: on a wake hint (low latency) and on a fallback period (lost
/// hints, timers such as not_before). The scheduler and the poller are built on it.
open class SweepingService: DaemonService {
    public let wakeName: String
    public let fallbackPeriod: Duration
    public private(set) var runtime: DaemonRuntime!
    public private(set) var consecutiveFailures = 0
    private var wake: WakeChannel?
    private var sweepTimer: EventLoop.Handle?
    private var stopping = false

    public init(wakeName: String, fallbackPeriod: Duration) {
        self.wakeName = wakeName
        self.fallbackPeriod = fallbackPeriod
    }

    open func start(_ runtime: DaemonRuntime) throws {
        self.runtime = runtime
        let wake = try WakeChannel(runDirectory: runtime.configuration.runDirectory, name: wakeName)
        self.wake = wake
        runtime.loop.watch(fd: wake.fd) { [unowned self] _ in
            wake.drain()
            self.runSweep()
        }
        sweepTimer = runtime.loop.schedule(after: .zero, repeating: fallbackPeriod) { [unowned self] in self.runSweep() }
    }

    /// Runs one sweep now (also called by subclasses that know more work is waiting).
    public func runSweep() {
        guard !stopping else { return }
        if runtime.step("\(wakeName) sweep", { try sweep() }) {
            consecutiveFailures = 0
        } else {
            consecutiveFailures += 1
        }
    }

    /// One pass over the work. Subclasses override.
    open func sweep() throws {}

    open var statusText: String { "idle" }

    /// Persistent failures (a database that keeps refusing) withhold the watchdog, so the
    /// service manager restarts the process rather than letting it spin uselessly.
    open var isHealthy: Bool { consecutiveFailures < 20 }

    open func beginShutdown() { stopping = true }
    open var isDrained: Bool { true }
}
