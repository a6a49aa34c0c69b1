/// One row of `agents`.
public struct AgentRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        case starting, idle, busy, stopping, exited, lost, failed
        public var isLive: Bool { self == .starting || self == .idle || self == .busy || self == .stopping }
    }

    public var id: Int64
    public var profile: String
    public var mode: String
    public var state: State
    public var pid: Int32?
    public var processStartTime: Int64?
    public var supervisorIncarnation: Int64?
    public var taskID: Int64?
    public var taskAttempt: Int?
    public var createdAt: Microseconds
    public var heartbeatAt: Microseconds?
    public var exitStatus: Int?
    public var exitSignal: Int?
    public var stderrTail: String
    public var outputLines: Int64
    public var truncatedLines: Int64
    public var error: String?

    static let columns = """
        id, profile, mode, state, pid, process_start_time, supervisor_incarnation, task_id, task_attempt, created_at,
        heartbeat_at, exit_status, exit_signal, stderr_tail, output_lines, truncated_lines, error
        """

    static func decode(_ row: Row) throws -> AgentRecord {
        guard let state = State(rawValue: row.string(3)) else {
            throw SchemaError(message: "agent \(row.int64(0)) has unknown state '\(row.string(3))'")
        }
        return AgentRecord(id: row.int64(0), profile: row.string(1), mode: row.string(2), state: state,
                           pid: row.optionalInt64(4).map { Int32($0) }, processStartTime: row.optionalInt64(5),
                           supervisorIncarnation: row.optionalInt64(6), taskID: row.optionalInt64(7),
                           taskAttempt: row.optionalInt(8), createdAt: row.int64(9), heartbeatAt: row.optionalInt64(10),
                           exitStatus: row.optionalInt(11), exitSignal: row.optionalInt(12), stderrTail: row.string(13),
                           outputLines: row.int64(14), truncatedLines: row.int64(15), error: row.optionalString(16))
    }
}

public enum AgentCommandKind: String, Sendable {
    case spawn, prompt
    case closeStdin = "close_stdin"
    case signal, stop
}

/// A request in the supervisor's inbox.
public struct AgentCommand: Sendable, Equatable {
    public var id: Int64
    public var kind: AgentCommandKind
    public var agentID: Int64?
    public var taskID: Int64?
    public var taskAttempt: Int?
    public var payload: JSON
    public var requestedBy: String
}

/// What the supervisor appends for the poller: output lines and life events of agents.
public struct AgentOutputRow: Sendable, Equatable {
    public enum Kind: String, Sendable { case spawned, line, exit, spawnFailed = "spawn_failed", lost }
    public var id: Int64 = 0
    public var agentID: Int64
    public var taskID: Int64?
    public var attempt: Int?
    public var kind: Kind
    public var line: String?
    public var truncated: Bool = false
    public var at: Microseconds

    public init(id: Int64 = 0, agentID: Int64, taskID: Int64?, attempt: Int?, kind: Kind, line: String?,
                truncated: Bool = false, at: Microseconds = WallClock.now()) {
        self.id = id
        self.agentID = agentID
        self.taskID = taskID
        self.attempt = attempt
        self.kind = kind
        self.line = line
        self.truncated = truncated
        self.at = at
    }
}

public struct AgentStore {
    public let db: Database
    public init(db: Database) { self.db = db }

    // MARK: Agents

    /// A new agents row in state `starting`, before any process exists: the spawn command then
    /// refers to it, so a task can be dispatched to an agent id in the same transaction.
    public func createAgent(profile: AgentProfile, taskID: Int64? = nil, attempt: Int? = nil,
                            at now: Microseconds = WallClock.now()) throws -> Int64 {
        try db.run("""
            INSERT INTO agents (profile, mode, state, task_id, task_attempt, capabilities, created_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """, profile.name, profile.mode.rawValue, taskID == nil ? "starting" : "busy", taskID, attempt,
            JSON(profile.capabilities).serialized(), now)
        return db.lastInsertRowID
    }

    public func agent(id: Int64) throws -> AgentRecord? {
        try db.queryOne("SELECT \(AgentRecord.columns) FROM agents WHERE id = ?1", id, map: AgentRecord.decode)
    }

    public func liveAgents() throws -> [AgentRecord] {
        try db.query("SELECT \(AgentRecord.columns) FROM agents WHERE state IN ('starting','idle','busy','stopping') ORDER BY id",
                     map: AgentRecord.decode)
    }

    /// Live agents first, then the most recent others.
    public func recent(limit: Int) throws -> [AgentRecord] {
        try db.query("""
            SELECT \(AgentRecord.columns) FROM agents
            ORDER BY state IN ('starting','idle','busy','stopping') DESC, id DESC LIMIT ?1
            """, limit, map: AgentRecord.decode)
    }

    public func recordSpawn(agentID: Int64, pid: Int32, processStartTime: Int64?, incarnation: Int64,
                            state: AgentRecord.State, at now: Microseconds = WallClock.now()) throws {
        try db.run("""
            UPDATE agents SET pid = ?2, process_start_time = ?3, supervisor_incarnation = ?4, state = ?5,
                started_at = ?6, heartbeat_at = ?6 WHERE id = ?1
            """, agentID, pid, processStartTime, incarnation, state.rawValue, now)
    }

    public func setState(agentID: Int64, _ state: AgentRecord.State, taskID: Int64?, attempt: Int?,
                         at now: Microseconds = WallClock.now()) throws {
        try db.run("UPDATE agents SET state = ?2, task_id = ?3, task_attempt = ?4, heartbeat_at = ?5 WHERE id = ?1",
                   agentID, state.rawValue, taskID, attempt, now)
    }

    /// Moves a busy rpc agent from the task it finished to its next one, fenced on the task it
    /// had. False when the agent is no longer busy with that task (nothing changed).
    public func handOver(agentID: Int64, from task: Int64, attempt: Int, to nextTask: Int64, attempt nextAttempt: Int,
                         at now: Microseconds = WallClock.now()) throws -> Bool {
        try db.run("""
            UPDATE agents SET task_id = ?4, task_attempt = ?5, heartbeat_at = ?6
            WHERE id = ?1 AND state = 'busy' AND task_id = ?2 AND task_attempt = ?3
            """, agentID, task, attempt, nextTask, nextAttempt, now) == 1
    }

    /// Marks a busy agent idle once the task it had is over, fenced on that task. False when the
    /// agent is no longer busy with it.
    public func release(agentID: Int64, from task: Int64, attempt: Int) throws -> Bool {
        try db.run("""
            UPDATE agents SET state = 'idle', task_id = NULL, task_attempt = NULL
            WHERE id = ?1 AND state = 'busy' AND task_id = ?2 AND task_attempt = ?3
            """, agentID, task, attempt) == 1
    }

    public func recordEnd(agentID: Int64, state: AgentRecord.State, status: ExitStatus?, usage: ResourceUsage?,
                          stderrTail: String, error: String?, at now: Microseconds = WallClock.now()) throws {
        var code: Int32?
        var signal: Int32?
        switch status {
        case .exited(let c): code = c
        case .signaled(let s): signal = s
        case nil: break
        }
        try db.run("""
            UPDATE agents SET state = ?2, exit_status = ?3, exit_signal = ?4, rusage = ?5, stderr_tail = ?6,
                error = coalesce(?7, error), exited_at = ?8, heartbeat_at = ?8 WHERE id = ?1
            """, agentID, state.rawValue, code, signal, usage?.json.serialized(), stderrTail, error, now)
    }

    public func updateStderrTail(agentID: Int64, _ tail: String) throws {
        try db.run("UPDATE agents SET stderr_tail = ?2 WHERE id = ?1", agentID, tail)
    }

    // MARK: Commands

    @discardableResult
    public func enqueue(_ kind: AgentCommandKind, agentID: Int64?, taskID: Int64? = nil, attempt: Int? = nil,
                        payload: [String: JSON] = [:], requestedBy: String,
                        at now: Microseconds = WallClock.now()) throws -> Int64 {
        try db.run("""
            INSERT INTO agent_commands (kind, agent_id, task_id, task_attempt, payload, requested_by, created_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """, kind.rawValue, agentID, taskID, attempt, JSON.object(payload).serialized(), requestedBy, now)
        return db.lastInsertRowID
    }

    /// Pending commands with ids above `cursor`, oldest first.
    public func pendingCommands(after cursor: Int64 = 0, limit: Int = 256) throws -> [AgentCommand] {
        try db.query("""
            SELECT id, kind, agent_id, task_id, task_attempt, payload, requested_by FROM agent_commands
            WHERE status = 'pending' AND id > ?1 ORDER BY id LIMIT ?2
            """, cursor, limit) { row in
            guard let kind = AgentCommandKind(rawValue: row.string(1)) else {
                throw SchemaError(message: "agent command \(row.int64(0)) has unknown kind '\(row.string(1))'")
            }
            return AgentCommand(id: row.int64(0), kind: kind, agentID: row.optionalInt64(2), taskID: row.optionalInt64(3),
                                taskAttempt: row.optionalInt(4), payload: (try? JSON.parse(row.string(5))) ?? .object([:]),
                                requestedBy: row.string(6))
        }
    }

    public func completeCommand(id: Int64, succeeded: Bool, result: String, at now: Microseconds = WallClock.now()) throws {
        try db.run("UPDATE agent_commands SET status = ?2, result = ?3, handled_at = ?4 WHERE id = ?1 AND status = 'pending'",
                   id, succeeded ? "done" : "failed", result, now)
    }

    // MARK: Output

    public func append(_ rows: [AgentOutputRow]) throws {
        guard !rows.isEmpty else { return }
        var lineCounts: [Int64: (lines: Int, truncated: Int, last: Microseconds)] = [:]
        for row in rows {
            try db.run("""
                INSERT INTO agent_output (agent_id, task_id, attempt, kind, line, truncated, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                """, row.agentID, row.taskID, row.attempt, row.kind.rawValue, row.line, row.truncated, row.at)
            if row.kind == .line {
                var count = lineCounts[row.agentID] ?? (0, 0, 0)
                count.lines += 1
                if row.truncated { count.truncated += 1 }
                count.last = max(count.last, row.at)
                lineCounts[row.agentID] = count
            }
        }
        for (agentID, count) in lineCounts {
            try db.run("""
                UPDATE agents SET output_lines = output_lines + ?2, truncated_lines = truncated_lines + ?3, heartbeat_at = ?4
                WHERE id = ?1
                """, agentID, count.lines, count.truncated, count.last)
        }
    }

    /// Output rows after `cursor`, in commit order.
    public func output(after cursor: Int64, limit: Int = 1000) throws -> [AgentOutputRow] {
        try db.query("""
            SELECT id, agent_id, task_id, attempt, kind, line, truncated, at FROM agent_output WHERE id > ?1 ORDER BY id LIMIT ?2
            """, cursor, limit) { row in
            AgentOutputRow(id: row.int64(0), agentID: row.int64(1), taskID: row.optionalInt64(2), attempt: row.optionalInt(3),
                           kind: AgentOutputRow.Kind(rawValue: row.string(4)) ?? .line, line: row.optionalString(5),
                           truncated: row.bool(6), at: row.int64(7))
        }
    }
}
