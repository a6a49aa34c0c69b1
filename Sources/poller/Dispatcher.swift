import Shared

/// An rpc agent whose task just ended; it is still marked busy with that task.
struct FreedAgent {
    let id: Int64
    let profile: String
    let taskID: Int64
    let attempt: Int
}

/// What dispatching needs of a claimed task (not the whole row: this is read under the write lock).
private struct ClaimedTask {
    let id: Int64
    let state: TaskStore.KnownState
    let profile: String?
    let prompt: String
    let lane: String
    var attempt: Int { state.attempt }

    static let columns = "status, attempt, max_attempts, id, profile, prompt, lane"
    static func decode(_ row: Row) throws -> ClaimedTask {
        let id = row.int64(3)
        return ClaimedTask(id: id, state: try TaskStore.KnownState.decode(row, task: id), profile: row.optionalString(4),
                           prompt: row.string(5), lane: row.string(6))
    }
}

/// claimed -> dispatched: an rpc task goes to an idle agent of its profile as a prompt line; a
/// oneshot task gets its own agent, spawned with the prompt. One transaction per sweep.
final class Dispatcher {
    let runtime: DaemonRuntime
    let catalog: ProfileCatalog
    private(set) var dispatchedTotal = 0
    private(set) var hasWaitingClaims = false

    private let catalogNames: String

    init(runtime: DaemonRuntime, catalog: ProfileCatalog) {
        self.runtime = runtime
        self.catalog = catalog
        catalogNames = JSON.array(catalog.profiles.map { JSON.string($0.name) }).serialized()
    }

    /// Claimed tasks, most urgent first: all of them when every profile can take one now (the
    /// usual case under load), else those of `dispatchable` profiles and of profiles this host
    /// does not know (failed by the caller).
    private func claimedTasks(dispatchable: [String], limit: Int) throws -> [ClaimedTask] {
        let db = runtime.db
        if dispatchable.count == catalog.profiles.count {
            return try db.query("""
                SELECT \(ClaimedTask.columns) FROM tasks WHERE status = 'claimed' ORDER BY priority DESC, claimed_at LIMIT ?1
                """, limit, map: ClaimedTask.decode)
        }
        return try db.query("""
            SELECT \(ClaimedTask.columns) FROM tasks WHERE status = 'claimed'
                AND (profile IS NULL OR profile IN (SELECT value FROM json_each(?2)) OR profile NOT IN (SELECT value FROM json_each(?3)))
            ORDER BY priority DESC, claimed_at LIMIT ?1
            """, limit, JSON.array(dispatchable.map(JSON.string)).serialized(), catalogNames, map: ClaimedTask.decode)
    }

    /// Dispatches what it can; `freed` agents (see `OutputObserver.Report`) are reused first or
    /// released. Returns how many tasks were dispatched and how many agents are left idle.
    func dispatchClaimed(freed: [FreedAgent] = [], limit: Int = 256) throws -> (dispatched: Int, released: Int) {
        let db = runtime.db
        let tasks = TaskStore(db: db, retryPolicy: runtime.configuration.retryPolicy)
        let agents = AgentStore(db: db)
        var dispatched: [(ClaimedTask, Int64)] = []
        var waiting = false
        var released = 0
        try db.write {
            // Idle rpc agents by profile, once per sweep; each claimed task takes one.
            var idle: [String: [Int64]] = [:]
            for (profile, agentID) in try db.query("""
                SELECT profile, id FROM agents WHERE mode = 'rpc' AND state = 'idle' AND task_id IS NULL ORDER BY id
                """, map: { ($0.string(0), $0.int64(1)) }) {
                idle[profile, default: []].append(agentID)
            }
            // Agents that just finished a task go first: one UPDATE moves each to its next task
            // (fenced on the task it had), instead of one to release it and one to take it again.
            var reusable: [String: [FreedAgent]] = [:]
            for agent in freed { reusable[agent.profile, default: []].append(agent) }
            func takeAgent(_ profile: String, for task: ClaimedTask) throws -> Int64? {
                while let agent = reusable[profile]?.first {
                    reusable[profile]?.removeFirst()
                    if try agents.handOver(agentID: agent.id, from: agent.taskID, attempt: agent.attempt,
                                           to: task.id, attempt: task.attempt) {
                        return agent.id
                    }
                }
                guard let agentID = idle[profile]?.first else { return nil }
                idle[profile]?.removeFirst()
                try agents.setState(agentID: agentID, .busy, taskID: task.id, attempt: task.attempt)
                return agentID
            }
            // Read only claimed tasks that could be dispatched now: those of profiles with an idle
            // agent (claim-ahead keeps more claimed than there are agents), of oneshot profiles,
            // and of profiles this host does not know (failed below).
            let dispatchable = catalog.profiles.filter { $0.mode == .oneshot || idle[$0.name] != nil || reusable[$0.name] != nil }
                .map(\.name)
            let readLimit = catalog.profiles.contains { $0.mode == .oneshot } ? limit
                : min(limit, idle.values.reduce(0) { $0 + $1.count } + freed.count)
            let claimed = try claimedTasks(dispatchable: dispatchable, limit: max(1, readLimit))
            for task in claimed {
                guard let name = task.profile, let profile = catalog[name] else {
                    try tasks.apply(.fail(error: "profile '\(task.profile ?? "")' is not configured on this host", retryable: false, result: nil),
                                    to: task.id, attempt: task.attempt, source: "poller")
                    continue
                }
                switch profile.mode {
                case .rpc:
                    guard let agentID = try takeAgent(profile.name, for: task) else {
                        continue  // the scheduler has asked for an agent; it will wake us
                    }
                    guard try tasks.apply(.dispatch(agentID: agentID), to: task.id, attempt: task.attempt, source: "poller",
                                          known: task.state).didApply
                    else {
                        try agents.setState(agentID: agentID, .idle, taskID: nil, attempt: nil)
                        continue
                    }
                    let line = AgentOutputParser.promptLine(format: profile.format, taskID: task.id, attempt: task.attempt, prompt: task.prompt)
                    try agents.enqueue(.prompt, agentID: agentID, taskID: task.id, attempt: task.attempt,
                                       payload: ["line": .string(line)], requestedBy: "poller")
                    dispatched.append((task, agentID))
                case .oneshot:
                    let agentID = try agents.createAgent(profile: profile, taskID: task.id, attempt: task.attempt)
                    try agents.enqueue(.spawn, agentID: agentID, taskID: task.id, attempt: task.attempt,
                                       payload: ["prompt": .string(task.prompt), "lane": .string(task.lane)], requestedBy: "poller")
                    guard try tasks.apply(.dispatch(agentID: agentID), to: task.id, attempt: task.attempt, source: "poller",
                                          known: task.state).didApply
                    else { throw SchemaError(message: "task \(task.id) moved while claimed under the write lock") }
                    dispatched.append((task, agentID))
                }
            }
            // Finished agents with no next task are idle now.
            for agent in reusable.values.joined() where try agents.release(agentID: agent.id, from: agent.taskID, attempt: agent.attempt) {
                released += 1
            }
            // Claimed tasks left for agents that are busy or still starting.
            waiting = try tasks.count(in: [.claimed]) > 0
        }
        hasWaitingClaims = waiting
        if !dispatched.isEmpty {
            let wake = runtime.wakeSender
            db.afterCommit { wake.nudge("supervisor") }
        }
        for (task, agentID) in dispatched {
            runtime.log.info("dispatched to agent \(agentID)", ["TASK_ID": String(task.id), "ATTEMPT": String(task.attempt),
                                                                "AGENT_ID": String(agentID), "LANE": task.lane])
        }
        dispatchedTotal += dispatched.count
        return (dispatched.count, released)
    }
}
