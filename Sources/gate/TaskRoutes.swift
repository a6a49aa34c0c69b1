import Shared

extension GateService {
    func registerTaskRoutes(_ router: inout Router) {
        router.add("POST", "/control/api/tasks", .mutate, "Submit a task (idempotent with idempotency_key)") { [unowned self] context in
            let object = try context.body(allowed: IntakeRequest.knownFields)
            var request = try IntakeRequest(json: .object(object))
            if object["requested_by"] == nil { request.requestedBy = context.actor(nil) }
            // submit() returns after COMMIT, which with synchronous=FULL has synced the WAL: 201 means durable.
            let outcome = try TaskStore(db: self.runtime.db, retryPolicy: self.runtime.configuration.retryPolicy).submit(request, at: context.now)
            switch outcome {
            case .created(let task):
                self.nudge("scheduler")
                self.runtime.log.info("task submitted by \(request.requestedBy)", ["TASK_ID": String(task.id), "ATTEMPT": "0", "LANE": task.lane])
                return .now(.json(201, ["ok": true, "task": task.json(), "replayed": false],
                                  headers: [("location", "/control/api/tasks/\(task.id)")]))
            case .replayed(let task):
                return .now(.json(200, ["ok": true, "task": task.json(), "replayed": true]))
            }
        }
        router.add("GET", "/control/api/tasks", .read, "List tasks (filters: status, lane; cursor paging, newest first)") { [unowned self] context in
            var conditions: [String] = []
            var arguments: [SQLBindable] = []
            if let statusList = context.request.query["status"], !statusList.isEmpty {
                var placeholders: [String] = []
                for name in statusList.split(separator: ",") {
                    guard let status = TaskStatus(rawValue: String(name)) else {
                        throw APIError.badRequest("unknown status '\(name.prefix(40))' (known: \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", ")))", field: "status")
                    }
                    arguments.append(status.rawValue)
                    placeholders.append("?\(arguments.count)")
                }
                conditions.append("status IN (\(placeholders.joined(separator: ",")))")
            }
            if let lane = context.request.query["lane"], !lane.isEmpty {
                guard Names.isValid(lane) else { throw APIError.badRequest(Names.rule, field: "lane") }
                arguments.append(lane)
                conditions.append("lane = ?\(arguments.count)")
            }
            return .now(.json(200, try self.page(context, conditions: conditions, arguments: arguments)))
        }
        router.add("GET", "/control/api/tasks/{id}", .read, "One task with its events, agent and output tail") { [unowned self] context in
            .now(.json(200, try self.taskDetail(try context.parameterID())))
        }
        router.add("POST", "/control/api/tasks/{id}/cancel", .mutate, "Cancel a task (a running one has its agent stopped first)") { [unowned self] context in
            let body = try context.body(allowed: ["reason", "requested_by"])
            let id = try context.parameterID()
            let actor = context.actor(try context.string(body, "requested_by", maxBytes: 128))
            let reason = try context.string(body, "reason") ?? "canceled by \(actor)"
            let db = self.runtime.db
            let outcome = try db.write { () -> TransitionOutcome in
                let outcome = try TaskStore(db: db).requestCancel(id: id, reason: reason, source: "gate:\(actor)", at: context.now)
                if outcome.didApply {
                    try AuditLog(db: db).record(actor: actor, tokenIdentity: context.principal?.identity, action: "cancel", taskID: id,
                                                at: context.now, detail: ["reason": .string(reason)])
                }
                return outcome
            }
            return .now(try self.transitionResponse(id, outcome, verb: "cancel", wake: "poller"))
        }
        router.add("POST", "/control/api/tasks/{id}/retry", .mutate, "Queue a failed, dead, canceled or reviewed task again") { [unowned self] context in
            let body = try context.body(allowed: ["reason", "requested_by"])
            return .now(try self.operatorChange(context, body: body, verb: "retry") { .retry(reason: $0) })
        }
        router.add("POST", "/control/api/tasks/{id}/accept", .mutate, "Accept a result under review as succeeded") { [unowned self] context in
            let body = try context.body(allowed: ["reason", "requested_by"])
            return .now(try self.operatorChange(context, body: body, verb: "accept") { .accept(reason: $0) })
        }
        router.add("GET", "/control/api/queues/{view}", .read, "Queue views: active, queued, attention, done, failed, dead") { [unowned self] context in
            guard let view = TaskQueueView(rawValue: context.parameters["view"] ?? "") else {
                throw APIError(status: 404, message: "unknown queue view (known: \(TaskQueueView.allCases.map(\.rawValue).joined(separator: ", ")))",
                               field: "view")
            }
            var page = try self.page(context, conditions: [view.condition], arguments: [])
            if case .object(var members) = page { members["view"] = .string(view.rawValue); page = .object(members) }
            return .now(.json(200, page))
        }
    }

    /// Newest first; `cursor` is the last id of the previous page.
    func page(_ context: RequestContext, conditions: [String], arguments: [SQLBindable]) throws -> JSON {
        let limit = try pageLimit(context)
        let cursor = try pageCursor(context)
        var all = conditions
        all.append("id < ?\(arguments.count + 1)")
        let tasks = try TaskStore(db: runtime.db).tasks(matching: all.joined(separator: " AND "), arguments + [cursor], order: "id DESC", limit: limit)
        let next: JSON = tasks.count == limit ? .int(tasks.last!.id) : .null
        return ["ok": true, "items": .array(tasks.map { $0.json(includePrompt: false) }), "next_cursor": next]
    }

    func taskDetail(_ id: Int64) throws -> JSON {
        let db = runtime.db
        return try db.read {
            let store = TaskStore(db: db)
            guard let task = try store.task(id: id) else { throw APIError.notFound("no task \(id)") }
            let events = try store.events(task: id, limit: 500)
            let agent = try task.agentID.flatMap { try AgentStore(db: db).agent(id: $0) }
            let tail = try db.query("""
                SELECT line, truncated, at FROM (SELECT id, line, truncated, at FROM agent_output
                WHERE task_id = ?1 AND attempt = ?2 AND kind = 'line' ORDER BY id DESC LIMIT 50) ORDER BY id
                """, id, task.attempt) { row -> JSON in
                ["line": .string(String(row.string(0).prefix(2000))), "truncated": .bool(row.bool(1)), "at": Timestamp.iso8601(row.int64(2))]
            }
            return ["ok": true, "task": task.json(), "events": .array(events.map(\.json)), "agent": agent?.json ?? .null,
                    "output_tail": .array(tail), "stderr_tail": agent.map { .string($0.stderrTail) } ?? .null]
        }
    }

    private func operatorChange(_ context: RequestContext, body: [String: JSON], verb: String, _ change: (String) -> TaskChange) throws -> HTTPResponse {
        let id = try context.parameterID()
        let actor = context.actor(try context.string(body, "requested_by", maxBytes: 128))
        let reason = try context.string(body, "reason") ?? "\(verb) by \(actor)"
        let db = runtime.db
        let outcome = try db.write { () -> TransitionOutcome in
            let store = TaskStore(db: db, retryPolicy: runtime.configuration.retryPolicy)
            guard let task = try store.task(id: id) else { return .notFound }
            let outcome = try store.apply(change(reason), to: id, attempt: task.attempt, source: "gate:\(actor)", at: context.now)
            if outcome.didApply {
                try AuditLog(db: db).record(actor: actor, tokenIdentity: context.principal?.identity, action: verb, taskID: id,
                                            at: context.now, detail: ["reason": .string(reason)])
            }
            return outcome
        }
        return try transitionResponse(id, outcome, verb: verb, wake: "scheduler")
    }

    private func transitionResponse(_ id: Int64, _ outcome: TransitionOutcome, verb: String, wake: String) throws -> HTTPResponse {
        switch outcome {
        case .notFound:
            throw APIError.notFound("no task \(id)")
        case .forbidden(let from, _):
            throw APIError(status: 409, message: "cannot \(verb) a task that is \(from.rawValue)", code: "invalid_transition")
        case .staleAttempt:
            throw APIError(status: 409, message: "the task changed meanwhile; read it again", code: "stale")
        case .applied:
            nudge(wake)
            let task = try TaskStore(db: runtime.db).task(id: id)
            return .json(200, ["ok": true, "action": .string(verb), "task": task?.json(includePrompt: false) ?? .null])
        }
    }
}
