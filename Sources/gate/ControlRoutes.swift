import Foundation
import Shared

extension GateService {
    func registerControlRoutes(_ router: inout Router) {
        router.add("POST", "/control/dispatch-next", .mutate, "Dry-run or live dispatch of the next queued task (operator mode)") { [unowned self] context in
            let body = try context.body(allowed: ["dry_run", "requested_by"])
            return .now(try self.dispatchNext(context, dryRun: try context.bool(body, "dry_run") ?? true,
                                              requestedBy: try context.string(body, "requested_by", maxBytes: 128)))
        }
        router.add("POST", "/control/pause", .mutate, "Pause dispatch (optionally entering maintenance mode)") { [unowned self] context in
            let body = try context.body(allowed: ["reason", "paused_by", "maintenance_mode"])
            let actor = context.actor(try context.string(body, "paused_by", maxBytes: 128))
            let flags = try ControlStore(db: self.runtime.db).update(
                paused: true, maintenanceMode: try context.bool(body, "maintenance_mode"), by: actor,
                tokenIdentity: context.principal?.identity, reason: try context.string(body, "reason") ?? "paused", action: "pause")
            self.runtime.log.notice("dispatch paused by \(actor)")
            return .now(.json(200, ["ok": true, "action": "paused", "flags": flags.json]))
        }
        router.add("POST", "/control/resume", .mutate, "Resume dispatch (optionally leaving maintenance mode)") { [unowned self] context in
            let body = try context.body(allowed: ["resumed_by", "maintenance_mode", "reason"])
            let actor = context.actor(try context.string(body, "resumed_by", maxBytes: 128))
            let flags = try ControlStore(db: self.runtime.db).update(
                paused: false, maintenanceMode: try context.bool(body, "maintenance_mode"), by: actor,
                tokenIdentity: context.principal?.identity, reason: try context.string(body, "reason") ?? "resumed", action: "resume")
            self.runtime.log.notice("dispatch resumed by \(actor)")
            self.nudge("scheduler")
            return .now(.json(200, ["ok": true, "action": "resumed", "flags": flags.json]))
        }
        router.add("POST", "/control/api/flags", .mutate, "Turn automatic dispatch or live dispatch on or off") { [unowned self] context in
            let body = try context.body(allowed: ["auto_dispatch", "live_dispatch_enabled", "reason", "requested_by"])
            let auto = try context.bool(body, "auto_dispatch")
            let live = try context.bool(body, "live_dispatch_enabled")
            guard auto != nil || live != nil else {
                throw APIError.badRequest("give auto_dispatch or live_dispatch_enabled", field: "auto_dispatch")
            }
            let actor = context.actor(try context.string(body, "requested_by", maxBytes: 128))
            let flags = try ControlStore(db: self.runtime.db).update(
                autoDispatch: auto, liveDispatchEnabled: live, by: actor, tokenIdentity: context.principal?.identity,
                reason: try context.string(body, "reason") ?? "flags changed", action: "set_flags")
            self.nudge("scheduler")
            return .now(.json(200, ["ok": true, "flags": flags.json]))
        }
        router.add("POST", "/control/api/preflight", .mutate, "Check a worker host's gate before dispatching to it; changes nothing") { [unowned self] context in
            let body = try context.body(allowed: ["wake_gate_url", "bearer_token", "require_paused", "strict"])
            guard let url = try context.string(body, "wake_gate_url", maxBytes: 2048) else {
                throw APIError.badRequest("is required", field: "wake_gate_url")
            }
            do { _ = try HTTPClient.parseURL(url) } catch { throw APIError.badRequest("\(error)", field: "wake_gate_url") }
            let token = try context.string(body, "bearer_token", maxBytes: 4096)
            let requirePaused = try context.bool(body, "require_paused") ?? false
            let strict = try context.bool(body, "strict") ?? false
            return self.deferred { Preflight.run(url: url, token: token, requirePaused: requirePaused, strict: strict) }
        }
    }

    /// Enoch's dispatch-next: the same decision the scheduler makes, in operator mode.
    func dispatchNext(_ context: RequestContext, dryRun: Bool, requestedBy: String?) throws -> HTTPResponse {
        let db = runtime.db
        let actor = context.actor(requestedBy)
        let assessment = try planner.assess(now: context.now, operatorMode: true)
        let flags = assessment.flags
        func candidateJSON(_ candidate: DispatchCandidate?) -> JSON {
            guard let c = candidate else { return .null }
            return ["id": .int(c.task.id), "title": .string(c.task.title), "lane": .string(c.task.lane), "profile": .string(c.profile),
                    "score": .double(c.score), "attempt": .int(Int64(c.task.attempt))]
        }
        func answer(_ status: Int, action: String, reason: String, candidate: DispatchCandidate?, blockers: [String], task: JSON = .null) throws -> HTTPResponse {
            let eventID = try AuditLog(db: db).record(
                actor: actor, tokenIdentity: context.principal?.identity, action: "dispatch_next", taskID: candidate?.task.id,
                at: context.now, detail: ["dry_run": .bool(dryRun), "action": .string(action), "reason": .string(reason),
                                          "blockers": JSON(blockers)])
            return .json(status, ["ok": .bool(status < 400), "action": .string(action), "reason": .string(reason), "dry_run": .bool(dryRun),
                                  "candidate": candidateJSON(candidate), "blockers": JSON(blockers), "event_id": .int(eventID),
                                  "task": task, "requested_by": .string(actor)])
        }
        let blockers = assessment.blockers
        if flags.paused || flags.maintenanceMode {
            let reason = flags.maintenanceMode ? "maintenance mode is on" : "dispatch is paused"
            return try answer(dryRun ? 200 : 409, action: "paused", reason: reason, candidate: assessment.candidate, blockers: blockers)
        }
        if !dryRun && !flags.liveDispatchEnabled {
            return try answer(501, action: "dispatch_blocked", reason: "live dispatch is not enabled (live_dispatch_enabled is false)",
                              candidate: assessment.candidate, blockers: blockers + [DispatchBlocker.liveDispatchDisabled.rawValue])
        }
        guard let candidate = assessment.candidate else {
            let empty = (try taskCounts()["queued"] ?? 0) == 0
            return try answer(200, action: empty ? "noop" : "dispatch_blocked",
                              reason: empty ? "no queued task" : "queued tasks are held: \(blockers.joined(separator: ", "))",
                              candidate: nil, blockers: blockers)
        }
        if dryRun {
            return try answer(200, action: "dry_run_dispatch", reason: "would claim task \(candidate.task.id) for profile \(candidate.profile)",
                              candidate: candidate, blockers: [])
        }
        let (fresh, outcome) = try planner.claimNext(now: context.now, source: "gate:\(actor)")
        guard let outcome, outcome.didApply, let claimed = fresh.candidate,
              let task = try TaskStore(db: db).task(id: claimed.task.id) else {
            return try answer(409, action: "dispatch_blocked", reason: "the candidate changed; try again", candidate: fresh.candidate,
                              blockers: fresh.blockers)
        }
        nudge("poller")
        nudge("supervisor")
        runtime.log.notice("live dispatch by \(actor)", ["TASK_ID": String(task.id), "ATTEMPT": String(task.attempt), "LANE": task.lane])
        return try answer(200, action: "live_dispatch", reason: "claimed task \(task.id) for profile \(claimed.profile)",
                          candidate: claimed, blockers: [], task: task.json(includePrompt: false))
    }
}

/// Checks another Switchyard gate (a worker host) as Enoch's preflight does. Read-only: it
/// only GETs /healthz and /control/api/status.
enum Preflight {
    static func run(url: String, token: String?, requirePaused: Bool, strict: Bool) -> HTTPResponse {
        var checks: [JSON] = []
        func check(_ name: String, ok: Bool, required: Bool, _ detail: String) {
            checks.append(["name": .string(name), "ok": .bool(ok), "required": .bool(required || strict), "detail": .string(detail)])
        }
        do {
            let health = try HTTPClient.request("GET", url: url, path: "/healthz")
            let ok = health.status == 200 && health.json?["ok"]?.boolValue == true
            check("healthz", ok: ok, required: true, "HTTP \(health.status)")
        } catch {
            check("healthz", ok: false, required: true, "\(error)")
        }
        var status: JSON?
        do {
            let response = try HTTPClient.request("GET", url: url, path: "/control/api/status", bearer: token)
            status = response.status == 200 ? response.json : nil
            check("status_auth", ok: status != nil, required: true,
                  response.status == 200 ? "token accepted" : "HTTP \(response.status)\(response.status == 401 ? ": token rejected" : "")")
        } catch {
            check("status_auth", ok: false, required: true, "\(error)")
        }
        if let status {
            let paused = status["paused"]?.boolValue ?? false
            check("pause_state", ok: !requirePaused || paused, required: requirePaused,
                  "paused=\(paused)\(requirePaused ? ", required paused" : "")")
            let counts = status["counts"]
            let active = ["claimed", "dispatched", "running"].reduce(Int64(0)) { $0 + (counts?[$1]?.int64Value ?? 0) }
            check("no_active_tasks", ok: active == 0, required: false, "\(active) active task(s)")
            let components = status["components"]?.arrayValue ?? []
            let notReady = components.filter { $0["ready"]?.boolValue != true && $0["state"]?.stringValue != "stopped" }
                .compactMap { $0["name"]?.stringValue }
            check("components_ready", ok: notReady.isEmpty, required: true,
                  notReady.isEmpty ? "\(components.count) component(s) ready" : "not ready: \(notReady.joined(separator: ", "))")
            let memory = status["host"]?["mem_available_bytes"]?.int64Value
            let enough = (memory ?? 0) >= 256 * 1024 * 1024
            check("memory_available", ok: enough, required: false,
                  memory.map { "\($0 / 1024 / 1024) MiB available" } ?? "not reported")
        }
        let ok = checks.allSatisfy { $0["ok"]?.boolValue == true || $0["required"]?.boolValue != true }
        return .json(200, ["ok": .bool(ok), "target": .string(url), "strict": .bool(strict), "require_paused": .bool(requirePaused),
                           "checks": .array(checks), "checked_at": Timestamp.iso8601(WallClock.now())])
    }
}
