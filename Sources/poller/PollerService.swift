import Shared

/// Dispatches claimed tasks to agents and turns agent output into task state. Wakes on hints
/// from the scheduler (claims) and the supervisor (output), and sweeps on a fallback period.
final class PollerService: SweepingService {
    private var dispatcher: Dispatcher!
    private var observer: OutputObserver!
    private var watch: AttemptWatch!
    private var lastWatch = MonotonicInstant(nanoseconds: 0)

    init() { super.init(wakeName: "poller", fallbackPeriod: .milliseconds(500)) }

    override func start(_ runtime: DaemonRuntime) throws {
        let catalog = try ProfileCatalog.load(configuration: runtime.configuration, binaryDirectory: BinaryLocation.directory)
        observer = try OutputObserver(runtime: runtime, catalog: catalog)
        dispatcher = Dispatcher(runtime: runtime, catalog: catalog)
        watch = AttemptWatch(runtime: runtime, catalog: catalog, observer: observer)
        try super.start(runtime)
    }

    override func sweep() throws {
        // Output first: results free agents and lanes for the dispatch that follows, in the same
        // transaction (one commit: a freed rpc agent gets its next prompt at once).
        let saved = observer.checkpoint()
        var observed = OutputObserver.Report()
        var dispatched = 0
        do {
            let rows = try observer.prefetch()
            // Idle: no output and nothing claimed; the write lock is not worth taking.
            if rows.isEmpty, try TaskStore(db: runtime.db).count(in: [.claimed]) == 0 {
                try watchIfDue()
                return
            }
            try runtime.db.write {
                observed = try observer.consume(try observer.topUp(rows))
                let outcome = try dispatcher.dispatchClaimed(freed: observed.freedAgents)
                dispatched = outcome.dispatched
                observed.idleAgents += outcome.released
            }
        } catch {
            observer.restore(saved)  // the transaction rolled back; so does what it taught us
            throw error
        }
        try watchIfDue()
        if observed.finishedTasks > 0 || observed.idleAgents > 0 { runtime.wakeSender.nudge("scheduler") }
        if observed.moreWaiting || (observed.idleAgents > 0 && dispatched == 0 && dispatcher.hasWaitingClaims) {
            runtime.loop.schedule(after: .zero) { [unowned self] in self.runSweep() }
        }
    }

    private func watchIfDue() throws {
        let now = MonotonicInstant.now()
        if now.duration(since: lastWatch) >= .milliseconds(250) {
            lastWatch = now
            try watch.check()
        }
    }

    override var statusText: String { "cursor at \(observer?.cursor ?? 0), \(dispatcher?.dispatchedTotal ?? 0) dispatched" }
}
