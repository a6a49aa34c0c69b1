import Shared

/// Ends attempts that must not go on: cancel requests, stalls (no event for the profile's stall
/// timeout), the overall task timeout, the per-task budget, and claims no agent took. Each stops
/// the agent's tree through the supervisor and fails or cancels the attempt, fenced.
final class AttemptWatch {
    let runtime: DaemonRuntime
    let catalog: ProfileCatalog
    let observer: OutputObserver

    init(runtime: DaemonRuntime, catalog: ProfileCatalog, observer: OutputObserver) {
        self.runtime = runtime
        self.catalog = catalog
        self.observer = observer
    }

    func check(now: Microseconds = WallClock.now()) throws {
        let db = runtime.db
        let tasks = TaskStore(db: db, retryPolicy: runtime.configuration.retryPolicy)
        var stopped = false
        var ended = false
        var logLines: [(LogLevel, String, Logger.Fields)] = []
        // Nothing active, nothing to watch: no write lock taken (this runs four times a second).
        guard try tasks.count(in: [.claimed, .dispatched, .running]) > 0 else { return }
        try db.write {
            let active = try tasks.activeTasks()
            for task in active {
                let profile = task.profile.flatMap { catalog[$0] }
                let fields: Logger.Fields = ["TASK_ID": String(task.id), "ATTEMPT": String(task.attempt), "LANE": task.lane,
                                             "AGENT_ID": task.agentID.map(String.init) ?? ""]
                var verdict: (TaskChange, String)?
                if task.cancelRequested {
                    verdict = (.cancel(reason: task.error ?? "canceled by operator"), "canceled")
                } else if task.status == .claimed {
                    if let claimed = task.claimedAt, now - claimed > micros(runtime.configuration.dispatchPolicy.claimTimeout) {
                        verdict = (.fail(error: "no agent took the task within \(runtime.configuration.dispatchPolicy.claimTimeout.short)",
                                         retryable: true, result: nil), "claim timed out")
                    }
                } else if let profile {
                    let since = task.lastEventAt ?? task.dispatchedAt ?? now
                    let progress = observer.progress(task: task.id, attempt: task.attempt)
                    let spent = task.costUSD + (progress.map { observer.result(from: $0, profile: profile).costUSD } ?? 0)
                    if now - since > micros(profile.stallTimeout) {
                        verdict = (.fail(error: "stalled: no agent event for \(profile.stallTimeout.short)", retryable: true,
                                         result: progress.map { observer.result(from: $0, profile: profile) }), "stalled")
                    } else if let dispatched = task.dispatchedAt, now - dispatched > micros(profile.taskTimeout) {
                        verdict = (.fail(error: "timed out after \(profile.taskTimeout.short)", retryable: true,
                                         result: progress.map { observer.result(from: $0, profile: profile) }), "timed out")
                    } else if let budget = task.budgetUSD, spent > budget {
                        // Retrying would spend again: an operator decides.
                        verdict = (.fail(error: "budget exceeded: spent \(spent) of \(budget) USD", retryable: false,
                                         result: progress.map { observer.result(from: $0, profile: profile) }), "budget exceeded")
                    }
                }
                guard let (change, what) = verdict else { continue }
                if let agentID = task.agentID, task.status != .claimed {
                    try AgentStore(db: db).enqueue(.stop, agentID: agentID, taskID: task.id, attempt: task.attempt,
                                                   payload: ["reason": .string("\(what): task \(task.id)")], requestedBy: "poller")
                    stopped = true
                }
                let outcome = try tasks.apply(change, to: task.id, attempt: task.attempt, source: "poller", at: now)
                if outcome.didApply { ended = true }
                logLines.append((.warning, "attempt \(what); stopping its agent", fields))
            }
        }
        for (level, message, fields) in logLines { runtime.log.log(level, message, fields) }
        if stopped { runtime.wakeSender.nudge("supervisor") }
        if ended { runtime.wakeSender.nudge("scheduler") }
    }

    private func micros(_ duration: Duration) -> Microseconds { Microseconds(duration.nanosecondsClamped / 1000) }
}
