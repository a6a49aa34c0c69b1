import Shared

/// claimed -> dispatched: an rpc task goes to an idle agent of its profile as a prompt line; a
/// oneshot task gets its own agent, spawned with the prompt. One transaction per sweep.
final class Dispatcher {
    let runtime: DaemonRuntime
    let catalog: ProfileCatalog
    private(set) var dispatchedTotal = 0
    private(set) var hasWaitingClaims = false

    init(runtime: DaemonRuntime, catalog: ProfileCatalog) {
        self.runtime = runtime
        self.catalog = catalog
    }

    /// Returns how many tasks were dispatched.
    func dispatchClaimed(limit: Int = 256) throws -> Int {
        let db = runtime.db
        let tasks = TaskStore(db: db, retryPolicy: runtime.configuration.retryPolicy)
        let agents = AgentStore(db: db)
        var dispatched: [(TaskRecord, Int64)] = []
        var waiting = false
        try db.write {
            // Idle rpc agents by profile, once per sweep; each claimed task takes one.
            var idle: [String: [Int64]] = [:]
            for (profile, agentID) in try db.query("""
                SELECT profile, id FROM agents WHERE mode = 'rpc' AND state = 'idle' AND task_id IS NULL ORDER BY id
                """, map: { ($0.string(0), $0.int64(1)) }) {
                idle[profile, default: []].append(agentID)
            }
            let claimed = try tasks.claimedTasks(limit: limit)
            for task in claimed {
                guard let name = task.profile, let profile = catalog[name] else {
                    try tasks.apply(.fail(error: "profile '\(task.profile ?? "")' is not configured on this host", retryable: false, result: nil),
                                    to: task.id, attempt: task.attempt, source: "poller")
                    continue
                }
                switch profile.mode {
                case .rpc:
                    guard let agentID = idle[profile.name]?.first else {
                        waiting = true  // the scheduler has asked for an agent; it will wake us
                        continue
                    }
                    idle[profile.name]?.removeFirst()
                    guard try tasks.apply(.dispatch(agentID: agentID), to: task.id, attempt: task.attempt, source: "poller").didApply
                    else { continue }
                    try agents.setState(agentID: agentID, .busy, taskID: task.id, attempt: task.attempt)
                    let line = AgentOutputParser.promptLine(format: profile.format, taskID: task.id, attempt: task.attempt, prompt: task.prompt)
                    try agents.enqueue(.prompt, agentID: agentID, taskID: task.id, attempt: task.attempt,
                                       payload: ["line": .string(line)], requestedBy: "poller")
                    dispatched.append((task, agentID))
                case .oneshot:
                    let agentID = try agents.createAgent(profile: profile, taskID: task.id, attempt: task.attempt)
                    try agents.enqueue(.spawn, agentID: agentID, taskID: task.id, attempt: task.attempt,
                                       payload: ["prompt": .string(task.prompt), "lane": .string(task.lane)], requestedBy: "poller")
                    guard try tasks.apply(.dispatch(agentID: agentID), to: task.id, attempt: task.attempt, source: "poller").didApply
                    else { throw SchemaError(message: "task \(task.id) moved while claimed under the write lock") }
                    dispatched.append((task, agentID))
                }
            }
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
        return dispatched.count
    }
}
