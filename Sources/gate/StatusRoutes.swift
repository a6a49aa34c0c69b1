import Foundation
import Glibc
import Shared

extension GateService {
    func registerStatusRoutes(_ router: inout Router) {
        router.add("GET", "/healthz", .open, "Liveness of the gate and its database") { [unowned self] context in
            _ = try self.runtime.db.scalarInt("SELECT 1")
            return .now(.json(200, ["ok": true, "service": "switchyard-gate", "timestamp": Timestamp.iso8601(context.now),
                                    "version": .string(switchyardVersion)]))
        }
        router.add("GET", "/control/api/status", .read, "Flags, counts, active items, dispatch safety and blockers, components, agents, budget") { [unowned self] context in
            .now(.json(200, try self.statusDocument(now: context.now)))
        }
        router.add("GET", "/control/api/queue-health", .read, "Stalled and stuck tasks, queue age, retry backlog, recent failures, attention items") { [unowned self] context in
            .now(.json(200, try self.queueHealth(now: context.now)))
        }
        router.add("GET", "/control/api/agents", .read, "Agents, live first") { [unowned self] context in
            let limit = try pageLimit(context)
            let items = try self.runtime.db.read {
                try AgentStore(db: self.runtime.db).recent(limit: limit)
            }
            return .now(.json(200, ["ok": true, "items": .array(items.map(\.json))]))
        }
        router.add("GET", "/control/api/events", .read, "Audit events, newest first, with cursor paging") { [unowned self] context in
            let limit = try pageLimit(context)
            let cursor = try pageCursor(context)
            let rows = try self.runtime.db.query("""
                SELECT id, at, actor, token_identity, action, task_id, detail FROM audit_events WHERE id < ?1 ORDER BY id DESC LIMIT ?2
                """, cursor, limit) { row -> JSON in
                ["id": .int(row.int64(0)), "at": Timestamp.iso8601(row.int64(1)), "actor": .string(row.string(2)),
                 "token_identity": JSON(row.optionalString(3)), "action": .string(row.string(4)), "task_id": JSON(row.optionalInt64(5)),
                 "detail": (try? JSON.parse(row.string(6))) ?? .object([:])]
            }
            let next: JSON = rows.count == limit ? (rows.last?["id"] ?? .null) : .null
            return .now(.json(200, ["ok": true, "items": .array(rows), "next_cursor": next]))
        }
        router.add("GET", "/metrics", .read, "Prometheus text exposition") { [unowned self] context in
            .now(.text(200, try self.metricsText(now: context.now), contentType: "text/plain; version=0.0.4; charset=utf-8"))
        }
    }

    // MARK: Status

    func statusDocument(now: Microseconds) throws -> JSON {
        let db = runtime.db
        return try db.read {
            let assessment = try planner.assess(now: now, operatorMode: false)
            let flags = assessment.flags
            let counts = try taskCounts()
            let active = try db.query("""
                SELECT id, title, lane, status, attempt, profile, agent_id, claimed_at, started_at, last_event_at, cost_usd
                FROM tasks WHERE status IN (\(TaskStatus.activeSQLList)) ORDER BY id LIMIT 100
                """) { row -> JSON in
                ["id": .int(row.int64(0)), "title": .string(row.string(1)), "lane": .string(row.string(2)), "status": .string(row.string(3)),
                 "attempt": .int(row.int64(4)), "profile": JSON(row.optionalString(5)), "agent_id": JSON(row.optionalInt64(6)),
                 "claimed_at": Timestamp.iso8601(row.optionalInt64(7)), "started_at": Timestamp.iso8601(row.optionalInt64(8)),
                 "last_event_at": Timestamp.iso8601(row.optionalInt64(9)), "cost_usd": .double(row.double(10))]
            }
            let components = try ComponentStore(db: db).all()
            let agentStates = try db.query("SELECT state, count(*) FROM agents WHERE state IN ('starting','idle','busy','stopping') GROUP BY state") {
                ($0.string(0), $0.int64(1))
            }
            let budget = runtime.configuration.dispatchPolicy.dailyBudgetUSD
            var warnings: [JSON] = []
            for component in components where component.state != "ready" && component.state != "stopped" {
                warnings.append(.string("component \(component.name) is \(component.state)"))
            }
            for component in components where component.state == "ready" {
                if let last = component.lastWatchdogAt ?? component.readyAt, now - last > 30_000_000 {
                    warnings.append(.string("component \(component.name) has not reported for \((now - last) / 1_000_000) s"))
                }
            }
            if catalog.profiles.isEmpty { warnings.append("no agent profiles are configured (SWITCHYARD_PROFILES)") }
            if let budget, budget > 0, assessment.spentTodayUSD >= 0.8 * budget {
                warnings.append(.string("daily budget \(Int(assessment.spentTodayUSD / budget * 100))% used"))
            }
            let parked = try db.scalarInt("SELECT count(*) FROM tasks INDEXED BY tasks_parked WHERE status = 'queued' AND blocked_reason IS NOT NULL") ?? 0
            if parked > 0 { warnings.append(.string("\(parked) queued task(s) parked (see blocked_reason)")) }
            var candidate: JSON = .null
            if let c = assessment.candidate {
                candidate = ["id": .int(c.task.id), "title": .string(c.task.title), "lane": .string(c.task.lane),
                             "priority": .int(Int64(c.task.priority)), "profile": .string(c.profile), "score": .double(c.score),
                             "attempt": .int(Int64(c.task.attempt))]
            }
            return [
                "ok": true, "service": "switchyard-gate", "timestamp": Timestamp.iso8601(now),
                "flags": flags.json,
                "paused": .bool(flags.paused), "maintenance_mode": .bool(flags.maintenanceMode),
                "auto_dispatch": .bool(flags.autoDispatch), "live_dispatch_enabled": .bool(flags.liveDispatchEnabled),
                "counts": .object(counts.mapValues { .int($0) }),
                "active_items": .array(active),
                "next_candidate": candidate,
                "dispatch_safe": .bool(assessment.dispatchSafe),
                "dispatch_idle": .bool(assessment.isIdle),
                "dispatch_blockers": JSON(assessment.blockers),
                "components": .array(components.map { $0.json(now: now) }),
                "agents": ["live": .int(agentStates.reduce(0) { $0 + $1.1 }),
                           "by_state": .object(Dictionary(uniqueKeysWithValues: agentStates.map { ($0.0, JSON.int($0.1)) })),
                           "profiles": JSON(catalog.profiles.map(\.name))],
                "budget": ["spent_today_usd": .double(assessment.spentTodayUSD), "daily_budget_usd": JSON(budget),
                           "remaining_usd": budget.map { JSON.double(max(0, $0 - assessment.spentTodayUSD)) } ?? .null],
                "limits": ["max_active": .int(Int64(runtime.configuration.dispatchPolicy.maxActive)),
                           "default_lane_limit": .int(Int64(runtime.configuration.dispatchPolicy.defaultLaneLimit))],
                "host": hostFacts(),
                "warnings": .array(warnings),
            ]
        }
    }

    func taskCounts() throws -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: try runtime.db.query("SELECT status, n FROM task_counts") { ($0.string(0), $0.int64(1)) })
    }

    /// Facts a preflight from another host checks.
    func hostFacts() -> JSON {
        var memAvailable: Int64?
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = Int64(line.split(separator: " ").dropFirst().first ?? "") {
            memAvailable = kib * 1024
        }
        var loads = [Double](repeating: 0, count: 3)
        let got = getloadavg(&loads, 3)
        return ["mem_available_bytes": JSON(memAvailable), "load_1m": got > 0 ? .double(loads[0]) : .null,
                "pid": .int(Int64(getpid())), "uptime_s": .double(Double(WallClock.now() - startedAt) / 1e6)]
    }

    // MARK: Queue health

    func queueHealth(now: Microseconds) throws -> JSON {
        let db = runtime.db
        return try db.read {
            let stallAfter: Microseconds = 120_000_000
            let tasks = TaskStore(db: db)
            let stalled = try tasks.tasks(matching: "status IN ('dispatched', 'running') AND coalesce(last_event_at, dispatched_at, 0) < ?1",
                                          [now - stallAfter], order: "id", limit: 100).map { $0.json(includePrompt: false) }
            let stuck = try tasks.tasks(matching: "status = 'claimed' AND claimed_at < ?1", [now - 60_000_000], order: "id", limit: 100)
                .map { $0.json(includePrompt: false) }
            let oldest = try db.scalarInt("SELECT min(created_at) FROM tasks WHERE status = 'queued'")
            let backlog = try db.scalarInt("SELECT count(*) FROM tasks INDEXED BY tasks_retry_due WHERE status = 'queued' AND not_before > 0 AND not_before > ?1", now) ?? 0
            let failures = try db.query("""
                SELECT e.task_id, e.attempt, e.kind, e.payload, e.at, t.title, t.lane FROM task_events e JOIN tasks t ON t.id = e.task_id
                WHERE e.kind IN ('failed', 'dead', 'needs_review') ORDER BY e.id DESC LIMIT 20
                """) { row -> JSON in
                let payload = (try? JSON.parse(row.string(3))) ?? .object([:])
                return ["task_id": .int(row.int64(0)), "attempt": .int(row.int64(1)), "kind": .string(row.string(2)),
                        "error": payload["error"] ?? payload["reason"] ?? .null, "at": Timestamp.iso8601(row.int64(4)),
                        "title": .string(row.string(5)), "lane": .string(row.string(6))]
            }
            let attention = try tasks.tasks(matching: TaskQueueView.attention.condition, [], order: "id DESC", limit: 100)
                .map { $0.json(includePrompt: false) }
            return [
                "ok": true, "timestamp": Timestamp.iso8601(now),
                "counts": .object(try taskCounts().mapValues { .int($0) }),
                "stalled": .array(stalled), "stuck": .array(stuck),
                "oldest_queued_age_s": oldest.map { JSON.double(Double(now - $0) / 1e6) } ?? .null,
                "retry_backlog": .int(backlog),
                "recent_failures": .array(failures),
                "attention": .array(attention),
                "healthy": .bool(stalled.isEmpty && stuck.isEmpty),
            ]
        }
    }

    // MARK: Metrics

    func metricsText(now: Microseconds) throws -> String {
        let db = runtime.db
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        try db.read {
            metric("switchyard_tasks", "gauge", "Tasks by status.")
            for (status, n) in try taskCounts().sorted(by: { $0.key < $1.key }) { out += "switchyard_tasks{status=\"\(status)\"} \(n)\n" }
            metric("switchyard_agents", "gauge", "Agents by state (live states only).")
            for state in ["starting", "idle", "busy", "stopping"] {
                let n = try db.scalarInt("SELECT count(*) FROM agents WHERE state = ?1", state) ?? 0
                out += "switchyard_agents{state=\"\(state)\"} \(n)\n"
            }
            metric("switchyard_component_up", "gauge", "1 when the component reported ready.")
            let components = try ComponentStore(db: db).all()
            for c in components { out += "switchyard_component_up{component=\"\(c.name)\"} \(c.state == "ready" ? 1 : 0)\n" }
            metric("switchyard_component_restarts_total", "counter", "Restarts of each component by the supervisor.")
            for c in components { out += "switchyard_component_restarts_total{component=\"\(c.name)\"} \(c.restarts)\n" }
            metric("switchyard_spent_today_usd", "gauge", "Cost recorded since 00:00 UTC.")
            out += "switchyard_spent_today_usd \(try planner.spentToday(now: now))\n"
            metric("switchyard_dispatch_latency_seconds", "histogram", "From a task becoming due to its dispatch to an agent.")
            // Stored per bucket; Prometheus buckets are cumulative.
            let buckets = try db.query("SELECT le, count FROM dispatch_latency_buckets ORDER BY le") { ($0.double(0), $0.int64(1)) }
            var cumulative: Int64 = 0
            for (le, count) in buckets where le.isFinite {
                cumulative += count
                out += "switchyard_dispatch_latency_seconds_bucket{le=\"\(le)\"} \(cumulative)\n"
            }
            let total = try db.queryOne("SELECT count, sum_seconds FROM dispatch_latency_totals WHERE id = 1") { ($0.int64(0), $0.double(1)) } ?? (0, 0)
            out += "switchyard_dispatch_latency_seconds_bucket{le=\"+Inf\"} \(total.0)\n"
            out += "switchyard_dispatch_latency_seconds_sum \(total.1)\n"
            out += "switchyard_dispatch_latency_seconds_count \(total.0)\n"
        }
        metric("switchyard_http_requests_total", "counter", "HTTP requests answered by this gate since it started.")
        for (key, count) in requestCounts.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|")
            out += "switchyard_http_requests_total{route=\"\(parts[0])\",code=\"\(parts.count > 1 ? parts[1] : "")\"} \(count)\n"
        }
        metric("switchyard_gate_connections", "gauge", "Open HTTP connections.")
        out += "switchyard_gate_connections \(server.connectionCount)\n"
        metric("switchyard_gate_rejected_connections_total", "counter", "Connections refused (503) at the connection cap.")
        out += "switchyard_gate_rejected_connections_total \(server.rejectedConnections)\n"
        return out
    }
}

let switchyardVersion = "0.1.0"

func pageLimit(_ context: RequestContext) throws -> Int {
    guard let text = context.request.query["limit"] else { return 50 }
    guard let limit = Int(text), (1...500).contains(limit) else { throw APIError.badRequest("must be 1 to 500", field: "limit") }
    return limit
}

func pageCursor(_ context: RequestContext) throws -> Int64 {
    guard let text = context.request.query["cursor"] else { return Int64.max }
    guard let cursor = Int64(text), cursor > 0 else { throw APIError.badRequest("must be a positive integer", field: "cursor") }
    return cursor
}
