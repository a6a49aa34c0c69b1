import Shared

/// Turns agent_output rows into task state, resuming from its cursor. The effects of a batch and
/// the cursor commit in one transaction, so a row is never applied twice; and every change is
/// fenced on the attempt, so even a replay could not change an outcome.
final class OutputObserver {
    static let cursorName = "poller.agent_output"
    /// Output rows read per sweep.
    static let batchSize = 2000

    /// What an attempt has reported so far (usage of zot/Codex turns, Codex's last message,
    /// a plain agent's last line).
    struct Progress {
        var usage = TokenUsage()
        var costUSD = 0.0
        var hasCost = false
        var lastMessage: String?
    }

    struct Report {
        var finishedTasks = 0
        var idleAgents = 0
        /// rpc agents whose task ended in this batch, still marked busy with it: the dispatcher
        /// hands them their next task (or releases them) in the same transaction.
        var freedAgents: [FreedAgent] = []
        var moreWaiting = false
    }

    let runtime: DaemonRuntime
    let catalog: ProfileCatalog
    private(set) var cursor: Int64
    struct AttemptKey: Hashable {
        let task: Int64
        let attempt: Int
    }

    /// Rebuilt from agent_output after a restart.
    private(set) var progress: [AttemptKey: Progress] = [:]

    init(runtime: DaemonRuntime, catalog: ProfileCatalog) throws {
        self.runtime = runtime
        self.catalog = catalog
        cursor = try CursorStore(db: runtime.db).position(Self.cursorName)
        try rebuildProgress()
    }

    static func key(_ task: Int64, _ attempt: Int) -> AttemptKey { AttemptKey(task: task, attempt: attempt) }

    func progress(task: Int64, attempt: Int) -> Progress? { progress[Self.key(task, attempt)] }

    /// After a restart: replay the already-consumed output of active attempts into `progress`.
    private func rebuildProgress() throws {
        let active = try runtime.db.query("""
            SELECT id, attempt, coalesce(profile, '') FROM tasks WHERE status IN ('dispatched', 'running')
            """) { ($0.int64(0), $0.int(1), $0.string(2)) }
        for (task, attempt, profileName) in active {
            let format = catalog[profileName]?.format ?? .switchyard
            let lines = try runtime.db.query("""
                SELECT line FROM agent_output WHERE task_id = ?1 AND attempt = ?2 AND kind = 'line' AND id <= ?3 ORDER BY id
                """, task, attempt, cursor) { $0.string(0) }
            var state = Progress()
            for line in lines { Self.accumulate(&state, line: line, event: AgentOutputParser.parse(line, format: format), format: format) }
            progress[Self.key(task, attempt)] = state
        }
    }

    static func accumulate(_ state: inout Progress, line: String, event: AgentEvent, format: AgentProfile.OutputFormat) {
        switch event {
        case .usage(let usage, let cost):
            state.usage.input += usage.input
            state.usage.output += usage.output
            state.usage.cacheRead += usage.cacheRead
            state.usage.cacheWrite += usage.cacheWrite
            if let cost { state.costUSD += cost; state.hasCost = true }
        default:
            break
        }
        if format == .codex, let message = AgentOutputParser.codexMessage(line) { state.lastMessage = message }
        if format == .plain, !line.isEmpty { state.lastMessage = line }
    }

    /// What `consume` changed in memory, to undo when the transaction around it rolls back.
    struct Checkpoint {
        let cursor: Int64
        let progress: [AttemptKey: Progress]
    }

    func checkpoint() -> Checkpoint { Checkpoint(cursor: cursor, progress: progress) }

    func restore(_ checkpoint: Checkpoint) {
        cursor = checkpoint.cursor
        progress = checkpoint.progress
    }

    /// An output row with its line already parsed.
    struct ParsedRow {
        let row: AgentOutputRow
        let event: AgentEvent?
        let reference: (taskID: Int64, attempt: Int)?

        /// The attempt the row speaks of: what the line says (Switchyard JSONL, zot ids), else
        /// the attempt the agent was running when it wrote it.
        var taskID: Int64? { reference?.taskID ?? row.taskID }
        var attempt: Int? { reference?.attempt ?? row.attempt }
    }

    /// Reads and parses the next batch of output, outside any write transaction: output rows are
    /// immutable once committed, and ids are handed out under the write lock, so the rows after
    /// the cursor that one snapshot sees are a complete prefix. Parsing here keeps it out of the
    /// time this process holds the database's write lock.
    func prefetch() throws -> [ParsedRow] {
        try read(after: cursor, limit: Self.batchSize)
    }

    /// Tops up a prefetched batch with the rows committed since, read once this process holds
    /// the write lock: while it waited for the lock, agents kept answering, and what arrived
    /// goes into the same transaction instead of the next one (one commit carries more work).
    func topUp(_ rows: [ParsedRow]) throws -> [ParsedRow] {
        let room = Self.batchSize - rows.count
        guard room > 0 else { return rows }
        let late = try read(after: rows.last?.row.id ?? cursor, limit: room)
        return late.isEmpty ? rows : rows + late
    }

    private func read(after position: Int64, limit: Int) throws -> [ParsedRow] {
        let rows = try AgentStore(db: runtime.db).output(after: position, limit: limit)
        return try rows.map { row in
            guard row.kind == .line, let text = row.line, let profileName = try agentProfile(row.agentID),
                  let format = catalog[profileName]?.format else { return ParsedRow(row: row, event: nil, reference: nil) }
            let (event, reference) = AgentOutputParser.parseWithReference(text, format: format)
            return ParsedRow(row: row, event: event, reference: reference)
        }
    }

    /// Applies a prefetched batch inside the caller's transaction (the cursor moves in the same
    /// commit as the effects). On failure the caller restores a checkpoint.
    func consume(_ rows: [ParsedRow]) throws -> Report {
        let db = runtime.db
        var report = Report()
        var logLines: [(LogLevel, String, Logger.Fields)] = []
        try db.write {
            // The cursor only moves here, right after the prefetch; still, never apply a row twice.
            let fresh = rows.drop { $0.row.id <= cursor }
            guard let last = fresh.last else { return }
            var batch = Batch(ending: Self.attemptsEnding(in: fresh))
            for parsed in fresh { try handle(parsed, batch: &batch, report: &report, log: &logLines) }
            // A folded start whose finish did not apply is written on its own.
            let tasks = TaskStore(db: db, retryPolicy: runtime.configuration.retryPolicy)
            for (key, start) in batch.foldedStarts.sorted(by: { $0.value.at < $1.value.at }) {
                if try tasks.apply(.start, to: key.task, attempt: key.attempt, source: "poller", at: start.at).didApply,
                   start.lastEventAt > start.at {
                    try tasks.touch(id: key.task, attempt: key.attempt, at: start.lastEventAt)
                }
            }
            try CursorStore(db: db).advance(Self.cursorName, to: last.row.id)
            cursor = last.row.id
            report.moreWaiting = rows.count == Self.batchSize
        }
        let log = runtime.log
        db.afterCommit { for (level, message, fields) in logLines { log.log(level, message, fields) } }
        return report
    }

    /// What one batch knows beyond the database: which attempts end in it, and the starts held
    /// back to be written with those ends.
    struct Batch {
        let ending: Set<AttemptKey>
        var foldedStarts: [AttemptKey: TaskStore.FoldedStart] = [:]
    }

    /// Attempts whose end (a result line, an exit, a failed spawn, a lost agent) is in `rows`.
    static func attemptsEnding(in rows: ArraySlice<ParsedRow>) -> Set<AttemptKey> {
        var ending = Set<AttemptKey>()
        for parsed in rows {
            let row = parsed.row
            switch row.kind {
            case .line:
                guard case .outcome = parsed.event, let task = parsed.taskID, let attempt = parsed.attempt else { continue }
                ending.insert(key(task, attempt))
            case .exit, .spawnFailed, .lost:
                if let task = row.taskID, let attempt = row.attempt { ending.insert(key(task, attempt)) }
            case .spawned:
                continue
            }
        }
        return ending
    }

    /// What the observer needs of a task: the state for `apply`, and the lane and profile.
    private struct TaskView {
        var state: TaskStore.KnownState
        var lane: String
        var profile: String?
    }

    private func taskView(_ id: Int64) throws -> TaskView? {
        try runtime.db.queryOne("SELECT status, attempt, max_attempts, lane, profile FROM tasks WHERE id = ?1", id) { row in
            TaskView(state: try TaskStore.KnownState.decode(row, task: id), lane: row.string(3), profile: row.optionalString(4))
        }
    }

    private func handle(_ parsedRow: ParsedRow, batch: inout Batch, report: inout Report,
                        log: inout [(LogLevel, String, Logger.Fields)]) throws {
        let tasks = TaskStore(db: runtime.db, retryPolicy: runtime.configuration.retryPolicy)
        let row = parsedRow.row
        let taskID = parsedRow.taskID
        let attempt = parsedRow.attempt
        let parsed = parsedRow.event
        guard let taskID, let attempt, let task = try taskView(taskID) else { return }
        func note(_ level: LogLevel, _ message: @autoclosure () -> String) {
            guard runtime.log.isEnabled(level) else { return }
            log.append((level, message(), ["TASK_ID": String(taskID), "ATTEMPT": String(attempt), "AGENT_ID": String(row.agentID),
                                           "LANE": task.lane]))
        }
        let profile = task.profile.flatMap { catalog[$0] }
        let format = profile?.format ?? .switchyard
        let current = task.state.attempt == attempt && task.state.status.isActive
        let key = Self.key(taskID, attempt)

        func finish(_ change: TaskChange, _ message: String) throws {
            let foldedStart = batch.foldedStarts.removeValue(forKey: key)
            let outcome = try tasks.apply(change, to: taskID, attempt: attempt, source: "poller", at: row.at, known: task.state,
                                          foldedStart: foldedStart)
            if !outcome.didApply, let foldedStart { batch.foldedStarts[key] = foldedStart }
            switch outcome {
            case .applied(let status, _):
                report.finishedTasks += 1
                progress[key] = nil
                note(status == .succeeded ? .info : .warning, "\(message): task \(status.rawValue)")
                if let profile, profile.mode == .rpc {
                    report.freedAgents.append(FreedAgent(id: row.agentID, profile: profile.name, taskID: taskID, attempt: attempt))
                }
            case .staleAttempt(let currentAttempt, _):
                note(.notice, "stale report from attempt \(attempt) ignored (task is at attempt \(currentAttempt))")
            case .forbidden, .notFound:
                break
            }
        }

        switch row.kind {
        case .spawned:
            guard current else { return }
            try tasks.appendEvent(task: taskID, attempt: attempt, kind: "agent_spawned", source: "poller", at: row.at,
                                  payload: ["agent_id": .int(row.agentID), "detail": .string(row.line ?? "")])
        case .line:
            let text = row.line ?? ""
            let event = parsed ?? AgentOutputParser.parse(text, format: format)
            if case .outcome(let outcome) = event {
                // Results go through apply even when stale: the fence refuses them and keeps the evidence.
                try finish(change(for: outcome, task: taskID, attempt: attempt, profile: profile), "agent result")
                return
            }
            guard current else { return }
            if task.state.status == .dispatched, batch.ending.contains(key) {
                // The attempt also ends in this batch: its finishing write records the start.
                if let start = batch.foldedStarts[key] {
                    batch.foldedStarts[key]?.lastEventAt = max(start.lastEventAt, row.at)
                } else {
                    batch.foldedStarts[key] = TaskStore.FoldedStart(at: row.at, lastEventAt: row.at)
                    note(.info, "agent started working")
                }
            } else if task.state.status == .dispatched {
                // .start sets last_event_at too.
                try tasks.apply(.start, to: taskID, attempt: attempt, source: "poller", at: row.at, known: task.state)
                note(.info, "agent started working")
            } else {
                try tasks.touch(id: taskID, attempt: attempt, at: row.at)
            }
            var state = progress[key] ?? Progress()
            Self.accumulate(&state, line: text, event: event, format: format)
            progress[key] = state
        case .exit:
            report.idleAgents += 1  // an exited process frees a slot of its profile
            guard current else { return }
            let exit = (try? JSON.parse(row.line ?? "{}")) ?? .object([:])
            let status = exit["status"]?.int64Value
            let signal = exit["signal"]?.int64Value
            let tail = exit["stderr_tail"]?.stringValue ?? ""
            let how = status.map { "exited with status \($0)" } ?? "was killed by signal \(signal ?? 0)"
            if (format == .codex || format == .plain) && status == 0 {
                let state = progress[key] ?? Progress()
                try finish(.succeed(result(from: state, profile: profile)), "agent exited cleanly")
            } else {
                let detail = tail.isEmpty ? "" : "; stderr: " + String(tail.suffix(1000))
                let partial = progress[key].map { result(from: $0, profile: profile) }
                try finish(.fail(error: "agent \(how) without a result\(detail)", retryable: true, result: partial), "agent \(how)")
            }
        case .spawnFailed:
            guard current else { return }
            try finish(.fail(error: "agent could not be started: \(row.line ?? "")", retryable: true, result: nil), "spawn failed")
        case .lost:
            guard current else { return }
            try finish(.fail(error: "agent lost (\(row.line ?? "supervisor restarted"))", retryable: true, result: nil), "agent lost")
        }
    }

    /// The task result an outcome line stands for; cost from the line, else from reported
    /// usage, else from the profile's price table.
    private func change(for outcome: AgentOutcome, task: Int64, attempt: Int, profile: AgentProfile?) -> TaskChange {
        var state = progress[Self.key(task, attempt)] ?? Progress()
        if let usage = outcome.usage {
            state.usage = usage
            state.hasCost = false
        }
        if let cost = outcome.costUSD { state.costUSD = cost; state.hasCost = true }
        var result = self.result(from: state, profile: profile)
        result.summary = outcome.summary ?? state.lastMessage
        switch outcome.verdict {
        case .succeeded: return .succeed(result)
        case .needsReview: return .requestReview(reason: outcome.summary ?? "the agent asked for an operator", result: result)
        case .failed(let retryable): return .fail(error: outcome.error ?? "the agent reported a failure", retryable: retryable, result: result)
        }
    }

    func result(from state: Progress, profile: AgentProfile?) -> TaskResult {
        let cost = state.hasCost ? state.costUSD : (profile?.prices?.cost(state.usage) ?? 0)
        return TaskResult(summary: state.lastMessage, costUSD: cost, usage: state.usage)
    }

    private var profileOfAgent: [Int64: String] = [:]
    private func agentProfile(_ agentID: Int64) throws -> String? {
        if let name = profileOfAgent[agentID] { return name }
        let name = try runtime.db.scalarString("SELECT profile FROM agents WHERE id = ?1", agentID)
        if let name { profileOfAgent[agentID] = name }
        return name
    }
}
