/// The operator's views of the queue (the dashboard's tabs, /control/api/queues/{view}).
public enum TaskQueueView: String, CaseIterable, Sendable {
    /// Holding a lane slot: claimed, dispatched, running.
    case active
    /// Waiting to be claimed (including parked tasks and retries waiting for their backoff).
    case queued
    /// Needs an operator: results under review, dead tasks, parked tasks.
    case attention
    /// Succeeded.
    case done
    /// Queued again after a failed attempt (the retry backlog), or canceled.
    case failed
    /// Attempts exhausted.
    case dead

    /// A SQL condition over tasks (constant text; no request data).
    public var condition: String {
        switch self {
        case .active: return "status IN (\(TaskStatus.activeSQLList))"
        case .queued: return "status = 'queued'"
        case .attention: return "(status IN ('needs_review', 'dead') OR (status = 'queued' AND blocked_reason IS NOT NULL))"
        case .done: return "status = 'succeeded'"
        case .failed: return "((status = 'queued' AND attempt > 0 AND error IS NOT NULL) OR status = 'canceled')"
        case .dead: return "status = 'dead'"
        }
    }
}
