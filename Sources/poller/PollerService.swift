import Shared

/// Resumes from its cursor over agent_output. The dispatch and observation logic arrives with the
/// dispatch chain (step 3).
final class PollerService: SweepingService {
    private var cursor: Int64 = 0

    init() { super.init(wakeName: "poller", fallbackPeriod: .seconds(1)) }

    override func start(_ runtime: DaemonRuntime) throws {
        try super.start(runtime)
        cursor = try CursorStore(db: runtime.db).position("poller.agent_output")
    }

    override var statusText: String { "cursor at \(cursor)" }
}
