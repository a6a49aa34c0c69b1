import Shared

/// The OpenAPI 3.0 document of the gate. Paths come from the router itself, so a route cannot
/// exist undocumented; each route's request and response shapes come from `specs`.
extension GateService {
    struct RouteSpec {
        var request: JSON? = nil
        var responses: [Int: String]
        var response: JSON = ref("Ok")
        var query: [(String, JSON, String)] = []
        /// Error statuses whose body is `response` rather than the generic Error.
        var errorsWithResponseBody: Set<Int> = []
    }

    static func ref(_ name: String) -> JSON { ["$ref": .string("#/components/schemas/\(name)")] }

    static func object(_ properties: [String: JSON], required: [String] = []) -> JSON {
        var schema: [String: JSON] = ["type": "object", "properties": .object(properties)]
        if !required.isEmpty { schema["required"] = JSON(required) }
        return .object(schema)
    }

    static let string: JSON = ["type": "string"]
    static let boolean: JSON = ["type": "boolean"]
    static let integer: JSON = ["type": "integer"]
    static let number: JSON = ["type": "number"]
    static func nullable(_ schema: JSON) -> JSON {
        guard case .object(var members) = schema else { return schema }
        members["nullable"] = true
        return .object(members)
    }
    static func array(_ items: JSON) -> JSON { ["type": "array", "items": items] }

    static var specs: [String: RouteSpec] {
        let reasonBody = object(["reason": string, "requested_by": string])
        let paging: [(String, JSON, String)] = [("cursor", ["type": "integer", "minimum": 1], "last id of the previous page"),
                                                 ("limit", ["type": "integer", "minimum": 1, "maximum": 500], "page size (default 50)")]
        return [
            "GET /healthz": RouteSpec(responses: [200: "the gate and its database answer"],
                                      response: object(["ok": boolean, "service": string, "timestamp": string, "version": string],
                                                       required: ["ok", "service", "timestamp"])),
            "GET /control/api/status": RouteSpec(responses: [200: "status", 401: "no or bad token"], response: ref("Status")),
            "GET /control/api/queue-health": RouteSpec(responses: [200: "queue health", 401: "no or bad token"], response: ref("QueueHealth")),
            "POST /control/api/preflight": RouteSpec(
                request: object(["wake_gate_url": string, "bearer_token": string, "require_paused": boolean, "strict": boolean], required: ["wake_gate_url"]),
                responses: [200: "checks (ok says whether every required one passed)", 400: "invalid field", 401: "no or bad token", 403: "read-only token"],
                response: ref("Preflight")),
            "POST /control/dispatch-next": RouteSpec(
                request: object(["dry_run": boolean, "requested_by": string]),
                responses: [200: "decision", 401: "no or bad token", 403: "read-only token", 409: "paused or in maintenance (live)",
                            501: "live dispatch is not enabled"], response: ref("DispatchDecision"), errorsWithResponseBody: [409, 501]),
            "POST /control/pause": RouteSpec(request: object(["reason": string, "paused_by": string, "maintenance_mode": boolean]),
                                             responses: [200: "paused", 400: "invalid field", 401: "no or bad token", 403: "read-only token"],
                                             response: ref("FlagsChange")),
            "POST /control/resume": RouteSpec(request: object(["resumed_by": string, "maintenance_mode": boolean, "reason": string]),
                                              responses: [200: "resumed", 400: "invalid field", 401: "no or bad token", 403: "read-only token"],
                                              response: ref("FlagsChange")),
            "POST /control/api/flags": RouteSpec(
                request: object(["auto_dispatch": boolean, "live_dispatch_enabled": boolean, "reason": string, "requested_by": string]),
                responses: [200: "changed", 400: "invalid field", 401: "no or bad token", 403: "read-only token"], response: ref("FlagsChange")),
            "POST /control/api/tasks": RouteSpec(
                request: ref("TaskSubmission"),
                responses: [201: "accepted and durable", 200: "idempotent replay of an earlier submission", 400: "invalid field",
                            401: "no or bad token", 403: "read-only token", 409: "idempotency_key used for a different request",
                            413: "body too large"],
                response: object(["ok": boolean, "task": ref("Task"), "replayed": boolean], required: ["ok", "task"])),
            "GET /control/api/tasks": RouteSpec(
                responses: [200: "a page of tasks", 400: "invalid filter", 401: "no or bad token"], response: ref("TaskPage"),
                query: [("status", string, "comma-separated statuses"), ("lane", string, "lane name")] + paging),
            "GET /control/api/tasks/{id}": RouteSpec(responses: [200: "the task", 400: "invalid id", 401: "no or bad token", 404: "no such task"],
                                                     response: ref("TaskDetail")),
            "POST /control/api/tasks/{id}/cancel": RouteSpec(request: reasonBody, responses: [200: "canceled, or cancel requested for a running task",
                400: "invalid field", 401: "no or bad token", 403: "read-only token", 404: "no such task", 409: "task already finished"], response: ref("TaskAction")),
            "POST /control/api/tasks/{id}/retry": RouteSpec(request: reasonBody, responses: [200: "queued again", 400: "invalid field",
                401: "no or bad token", 403: "read-only token", 404: "no such task", 409: "task is not failed, dead, canceled or under review"], response: ref("TaskAction")),
            "POST /control/api/tasks/{id}/accept": RouteSpec(request: reasonBody, responses: [200: "accepted as succeeded", 400: "invalid field",
                401: "no or bad token", 403: "read-only token", 404: "no such task", 409: "task is not under review"], response: ref("TaskAction")),
            "GET /control/api/queues/{view}": RouteSpec(responses: [200: "a page of the view", 401: "no or bad token", 404: "unknown view"],
                                                        response: ref("TaskPage"), query: paging),
            "GET /control/api/agents": RouteSpec(responses: [200: "agents", 401: "no or bad token"],
                                                 response: object(["ok": boolean, "items": array(ref("Agent"))], required: ["ok", "items"]),
                                                 query: [paging[1]]),
            "GET /control/api/events": RouteSpec(responses: [200: "audit events", 401: "no or bad token"],
                                                 response: object(["ok": boolean, "items": array(ref("AuditEvent")), "next_cursor": nullable(integer)],
                                                                  required: ["ok", "items"]), query: paging),
            "POST /control/api/backup": RouteSpec(
                request: object(["requested_by": string]),
                responses: [200: "a consistent copy was written", 401: "no or bad token", 403: "read-only token", 500: "the copy failed"],
                response: object(["ok": boolean, "path": string, "bytes": integer, "seconds": number], required: ["ok", "path"])),
            "GET /metrics": RouteSpec(responses: [200: "Prometheus text", 401: "no or bad token"], response: string),
            "GET /openapi.json": RouteSpec(responses: [200: "this document"], response: ["type": "object"]),
            "GET /dashboard": RouteSpec(responses: [200: "HTML", 303: "sign in first", 401: "no session"], response: string,
                                        query: [("tab", string, "active, queued, attention, done, failed, agents, components or events")]),
            "GET /dashboard/login": RouteSpec(responses: [200: "HTML sign-in form"], response: string),
            "POST /dashboard/login": RouteSpec(responses: [303: "signed in", 401: "bad token", 403: "cross-origin"], response: string),
            "POST /dashboard/logout": RouteSpec(responses: [303: "signed out", 401: "no session"], response: string),
            "GET /dashboard/tasks/{id}": RouteSpec(responses: [200: "HTML", 401: "no session", 404: "no such task"], response: string),
        ]
    }

    static var schemas: [String: JSON] {
        let usage = object(["input_tokens": integer, "output_tokens": integer, "cache_read_tokens": integer, "cache_write_tokens": integer])
        let status: JSON = ["type": "string", "enum": JSON(TaskStatus.allCases.map(\.rawValue))]
        let time = nullable(["type": "string", "format": "date-time"])
        let task = object([
            "id": integer, "title": string, "prompt": string, "prompt_preview": string, "lane": string, "priority": integer,
            "capabilities": array(string), "profile": nullable(string), "status": status, "attempt": integer, "max_attempts": integer,
            "not_before": time, "created_at": time, "updated_at": time, "claimed_at": time, "dispatched_at": time, "started_at": time,
            "finished_at": time, "last_event_at": time, "agent_id": nullable(integer), "cost_usd": number, "usage": usage,
            "result_summary": nullable(string), "error": nullable(string), "blocked_reason": nullable(string),
            "idempotency_key": nullable(string), "requested_by": string, "cancel_requested": boolean, "budget_usd": nullable(number),
        ], required: ["id", "title", "lane", "status", "attempt", "max_attempts", "created_at", "cost_usd", "requested_by"])
        let flags = object(["paused": boolean, "maintenance_mode": boolean, "auto_dispatch": boolean, "live_dispatch_enabled": boolean,
                            "updated_by": string, "reason": string, "updated_at": time],
                           required: ["paused", "maintenance_mode", "auto_dispatch", "live_dispatch_enabled"])
        let component = object(["name": string, "pid": nullable(integer), "incarnation": integer, "state": string, "ready": boolean,
                                "supervised_by": nullable(string), "started_at": time, "ready_at": time, "last_watchdog_at": time,
                                "last_watchdog_age_s": nullable(number), "restarts": integer, "status_text": string],
                               required: ["name", "state", "ready", "restarts"])
        let agent = object(["id": integer, "profile": string, "mode": string, "state": string, "pid": nullable(integer),
                            "supervisor_incarnation": nullable(integer), "task_id": nullable(integer), "task_attempt": nullable(integer),
                            "created_at": time, "heartbeat_at": time, "exit_status": nullable(integer), "exit_signal": nullable(integer),
                            "output_lines": integer, "truncated_lines": integer, "error": nullable(string)], required: ["id", "profile", "state"])
        return [
            "Ok": object(["ok": boolean], required: ["ok"]),
            "Error": object(["ok": boolean, "error": object(["status": integer, "code": string, "message": string, "field": string],
                                                            required: ["status", "code", "message"])], required: ["ok", "error"]),
            "Task": task,
            "TaskEvent": object(["id": integer, "task_id": integer, "attempt": integer, "kind": string, "payload": ["type": "object"],
                                 "source": string, "at": time], required: ["id", "task_id", "attempt", "kind", "at"]),
            "TaskSubmission": object([
                "prompt": ["type": "string", "minLength": 1], "title": string, "lane": string, "priority": ["type": "integer", "minimum": -1000, "maximum": 1000],
                "capabilities": array(string), "profile": string, "max_attempts": ["type": "integer", "minimum": 1, "maximum": 50],
                "not_before": ["type": "string", "format": "date-time"], "budget_usd": ["type": "number", "minimum": 0],
                "requested_by": string, "idempotency_key": string,
            ], required: ["prompt"]),
            "TaskPage": object(["ok": boolean, "items": array(ref("Task")), "next_cursor": nullable(integer), "view": string], required: ["ok", "items"]),
            "TaskDetail": object(["ok": boolean, "task": ref("Task"), "events": array(ref("TaskEvent")), "agent": nullable(ref("Agent")),
                                  "output_tail": array(object(["line": string, "truncated": boolean, "at": time])), "stderr_tail": nullable(string)],
                                 required: ["ok", "task", "events"]),
            "TaskAction": object(["ok": boolean, "action": string, "task": nullable(ref("Task"))], required: ["ok", "action"]),
            "Flags": flags,
            "FlagsChange": object(["ok": boolean, "action": string, "flags": ref("Flags")], required: ["ok", "flags"]),
            "Component": component,
            "Agent": agent,
            "AuditEvent": object(["id": integer, "at": time, "actor": string, "token_identity": nullable(string), "action": string,
                                  "task_id": nullable(integer), "detail": ["type": "object"]], required: ["id", "at", "actor", "action"]),
            "Status": object([
                "ok": boolean, "service": string, "timestamp": time, "flags": ref("Flags"), "paused": boolean, "maintenance_mode": boolean,
                "auto_dispatch": boolean, "live_dispatch_enabled": boolean, "counts": ["type": "object", "additionalProperties": integer],
                "active_items": array(["type": "object"]), "next_candidate": nullable(["type": "object"]), "dispatch_safe": boolean,
                "dispatch_idle": boolean, "dispatch_blockers": array(string), "components": array(ref("Component")), "agents": ["type": "object"],
                "budget": ["type": "object"], "limits": ["type": "object"], "host": ["type": "object"], "warnings": array(string),
            ], required: ["ok", "flags", "counts", "dispatch_safe", "dispatch_blockers", "components"]),
            "QueueHealth": object([
                "ok": boolean, "timestamp": time, "counts": ["type": "object"], "stalled": array(ref("Task")), "stuck": array(ref("Task")),
                "oldest_queued_age_s": nullable(number), "retry_backlog": integer, "recent_failures": array(["type": "object"]),
                "attention": array(ref("Task")), "healthy": boolean,
            ], required: ["ok", "stalled", "stuck", "retry_backlog", "attention"]),
            "Preflight": object(["ok": boolean, "target": string, "strict": boolean, "require_paused": boolean,
                                 "checks": array(object(["name": string, "ok": boolean, "required": boolean, "detail": string],
                                                        required: ["name", "ok", "required", "detail"])), "checked_at": time],
                                required: ["ok", "checks"]),
            "DispatchDecision": object([
                "ok": boolean, "action": ["type": "string", "enum": ["paused", "noop", "dry_run_dispatch", "live_dispatch", "dispatch_blocked"]],
                "reason": string, "dry_run": boolean, "candidate": nullable(["type": "object"]), "blockers": array(string),
                "event_id": integer, "task": nullable(ref("Task")), "requested_by": string,
            ], required: ["ok", "action", "reason", "blockers", "event_id"]),
        ]
    }

    func openAPIDocument() -> JSON {
        var paths: [String: [String: JSON]] = [:]
        for route in router.routes {
            let key = "\(route.method) \(route.pattern)"
            let spec = Self.specs[key] ?? RouteSpec(responses: [500: "UNDOCUMENTED ROUTE"])
            var operation: [String: JSON] = ["summary": .string(route.summary), "operationId": .string(Self.operationID(route))]
            var parameters: [JSON] = route.segments.filter { $0.hasPrefix("{") }.map { segment in
                let name = String(segment.dropFirst().dropLast())
                return ["name": .string(name), "in": "path", "required": true,
                        "schema": name == "id" ? ["type": "integer", "minimum": 1] : Self.string]
            }
            for (name, schema, description) in spec.query {
                parameters.append(["name": .string(name), "in": "query", "required": false, "schema": schema, "description": .string(description)])
            }
            if !parameters.isEmpty { operation["parameters"] = .array(parameters) }
            if let request = spec.request {
                operation["requestBody"] = ["required": false, "content": ["application/json": ["schema": request]]]
            }
            var responses: [String: JSON] = [:]
            for (code, description) in spec.responses {
                let schema = code < 400 || spec.errorsWithResponseBody.contains(code) ? spec.response : Self.ref("Error")
                let type = code < 400 && (route.pattern.hasPrefix("/dashboard") || route.pattern == "/metrics")
                    ? (route.pattern == "/metrics" ? "text/plain" : "text/html") : "application/json"
                responses[String(code)] = code == 303 ? ["description": .string(description)]
                    : ["description": .string(description), "content": .object([type: ["schema": schema]])]
            }
            operation["responses"] = .object(responses)
            switch route.access {
            case .open: operation["security"] = .array([])
            case .read, .mutate: operation["security"] = [["bearerAuth": []], ["sessionCookie": []]]
            }
            paths[route.pattern, default: [:]][route.method.lowercased()] = .object(operation)
        }
        return [
            "openapi": "3.0.3",
            "info": ["title": "Switchyard gate", "version": .string(switchyardVersion),
                     "description": "Control plane API for supervised AI-agent runs (Enoch-compatible paths where Enoch has them)."],
            "paths": .object(paths.mapValues { .object($0) }),
            "components": [
                "schemas": .object(Self.schemas),
                "securitySchemes": ["bearerAuth": ["type": "http", "scheme": "bearer"],
                                    "sessionCookie": ["type": "apiKey", "in": "cookie", "name": .string(Authenticator.cookieName)]],
            ],
            "security": [["bearerAuth": []]],
        ]
    }

    static func operationID(_ route: Route) -> String {
        let words = route.pattern.split(separator: "/").map { $0.replacingOccurrences(of: "{", with: "by_").replacingOccurrences(of: "}", with: "") }
        return route.method.lowercased() + "_" + words.joined(separator: "_").replacingOccurrences(of: "-", with: "_").replacingOccurrences(of: ".", with: "_")
    }
}
