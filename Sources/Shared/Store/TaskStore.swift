/// A change a daemon or an operator wants to make to a task. Each maps to exactly one edge of
/// `TaskStateMachine` (fail resolves its `failed` state through the retry policy at once).
public enum TaskChange: Sendable, Equatable {
    /// queued -> claimed; the attempt number goes up by one.
    case claim(profile: String)
    /// claimed -> dispatched.
    case dispatch(agentID: Int64)
    /// dispatched -> running: the first sign of life from the agent.
    case start
    case succeed(TaskResult)
    /// -> failed, then at once -> queued (backoff), dead (attempts exhausted) or needs_review
    /// (not retryable).
    case fail(error: String, retryable: Bool, result: TaskResult?)
    /// -> needs_review: the agent asks for an operator.
    case requestReview(reason: String, result: TaskResult?)
    case cancel(reason: String)
    /// Operator: failed, dead, canceled or needs_review -> queued, with one more attempt allowed.
    case retry(reason: String)
    /// Operator: needs_review -> succeeded.
    case accept(reason: String)

    /// The status this change moves a task to (before any retry decision).
    public var target: TaskStatus {
        switch self {
        case .claim: return .claimed
        case .dispatch: return .dispatched
        case .start: return .running
        case .succeed, .accept: return .succeeded
        case .fail: return .failed
        case .requestReview: return .needsReview
        case .cancel: return .canceled
        case .retry: return .queued
        }
    }

    /// The task_events kind written when the change applies.
    var eventKind: String {
        switch self {
        case .claim: return "claimed"
        case .dispatch: return "dispatched"
        case .start: return "started"
        case .succeed: return "succeeded"
        case .fail: return "failed"
        case .requestReview: return "needs_review"
        case .cancel: return "canceled"
        case .retry: return "retry_requested"
        case .accept: return "accepted"
        }
    }
}

/// What `TaskStore.apply` did.
public enum TransitionOutcome: Sendable, Equatable {
    /// The change applied; the task is now in `status` (after any retry decision).
    case applied(status: TaskStatus, attempt: Int)
    /// The caller's attempt is not the task's attempt: nothing changed (the stale report is kept
    /// as a task event).
    case staleAttempt(current: Int, status: TaskStatus)
    /// The task's status has no edge to the change's target: nothing changed.
    case forbidden(from: TaskStatus, to: TaskStatus)
    case notFound

    public var didApply: Bool { if case .applied = self { return true }; return false }
}

/// The task table's one door for status changes, and the reads that go with it.
public struct TaskStore {
    public let db: Database
    public var retryPolicy: RetryPolicy
    /// Random source for retry jitter; injectable so tests are deterministic.
    public var random: @Sendable () -> Double = { Double.random(in: 0..<1) }

    public init(db: Database, retryPolicy: RetryPolicy = RetryPolicy()) {
        self.db = db
        self.retryPolicy = retryPolicy
    }

    public func task(id: Int64) throws -> TaskRecord? {
        try db.queryOne("SELECT \(TaskRecord.columns) FROM tasks WHERE id = ?1", id, map: TaskRecord.decode)
    }

    /// Tasks matching a condition written in this codebase (never from request text: values go
    /// in `arguments`), for the API's views.
    public func tasks(matching condition: String, _ arguments: [SQLBindable], order: String, limit: Int) throws -> [TaskRecord] {
        try db.query("SELECT \(TaskRecord.columns) FROM tasks WHERE \(condition) ORDER BY \(order) LIMIT \(max(1, limit))",
                     arguments: arguments, map: TaskRecord.decode)
    }

    /// Claimed tasks waiting for an agent, most urgent first (the poller's dispatch queue).
    public func claimedTasks(limit: Int) throws -> [TaskRecord] {
        try db.query("SELECT \(TaskRecord.columns) FROM tasks WHERE status = 'claimed' ORDER BY priority DESC, claimed_at LIMIT ?1",
                     limit, map: TaskRecord.decode)
    }

    /// How many tasks are in any of `statuses` (from the trigger-kept counters: O(1), no lock).
    public func count(in statuses: [TaskStatus]) throws -> Int64 {
        guard !statuses.isEmpty else { return 0 }
        // The list is spelled out (status names are this code's own constants): one cached
        // statement per set, and no json_each table to build on every idle check.
        let list = statuses.map { "'\($0.rawValue)'" }.joined(separator: ",")
        return try db.scalarInt("SELECT coalesce(sum(n), 0) FROM task_counts WHERE status IN (\(list))") ?? 0
    }

    /// Every task holding a lane slot (claimed, dispatched, running).
    public func activeTasks() throws -> [TaskRecord] {
        try db.query("SELECT \(TaskRecord.columns) FROM tasks WHERE status IN (\(TaskStatus.activeSQLList)) ORDER BY id",
                     map: TaskRecord.decode)
    }

    /// What a caller already read of a task inside the current write transaction.
    public struct KnownState: Sendable, Equatable {
        public var status: TaskStatus
        public var attempt: Int
        public var maxAttempts: Int
        public init(status: TaskStatus, attempt: Int, maxAttempts: Int) {
            self.status = status
            self.attempt = attempt
            self.maxAttempts = maxAttempts
        }

        /// From a row that starts with `status, attempt, max_attempts`.
        public static func decode(_ row: Row, task id: Int64) throws -> KnownState {
            guard let status = TaskStatus(rawValue: row.string(0)) else {
                throw SchemaError(message: "task \(id) has an unknown status")
            }
            return KnownState(status: status, attempt: row.int(1), maxAttempts: row.int(2))
        }
    }

    /// An attempt's first sign of life, handed to the change that ends the attempt when both
    /// arrived together (an agent's first line and its result in one batch of output). A task
    /// still `dispatched` then records its start with the same write: the `started` event, then
    /// started_at and last_event_at in the finishing UPDATE. Nothing can observe the `running`
    /// state in between inside one transaction, so it is not written on its own.
    public struct FoldedStart: Sendable, Equatable {
        public var at: Microseconds
        public var lastEventAt: Microseconds
        public init(at: Microseconds, lastEventAt: Microseconds) {
            self.at = at
            self.lastEventAt = lastEventAt
        }
    }

    /// The status, attempt and attempt limit of a task, for `apply(_:to:attempt:known:)`.
    public func state(of id: Int64) throws -> KnownState? {
        try db.queryOne("SELECT status, attempt, max_attempts FROM tasks WHERE id = ?1", id) { try KnownState.decode($0, task: id) }
    }

    /// Applies `change` to task `id` if and only if the task is still at `attempt` and the state
    /// machine allows the edge. Runs in one write transaction (joins the caller's if any).
    ///
    /// Fencing: an agent, poller or operator acting on an old attempt must never overwrite the
    /// outcome of a newer one. A stale report changes nothing and is recorded as evidence.
    ///
    /// `known`: the task's state as the caller read it in the same write transaction (saves a
    /// read on hot paths). Every UPDATE is fenced on it anyway; should it be wrong, the change
    /// is decided again from a fresh read.
    ///
    /// `foldedStart`: see `FoldedStart`; used only when a finishing change (succeed, fail,
    /// review) applies to a task that is still `dispatched`.
    @discardableResult
    public func apply(_ change: TaskChange, to id: Int64, attempt: Int, source: String,
                      at now: Microseconds = WallClock.now(), known: KnownState? = nil,
                      foldedStart: FoldedStart? = nil) throws -> TransitionOutcome {
        try db.write {
            if let known, let outcome = try decide(change, id: id, attempt: attempt, current: known, source: source, now: now,
                                                  foldedStart: foldedStart, fenceFailure: .returnNil) {
                return outcome
            }
            guard let current = try state(of: id) else { return .notFound }
            return try decide(change, id: id, attempt: attempt, current: current, source: source, now: now,
                              foldedStart: foldedStart, fenceFailure: .fail)!
        }
    }

    private enum FenceFailure { case returnNil, fail }

    private func decide(_ change: TaskChange, id: Int64, attempt: Int, current: KnownState, source: String,
                        now: Microseconds, foldedStart: FoldedStart?, fenceFailure: FenceFailure) throws -> TransitionOutcome? {
        let status = current.status
        guard current.attempt == attempt else {
            if fenceFailure == .returnNil { return nil }  // confirm from a fresh read before recording a stale report
            try appendEvent(task: id, attempt: attempt, kind: "stale_report_ignored", source: source, at: now,
                            payload: ["change": .string(change.eventKind), "current_attempt": .int(Int64(current.attempt)),
                                      "current_status": .string(status.rawValue)])
            return .staleAttempt(current: current.attempt, status: status)
        }
        guard TaskStateMachine.allows(from: status, to: change.target) else {
            return fenceFailure == .returnNil ? nil : .forbidden(from: status, to: change.target)
        }
        // Accepting is an operator's verdict on a result under review, not a way to end a live attempt.
        if case .accept = change, status != .needsReview {
            return fenceFailure == .returnNil ? nil : .forbidden(from: status, to: change.target)
        }
        return try write(change, task: id, from: status, attempt: attempt, maxAttempts: current.maxAttempts,
                         source: source, now: now, foldedStart: foldedStart, fenceFailure: fenceFailure)
    }

    private func write(_ change: TaskChange, task id: Int64, from status: TaskStatus, attempt: Int, maxAttempts: Int,
                       source: String, now: Microseconds, foldedStart: FoldedStart?, fenceFailure: FenceFailure) throws -> TransitionOutcome? {
        // Every UPDATE repeats the fence (id, attempt, status) so that even a logic slip above
        // cannot write over a row that moved.
        let fence = "WHERE id = ?1 AND attempt = ?2 AND status = ?3"
        var changed = 0
        // A folded start applies to a finishing change on a task that is still dispatched.
        let finishStart: FoldedStart?
        switch change {
        case .succeed, .fail, .requestReview: finishStart = status == .dispatched ? foldedStart : nil
        default: finishStart = nil
        }
        // Once the UPDATE applied: the folded start's event goes before the finishing one, as if
        // it had been written on its own.
        func recordFoldedStart() throws {
            guard let finishStart else { return }
            try appendEvent(task: id, attempt: attempt, kind: TaskChange.start.eventKind, source: source, at: finishStart.at,
                            payload: ["from": .string(status.rawValue), "folded": .bool(true)])
        }
        var finalAttempt = attempt
        var payload: [String: JSON] = ["from": .string(status.rawValue)]
        switch change {
        case .claim(let profile):
            finalAttempt = attempt + 1
            changed = try db.run("""
                UPDATE tasks SET status = 'claimed', attempt = attempt + 1, profile = ?4, claimed_at = ?5,
                    dispatched_at = NULL, started_at = NULL, finished_at = NULL, last_event_at = NULL,
                    agent_id = NULL, blocked_reason = NULL, error = NULL, updated_at = ?5 \(fence)
                """, id, attempt, status.rawValue, profile, now)
            payload["profile"] = .string(profile)
        case .dispatch(let agentID):
            changed = try db.run("""
                UPDATE tasks SET status = 'dispatched', agent_id = ?4, dispatched_at = ?5, updated_at = ?5 \(fence)
                """, id, attempt, status.rawValue, agentID, now)
            payload["agent_id"] = .int(agentID)
        case .start:
            changed = try db.run("""
                UPDATE tasks SET status = 'running', started_at = ?4, last_event_at = ?4, updated_at = ?4 \(fence)
                """, id, attempt, status.rawValue, now)
        case .succeed(let result):
            changed = try finish(id, attempt, status, to: .succeeded, result: result, error: nil, now: now, start: finishStart)
            payload.merge(result.eventPayload) { $1 }
        case .requestReview(let reason, let result):
            changed = try finish(id, attempt, status, to: .needsReview, result: result, error: reason, now: now, start: finishStart)
            payload["reason"] = .string(reason)
            if let result { payload.merge(result.eventPayload) { $1 } }
        case .cancel(let reason):
            changed = try finish(id, attempt, status, to: .canceled, result: nil, error: reason, now: now)
            payload["reason"] = .string(reason)
        case .accept(let reason):
            changed = try db.run("""
                UPDATE tasks SET status = 'succeeded', finished_at = ?4, updated_at = ?4 \(fence)
                """, id, attempt, status.rawValue, now)
            payload["reason"] = .string(reason)
        case .retry(let reason):
            // An operator's retry grants one more attempt beyond the one used up.
            changed = try db.run("""
                UPDATE tasks SET status = 'queued', not_before = 0, cancel_requested = 0, blocked_reason = NULL,
                    finished_at = NULL, max_attempts = max(max_attempts, attempt + 1), updated_at = ?4 \(fence)
                """, id, attempt, status.rawValue, now)
            payload["reason"] = .string(reason)
        case .fail(let error, let retryable, let result):
            changed = try finish(id, attempt, status, to: .failed, result: result, error: error, now: now, start: finishStart)
            payload["error"] = .string(error)
            payload["retryable"] = .bool(retryable)
            if let result { payload.merge(result.eventPayload) { $1 } }
            guard changed == 1 else { break }
            try recordFoldedStart()
            try appendEvent(task: id, attempt: attempt, kind: change.eventKind, source: source, at: now, payload: payload)
            // The failed state is resolved in the same transaction: it never persists on its own.
            let decision = retryPolicy.decide(attempt: attempt, maxAttempts: maxAttempts, retryable: retryable, random: random())
            return try resolveFailure(id, attempt: attempt, decision: decision, source: source, now: now)
        }
        guard changed == 1 else {
            // A caller's belief was wrong (nothing was written): decide again from a fresh read.
            if fenceFailure == .returnNil { return nil }
            throw SchemaError(message: "task \(id) moved under a write lock (fence failed); refusing to continue")
        }
        try recordFoldedStart()
        try appendEvent(task: id, attempt: finalAttempt, kind: change.eventKind, source: source, at: now, payload: payload)
        return .applied(status: change.target, attempt: finalAttempt)
    }

    private func finish(_ id: Int64, _ attempt: Int, _ status: TaskStatus, to target: TaskStatus,
                        result: TaskResult?, error: String?, now: Microseconds, start: FoldedStart? = nil) throws -> Int {
        // Cost and tokens accumulate across attempts: a failed attempt still spent money.
        try db.run("""
            UPDATE tasks SET status = ?4, finished_at = ?5, updated_at = ?5,
                error = ?6, result_summary = coalesce(?7, result_summary),
                cost_usd = cost_usd + ?8, input_tokens = input_tokens + ?9, output_tokens = output_tokens + ?10,
                cache_read_tokens = cache_read_tokens + ?11, cache_write_tokens = cache_write_tokens + ?12,
                started_at = coalesce(?13, started_at), last_event_at = coalesce(?14, last_event_at)
            WHERE id = ?1 AND attempt = ?2 AND status = ?3
            """, id, attempt, status.rawValue, target.rawValue, now, error, result?.summary,
            result?.costUSD ?? 0, result?.usage.input ?? 0, result?.usage.output ?? 0,
            result?.usage.cacheRead ?? 0, result?.usage.cacheWrite ?? 0, start?.at, start?.lastEventAt)
    }

    private func resolveFailure(_ id: Int64, attempt: Int, decision: RetryPolicy.Decision, source: String,
                                now: Microseconds) throws -> TransitionOutcome {
        let fence = "WHERE id = ?1 AND attempt = ?2 AND status = 'failed'"
        switch decision {
        case .retry(let delay):
            let notBefore = now + Int64(delay.nanosecondsClamped / 1_000)
            try db.run("UPDATE tasks SET status = 'queued', not_before = ?3, finished_at = NULL, updated_at = ?4 \(fence)",
                       id, attempt, notBefore, now)
            try appendEvent(task: id, attempt: attempt, kind: "retry_scheduled", source: source, at: now,
                            payload: ["not_before": .int(notBefore), "delay_ms": .int(Int64(delay.nanosecondsClamped / 1_000_000))])
            return .applied(status: .queued, attempt: attempt)
        case .dead:
            try db.run("UPDATE tasks SET status = 'dead', updated_at = ?3 \(fence)", id, attempt, now)
            try appendEvent(task: id, attempt: attempt, kind: "dead", source: source, at: now,
                            payload: ["reason": "attempts exhausted"])
            return .applied(status: .dead, attempt: attempt)
        case .review:
            try db.run("UPDATE tasks SET status = 'needs_review', updated_at = ?3 \(fence)", id, attempt, now)
            try appendEvent(task: id, attempt: attempt, kind: "needs_review", source: source, at: now,
                            payload: ["reason": "failure is not retryable"])
            return .applied(status: .needsReview, attempt: attempt)
        }
    }

    /// Appends to the task's history. task_events is append-only (triggers refuse UPDATE and DELETE).
    public func appendEvent(task id: Int64, attempt: Int, kind: String, source: String,
                            at now: Microseconds = WallClock.now(), payload: [String: JSON] = [:]) throws {
        try db.run("INSERT INTO task_events (task_id, attempt, kind, payload, source, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                   id, attempt, kind, JSON.object(payload).serialized(), source, now)
    }

    public func events(task id: Int64, after cursor: Int64 = 0, limit: Int = 1000) throws -> [TaskEvent] {
        try db.query("""
            SELECT id, task_id, attempt, kind, payload, source, at FROM task_events
            WHERE task_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3
            """, id, cursor, limit) { row in
            TaskEvent(id: row.int64(0), taskID: row.int64(1), attempt: row.int(2), kind: row.string(3),
                      payload: (try? JSON.parse(row.string(4))) ?? .object([:]), source: row.string(5), at: row.int64(6))
        }
    }

    /// Moves last_event_at for a live attempt (not a status change: no transition, no event).
    public func touch(id: Int64, attempt: Int, at now: Microseconds) throws {
        try db.run("""
            UPDATE tasks SET last_event_at = max(coalesce(last_event_at, 0), ?3) WHERE id = ?1 AND attempt = ?2
                AND status IN ('dispatched', 'running')
            """, id, attempt, now)
    }

    /// Records an operator's cancel request. A task that holds no agent is canceled at once; an
    /// active one is flagged, and the poller stops its agent and then cancels the attempt.
    public func requestCancel(id: Int64, reason: String, source: String,
                              at now: Microseconds = WallClock.now()) throws -> TransitionOutcome {
        try db.write {
            guard let task = try task(id: id) else { return .notFound }
            switch task.status {
            case .queued, .needsReview, .claimed:
                return try apply(.cancel(reason: reason), to: id, attempt: task.attempt, source: source, at: now)
            case .dispatched, .running:
                try db.run("UPDATE tasks SET cancel_requested = 1, error = ?3, updated_at = ?2 WHERE id = ?1", id, now, reason)
                try appendEvent(task: id, attempt: task.attempt, kind: "cancel_requested", source: source, at: now,
                                payload: ["reason": .string(reason)])
                return .applied(status: task.status, attempt: task.attempt)
            case .succeeded, .failed, .canceled, .dead:
                return .forbidden(from: task.status, to: .canceled)
            }
        }
    }
}

public struct TaskEvent: Sendable, Equatable {
    public var id: Int64
    public var taskID: Int64
    public var attempt: Int
    public var kind: String
    public var payload: JSON
    public var source: String
    public var at: Microseconds
}

extension TaskResult {
    var eventPayload: [String: JSON] {
        var payload: [String: JSON] = ["cost_usd": .double(costUSD), "usage": usage.json]
        if let summary { payload["summary"] = .string(String(summary.prefix(500))) }
        return payload
    }
}
