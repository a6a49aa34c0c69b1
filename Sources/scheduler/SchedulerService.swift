import Shared

/// Wakes on new work (hint from intake) and on a fallback period. The claim logic arrives with the
/// dispatch chain (issue: step 3); today it reports the queue it would work on.
final class SchedulerService: SweepingService {
    private var queued: Int64 = 0

    init() { super.init(wakeName: "scheduler", fallbackPeriod: .seconds(1)) }

    override func sweep() throws {
        queued = try runtime.db.scalarInt("SELECT count(*) FROM tasks WHERE status = 'queued'") ?? 0
    }

    override var statusText: String { "\(queued) queued" }
}
