/// One row of `tasks`, as the daemons and the API read it.
public struct TaskRecord: Sendable, Equatable {
    public var id: Int64
    public var title: String
    public var prompt: String
    public var lane: String
    public var priority: Int
    public var capabilities: [String]
    public var profile: String?
    public var status: TaskStatus
    public var attempt: Int
    public var maxAttempts: Int
    public var notBefore: Microseconds
    public var createdAt: Microseconds
    public var updatedAt: Microseconds
    public var claimedAt: Microseconds?
    public var dispatchedAt: Microseconds?
    public var startedAt: Microseconds?
    public var finishedAt: Microseconds?
    public var lastEventAt: Microseconds?
    public var agentID: Int64?
    public var costUSD: Double
    public var usage: TokenUsage
    public var resultSummary: String?
    public var error: String?
    public var blockedReason: String?
    public var idempotencyKey: String?
    public var requestHash: String?
    public var requestedBy: String
    public var cancelRequested: Bool
    public var budgetUSD: Double?

    /// The state `TaskStore.apply` fences on, as read with this record.
    public var knownState: TaskStore.KnownState {
        TaskStore.KnownState(status: status, attempt: attempt, maxAttempts: maxAttempts)
    }

    public static let columns = """
        id, title, prompt, lane, priority, capabilities, profile, status, attempt, max_attempts, not_before,
        created_at, updated_at, claimed_at, dispatched_at, started_at, finished_at, last_event_at, agent_id,
        cost_usd, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, result_summary, error,
        blocked_reason, idempotency_key, request_hash, requested_by, cancel_requested, budget_usd
        """

    /// Decodes a row selected with `columns`. A status the code does not know is a corrupt or
    /// newer database: say so instead of guessing.
    public static func decode(_ row: Row) throws -> TaskRecord {
        let statusText = row.string(7)
        guard let status = TaskStatus(rawValue: statusText) else {
            throw SchemaError(message: "task \(row.int64(0)) has unknown status '\(statusText)'")
        }
        let capabilitiesText = row.string(5)
        let capabilities = capabilitiesText == "[]" ? [] : (try? JSON.parse(capabilitiesText))?.arrayValue?.compactMap(\.stringValue) ?? []
        return TaskRecord(
            id: row.int64(0), title: row.string(1), prompt: row.string(2), lane: row.string(3),
            priority: row.int(4), capabilities: capabilities, profile: row.optionalString(6), status: status,
            attempt: row.int(8), maxAttempts: row.int(9), notBefore: row.int64(10), createdAt: row.int64(11),
            updatedAt: row.int64(12), claimedAt: row.optionalInt64(13), dispatchedAt: row.optionalInt64(14),
            startedAt: row.optionalInt64(15), finishedAt: row.optionalInt64(16), lastEventAt: row.optionalInt64(17),
            agentID: row.optionalInt64(18), costUSD: row.double(19),
            usage: TokenUsage(input: row.int64(20), output: row.int64(21), cacheRead: row.int64(22), cacheWrite: row.int64(23)),
            resultSummary: row.optionalString(24), error: row.optionalString(25), blockedReason: row.optionalString(26),
            idempotencyKey: row.optionalString(27), requestHash: row.optionalString(28), requestedBy: row.string(29),
            cancelRequested: row.bool(30), budgetUSD: row.optionalDouble(31))
    }
}

public struct TokenUsage: Sendable, Equatable {
    public var input: Int64
    public var output: Int64
    public var cacheRead: Int64
    public var cacheWrite: Int64

    public init(input: Int64 = 0, output: Int64 = 0, cacheRead: Int64 = 0, cacheWrite: Int64 = 0) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
    }

    public var json: JSON {
        ["input_tokens": .int(input), "output_tokens": .int(output),
         "cache_read_tokens": .int(cacheRead), "cache_write_tokens": .int(cacheWrite)]
    }
}

/// What an agent reported for an attempt.
public struct TaskResult: Sendable, Equatable {
    public var summary: String?
    public var costUSD: Double
    public var usage: TokenUsage

    public init(summary: String? = nil, costUSD: Double = 0, usage: TokenUsage = TokenUsage()) {
        self.summary = summary
        self.costUSD = costUSD
        self.usage = usage
    }
}
