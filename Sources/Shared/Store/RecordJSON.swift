/// The API's JSON shape of each record. One place, so the API, the dashboard and the OpenAPI
/// document agree.
extension TaskRecord {
    public func json(includePrompt: Bool = true) -> JSON {
        var object: [String: JSON] = [
            "id": .int(id), "title": .string(title), "lane": .string(lane), "priority": .int(Int64(priority)),
            "capabilities": JSON(capabilities), "profile": JSON(profile), "status": .string(status.rawValue),
            "attempt": .int(Int64(attempt)), "max_attempts": .int(Int64(maxAttempts)),
            "not_before": notBefore > 0 ? Timestamp.iso8601(notBefore) : .null,
            "created_at": Timestamp.iso8601(createdAt), "updated_at": Timestamp.iso8601(updatedAt),
            "claimed_at": Timestamp.iso8601(claimedAt), "dispatched_at": Timestamp.iso8601(dispatchedAt),
            "started_at": Timestamp.iso8601(startedAt), "finished_at": Timestamp.iso8601(finishedAt),
            "last_event_at": Timestamp.iso8601(lastEventAt), "agent_id": JSON(agentID), "cost_usd": .double(costUSD),
            "usage": usage.json, "result_summary": JSON(resultSummary), "error": JSON(error),
            "blocked_reason": JSON(blockedReason), "idempotency_key": JSON(idempotencyKey), "requested_by": .string(requestedBy),
            "cancel_requested": .bool(cancelRequested), "budget_usd": JSON(budgetUSD),
        ]
        if includePrompt {
            object["prompt"] = .string(prompt)
        } else {
            object["prompt_preview"] = .string(String(prompt.prefix(200)))
        }
        return .object(object)
    }
}

extension TaskEvent {
    public var json: JSON {
        ["id": .int(id), "task_id": .int(taskID), "attempt": .int(Int64(attempt)), "kind": .string(kind),
         "payload": payload, "source": .string(source), "at": Timestamp.iso8601(at)]
    }
}

extension AgentRecord {
    public var json: JSON {
        ["id": .int(id), "profile": .string(profile), "mode": .string(mode), "state": .string(state.rawValue),
         "pid": JSON(pid.map(Int64.init)), "supervisor_incarnation": JSON(supervisorIncarnation), "task_id": JSON(taskID),
         "task_attempt": JSON(taskAttempt), "created_at": Timestamp.iso8601(createdAt), "heartbeat_at": Timestamp.iso8601(heartbeatAt),
         "exit_status": JSON(exitStatus), "exit_signal": JSON(exitSignal), "output_lines": .int(outputLines),
         "truncated_lines": .int(truncatedLines), "error": JSON(error)]
    }
}

extension ComponentRecord {
    public func json(now: Microseconds) -> JSON {
        ["name": .string(name), "pid": JSON(pid.map(Int64.init)), "incarnation": .int(incarnation), "state": .string(state),
         "ready": .bool(state == "ready"), "supervised_by": JSON(supervisedBy), "started_at": Timestamp.iso8601(startedAt),
         "ready_at": Timestamp.iso8601(readyAt), "last_watchdog_at": Timestamp.iso8601(lastWatchdogAt),
         "last_watchdog_age_s": lastWatchdogAt.map { JSON.double(Double(now - $0) / 1e6) } ?? .null,
         "restarts": .int(Int64(restarts)), "status_text": .string(statusText)]
    }
}
