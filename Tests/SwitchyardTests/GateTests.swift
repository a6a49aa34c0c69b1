import Foundation
import Glibc
import Shared
import XCTest

/// The real switchyard-gate process against a real database.
final class GateTests: XCTestCase {
    static let control = "ctl-" + String(repeating: "9f3b2c7d", count: 5)
    static let readOnly = "ro-" + String(repeating: "41ac8e0b", count: 5)

    private var sandbox: Sandbox!
    private var gate: ChildProcess!
    private var base = ""

    override func setUpWithError() throws {
        sandbox = Sandbox()
        try startGate()
    }

    override func tearDown() {
        gate?.signal(SIGTERM)
        _ = gate?.wait(timeout: .seconds(10))
        gate = nil
        sandbox = nil
    }

    private func startGate(_ extra: [String: String] = [:]) throws {
        try Self.control.write(toFile: sandbox.path + "/control-token", atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: sandbox.path + "/state/run/gate.address")
        var env = sandbox.environment([
            "SWITCHYARD_GATE_LISTEN": "127.0.0.1:0", "SWITCHYARD_CONTROL_TOKEN_FILE": sandbox.path + "/control-token",
            "SWITCHYARD_READONLY_TOKEN": Self.readOnly, "SWITCHYARD_LOG_LEVEL": "debug",
        ])
        env.merge(extra) { $1 }
        gate = try sandbox.start("switchyard-gate", environment: env, logName: "gate")
        var address = ""
        XCTAssertTrue(waitUntil(.seconds(20)) {
            address = self.sandbox.read("state/run/gate.address").trimmingCharacters(in: .whitespacesAndNewlines)
            return !address.isEmpty
        }, sandbox.read("gate.err"))
        base = "http://" + address
    }

    @discardableResult
    private func call(_ method: String, _ path: String, token: String? = GateTests.control, json: JSON? = nil,
                      raw: String? = nil) throws -> (status: Int, json: JSON?, text: String) {
        let body = raw.map { Array($0.utf8) } ?? json.map { Array($0.serialized().utf8) }
        let response = try HTTPClient.request(method, url: base, path: path, bearer: token, body: body)
        return (response.status, response.json, String(decoding: response.body, as: UTF8.self))
    }

    private func submit(_ prompt: String, lane: String = "default", key: String? = nil) throws -> Int64 {
        var body: [String: JSON] = ["prompt": .string(prompt), "lane": .string(lane)]
        if let key { body["idempotency_key"] = .string(key) }
        let r = try call("POST", "/control/api/tasks", json: .object(body))
        XCTAssertEqual(r.status, 201, r.text)
        return try XCTUnwrap(r.json?["task"]?["id"]?.int64Value)
    }

    // MARK: Auth

    func testEveryProtectedRoute_answers401WithoutAToken_and403ForReadOnlyMutations() throws {
        let document = try XCTUnwrap(call("GET", "/openapi.json", token: nil).json)
        let paths = try XCTUnwrap(document["paths"]?.objectValue)
        var checked = 0
        for (path, methods) in paths {
            for (method, operation) in methods.objectValue ?? [:] {
                let concrete = path.replacingOccurrences(of: "{id}", with: "1").replacingOccurrences(of: "{view}", with: "active")
                let open = operation["security"]?.arrayValue?.isEmpty == true
                // The sign-in form answers 401 to a wrong token in its body: that is its job.
                if path == "/dashboard/login" { continue }
                let anonymous = try call(method.uppercased(), concrete, token: nil, json: [:])
                if open {
                    XCTAssertNotEqual(anonymous.status, 401, "\(method) \(path) is open")
                } else {
                    XCTAssertEqual(anonymous.status, 401, "\(method) \(path) without a token")
                    XCTAssertEqual(anonymous.json?["error"]?["code"]?.stringValue, "unauthorized")
                    let wrong = try call(method.uppercased(), concrete, token: "not-the-token-" + String(repeating: "x", count: 30), json: [:])
                    XCTAssertEqual(wrong.status, 401, "\(method) \(path) with a wrong token")
                    if method == "post" && !path.hasPrefix("/dashboard") {
                        let readOnly = try call("POST", concrete, token: Self.readOnly, json: [:])
                        XCTAssertEqual(readOnly.status, 403, "\(method) \(path) with the read-only token")
                    }
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 15)
        let status = try call("GET", "/control/api/status", token: Self.readOnly)
        XCTAssertEqual(status.status, 200, "the read-only token reads")
        XCTAssertFalse(sandbox.read("gate.err").contains(Self.control), "the token never appears in the log")
    }

    // MARK: OpenAPI

    func testOpenAPI_documentsEveryRoute_andTheAnswersMatchIt() throws {
        let document = try XCTUnwrap(call("GET", "/openapi.json", token: nil).json)
        XCTAssertEqual(document["openapi"]?.stringValue, "3.0.3")
        XCTAssertFalse(document.serialized().contains("UNDOCUMENTED"), "every route has a spec")
        let schemas = try XCTUnwrap(document["components"]?["schemas"])
        let id = try submit("documented")
        try call("POST", "/control/pause", json: ["reason": "check"])
        // One happy call of every JSON route; the status must be documented and required fields present.
        let calls: [(String, String, String, JSON?)] = [
            ("get", "/healthz", "/healthz", nil), ("get", "/control/api/status", "/control/api/status", nil),
            ("get", "/control/api/queue-health", "/control/api/queue-health", nil),
            ("post", "/control/dispatch-next", "/control/dispatch-next", ["dry_run": true]),
            ("post", "/control/resume", "/control/resume", ["resumed_by": "test"]),
            ("post", "/control/pause", "/control/pause", ["reason": "r", "paused_by": "test"]),
            ("post", "/control/api/flags", "/control/api/flags", ["auto_dispatch": false]),
            ("post", "/control/api/tasks", "/control/api/tasks", ["prompt": "p"]),
            ("get", "/control/api/tasks", "/control/api/tasks?status=queued", nil),
            ("get", "/control/api/tasks/{id}", "/control/api/tasks/\(id)", nil),
            ("post", "/control/api/tasks/{id}/cancel", "/control/api/tasks/\(id)/cancel", ["reason": "r"]),
            ("post", "/control/api/tasks/{id}/retry", "/control/api/tasks/\(id)/retry", [:]),
            ("post", "/control/api/tasks/{id}/accept", "/control/api/tasks/\(id)/accept", [:]),
            ("get", "/control/api/queues/{view}", "/control/api/queues/attention", nil),
            ("get", "/control/api/agents", "/control/api/agents", nil), ("get", "/control/api/events", "/control/api/events", nil),
        ]
        for (method, path, concrete, body) in calls {
            let operation = try XCTUnwrap(document["paths"]?[path]?[method], "\(method) \(path) documented")
            let r = try call(method.uppercased(), concrete, json: body ?? (method == "post" ? [:] : nil))
            let response = operation["responses"]?[String(r.status)]
            XCTAssertNotNil(response, "\(method) \(concrete) answered \(r.status), which is not documented: \(r.text.prefix(200))")
            guard let schema = response?["content"]?["application/json"]?["schema"], let body = r.json else { continue }
            let resolved = resolve(schema, schemas)
            for field in resolved["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                XCTAssertNotNil(body[field], "\(method) \(concrete) \(r.status): required field \(field) missing")
            }
        }
        let metrics = try call("GET", "/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.text.contains("switchyard_dispatch_latency_seconds_bucket"))
        XCTAssertTrue(metrics.text.contains("switchyard_tasks{status=\"queued\"}"))
    }

    private func resolve(_ schema: JSON, _ schemas: JSON) -> JSON {
        if let ref = schema["$ref"]?.stringValue { return schemas[String(ref.split(separator: "/").last!)] ?? .null }
        return schema
    }

    // MARK: Enoch's flow

    func testEnochDispatchFlow_curlsWorkAsWritten() throws {
        let health = try call("GET", "/healthz", token: nil)
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json?["ok"], true)
        XCTAssertEqual(health.json?["service"]?.stringValue, "switchyard-gate")
        XCTAssertNotNil(health.json?["timestamp"]?.stringValue)

        let status = try XCTUnwrap(call("GET", "/control/api/status").json)
        for field in ["dispatch_safe", "dispatch_blockers", "paused", "maintenance_mode", "auto_dispatch", "live_dispatch_enabled",
                      "counts", "active_items", "next_candidate", "components", "agents", "budget", "warnings"] {
            XCTAssertNotNil(status[field], "status has \(field)")
        }
        XCTAssertEqual(status["dispatch_idle"], true, "an empty queue is idle, not held")
        XCTAssertEqual(status["dispatch_blockers"], ["no_queued_tasks"])
        XCTAssertNotNil(try call("GET", "/control/api/queue-health").json?["stalled"])

        let preflight = try call("POST", "/control/api/preflight", json: [
            "wake_gate_url": .string(base), "bearer_token": .string(Self.control), "require_paused": false, "strict": false])
        XCTAssertEqual(preflight.status, 200, preflight.text)
        let checks = preflight.json?["checks"]?.arrayValue ?? []
        XCTAssertEqual(checks.first { $0["name"] == "healthz" }?["ok"], true)
        XCTAssertEqual(checks.first { $0["name"] == "status_auth" }?["ok"], true)
        let badToken = try call("POST", "/control/api/preflight", json: ["wake_gate_url": .string(base), "bearer_token": "wrong"])
        XCTAssertEqual(badToken.json?["ok"], false, "a rejected worker token fails the preflight")
        let strictPaused = try call("POST", "/control/api/preflight", json: [
            "wake_gate_url": .string(base), "bearer_token": .string(Self.control), "require_paused": true])
        XCTAssertEqual(strictPaused.json?["ok"], false, "require_paused fails on an unpaused worker")
        XCTAssertEqual(try call("POST", "/control/api/preflight", json: ["wake_gate_url": "ftp://x"]).status, 400)

        let empty = try call("POST", "/control/dispatch-next", json: ["dry_run": true, "requested_by": "operator"])
        XCTAssertEqual(empty.json?["action"]?.stringValue, "noop")
        let id = try submit("work for the operator")
        let dry = try call("POST", "/control/dispatch-next", json: ["dry_run": true, "requested_by": "operator"])
        XCTAssertEqual(dry.status, 200)
        XCTAssertEqual(dry.json?["action"]?.stringValue, "dry_run_dispatch")
        XCTAssertEqual(dry.json?["candidate"]?["id"]?.int64Value, id)
        XCTAssertNotNil(dry.json?["event_id"]?.int64Value)
        XCTAssertEqual(try call("GET", "/control/api/tasks/\(id)").json?["task"]?["status"]?.stringValue, "queued", "a dry run changes nothing")

        try call("POST", "/control/api/flags", json: ["live_dispatch_enabled": false])
        XCTAssertEqual(try call("POST", "/control/dispatch-next", json: ["dry_run": false]).status, 501)
        try call("POST", "/control/api/flags", json: ["live_dispatch_enabled": true])
        try call("POST", "/control/pause", json: ["reason": "maintenance window", "paused_by": "alice", "maintenance_mode": true])
        let paused = try call("POST", "/control/dispatch-next", json: ["dry_run": false, "requested_by": "operator"])
        XCTAssertEqual(paused.status, 409)
        XCTAssertEqual(paused.json?["action"]?.stringValue, "paused")
        try call("POST", "/control/resume", json: ["resumed_by": "alice", "maintenance_mode": false])
        let live = try call("POST", "/control/dispatch-next", json: ["dry_run": false, "requested_by": "operator"])
        XCTAssertEqual(live.status, 200, live.text)
        XCTAssertEqual(live.json?["action"]?.stringValue, "live_dispatch")
        XCTAssertEqual(try call("GET", "/control/api/tasks/\(id)").json?["task"]?["status"]?.stringValue, "claimed")

        // Every mutation is in the audit log with who did it and which credential.
        let events = try XCTUnwrap(call("GET", "/control/api/events?limit=50").json?["items"]?.arrayValue)
        let pause = try XCTUnwrap(events.first { $0["action"] == "pause" })
        XCTAssertEqual(pause["actor"]?.stringValue, "alice")
        XCTAssertTrue(pause["token_identity"]?.stringValue?.hasPrefix("control:") ?? false)
        XCTAssertTrue(events.contains { $0["action"] == "dispatch_next" && $0["detail"]?["action"] == "live_dispatch" })
    }

    // MARK: Tasks

    func testIntake_isIdempotent_validatesFields_andLimitsBodies() throws {
        let first = try call("POST", "/control/api/tasks", json: ["prompt": "x", "idempotency_key": "abc"])
        XCTAssertEqual(first.status, 201)
        let replay = try call("POST", "/control/api/tasks", json: ["prompt": "x", "idempotency_key": "abc"])
        XCTAssertEqual(replay.status, 200)
        XCTAssertEqual(replay.json?["replayed"], true)
        XCTAssertEqual(replay.json?["task"]?["id"], first.json?["task"]?["id"])
        let conflict = try call("POST", "/control/api/tasks", json: ["prompt": "y", "idempotency_key": "abc"])
        XCTAssertEqual(conflict.status, 409)
        XCTAssertEqual(conflict.json?["error"]?["field"]?.stringValue, "idempotency_key")
        for (body, field) in [(#"{"prompt":""}"#, "prompt"), (#"{"prompt":"p","lane":"a b"}"#, "lane"), (#"{"prompt":"p","priorty":1}"#, "priorty"),
                              (#"{"prompt":"p","max_attempts":0}"#, "max_attempts"), (#"{"title":"t"}"#, "prompt"), (#"[1]"#, "body"),
                              (#"{"prompt":"p""#, "body")] {
            let r = try call("POST", "/control/api/tasks", raw: body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertEqual(r.json?["error"]?["field"]?.stringValue, field, body)
        }
        let huge = try call("POST", "/control/api/tasks", raw: "{\"prompt\":\"" + String(repeating: "x", count: 1_100_000) + "\"}")
        XCTAssertEqual(huge.status, 413)
        XCTAssertEqual(try call("GET", "/control/api/tasks").json?["items"]?.arrayValue?.count, 1, "nothing else was created")
    }

    func testTaskViews_filtersPagingDetailCancelRetryAccept() throws {
        var ids: [Int64] = []
        for i in 0..<7 { ids.append(try submit("task \(i)", lane: i % 2 == 0 ? "even" : "odd")) }
        let even = try XCTUnwrap(call("GET", "/control/api/tasks?lane=even").json?["items"]?.arrayValue)
        XCTAssertEqual(even.count, 4)
        XCTAssertEqual(try call("GET", "/control/api/tasks?status=bogus").status, 400)
        let page1 = try XCTUnwrap(call("GET", "/control/api/tasks?limit=3").json)
        XCTAssertEqual(page1["items"]?.arrayValue?.compactMap { $0["id"]?.int64Value }, Array(ids.reversed().prefix(3)))
        let cursor = try XCTUnwrap(page1["next_cursor"]?.int64Value)
        let page2 = try XCTUnwrap(call("GET", "/control/api/tasks?limit=3&cursor=\(cursor)").json?["items"]?.arrayValue)
        XCTAssertEqual(page2.compactMap { $0["id"]?.int64Value }, Array(ids.reversed()[3..<6]))

        let canceled = try call("POST", "/control/api/tasks/\(ids[0])/cancel", json: ["reason": "not needed", "requested_by": "bob"])
        XCTAssertEqual(canceled.status, 200)
        XCTAssertEqual(canceled.json?["task"]?["status"]?.stringValue, "canceled")
        XCTAssertEqual(try call("POST", "/control/api/tasks/\(ids[0])/cancel", json: [:]).status, 409)
        XCTAssertEqual(try call("POST", "/control/api/tasks/\(ids[0])/accept", json: [:]).status, 409)
        let retried = try call("POST", "/control/api/tasks/\(ids[0])/retry", json: ["reason": "try again"])
        XCTAssertEqual(retried.json?["task"]?["status"]?.stringValue, "queued")
        XCTAssertEqual(try call("POST", "/control/api/tasks/9999/cancel", json: [:]).status, 404)
        XCTAssertEqual(try call("GET", "/control/api/tasks/abc").status, 400)

        let detail = try XCTUnwrap(call("GET", "/control/api/tasks/\(ids[0])").json)
        XCTAssertEqual(detail["events"]?.arrayValue?.compactMap { $0["kind"]?.stringValue }, ["submitted", "canceled", "retry_requested"])
        XCTAssertEqual(detail["task"]?["prompt"]?.stringValue, "task 0")
        XCTAssertEqual(try call("GET", "/control/api/queues/queued").json?["items"]?.arrayValue?.count, 7)
        XCTAssertEqual(try call("GET", "/control/api/queues/nonsense").status, 404)
        XCTAssertEqual(try call("DELETE", "/control/api/tasks/\(ids[1])").status, 405)
    }

    // MARK: Backup

    func testOnlineBackup_whileWritersRun_isConsistent() throws {
        let writers = try (1...2).map { worker in
            try sandbox.start("switchyard-testkit", ["write-load", sandbox.databasePath, String(worker), "3"], logName: "writer\(worker)")
        }
        XCTAssertTrue(waitUntil(.seconds(10)) { ((try? Database(path: self.sandbox.databasePath).scalarInt("SELECT count(*) FROM tasks")) ?? nil ?? 0) > 50 })
        let r = try call("POST", "/control/api/backup", json: ["requested_by": "nightly"])
        XCTAssertEqual(r.status, 200, r.text)
        let path = try XCTUnwrap(r.json?["path"]?.stringValue)
        XCTAssertTrue(path.hasPrefix(sandbox.path + "/state/backups/"))
        for writer in writers { XCTAssertEqual(writer.wait(timeout: .seconds(30)), .exited(0), "writers were not disturbed") }
        let copy = try Database(path: path)
        XCTAssertEqual(try copy.scalarString("PRAGMA integrity_check"), "ok")
        XCTAssertEqual(try Migrator.currentVersion(of: copy), Migrator.latestVersion)
        let tasks = try XCTUnwrap(copy.scalarInt("SELECT count(*) FROM tasks"))
        XCTAssertGreaterThan(tasks, 50)
        // A consistent snapshot: every task in the copy has its events, and the counters agree.
        XCTAssertEqual(try copy.scalarInt("SELECT count(*) FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.id)"), 0)
        XCTAssertEqual(try copy.scalarInt("SELECT sum(n) FROM task_counts"), tasks)
        XCTAssertTrue(try call("GET", "/control/api/events").json?["items"]?.arrayValue?.contains { $0["action"] == "backup" } ?? false)
    }

    // MARK: Dashboard

    func testDashboard_loginCookieOriginAndPages() throws {
        XCTAssertEqual(try call("GET", "/dashboard/login", token: nil).status, 200)
        // Sign in over a raw socket to see the Set-Cookie header.
        let login = try rawExchange("POST /dashboard/login HTTP/1.1\r\nHost: gate\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(("token=" + Self.control).utf8.count)\r\nConnection: close\r\n\r\ntoken=\(Self.control)")
        XCTAssertTrue(login.hasPrefix("HTTP/1.1 303"), login)
        let cookieLine = try XCTUnwrap(login.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") })
        XCTAssertTrue(cookieLine.contains("HttpOnly") && cookieLine.contains("SameSite=Strict"), String(cookieLine))
        let cookie = String(cookieLine.dropFirst("set-cookie: ".count).split(separator: ";")[0])
        let bad = try rawExchange("POST /dashboard/login HTTP/1.1\r\nHost: gate\r\nContent-Length: 11\r\nConnection: close\r\n\r\ntoken=wrong")
        XCTAssertTrue(bad.hasPrefix("HTTP/1.1 401"))

        _ = try submit("shown on the dashboard")
        for tab in ["active", "queued", "attention", "done", "failed", "agents", "components", "events"] {
            let page = try rawExchange("GET /dashboard?tab=\(tab) HTTP/1.1\r\nHost: gate\r\nCookie: \(cookie)\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(page.hasPrefix("HTTP/1.1 200"), "\(tab): \(page.prefix(200))")
            XCTAssertTrue(page.contains("Ready to dispatch") || page.contains("Hold dispatch"))
            XCTAssertFalse(page.contains("http://") && page.contains("<script src"), "no external assets")
        }
        let taskPage = try rawExchange("GET /dashboard/tasks/1 HTTP/1.1\r\nHost: gate\r\nCookie: \(cookie)\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(taskPage.contains("shown on the dashboard"))
        // Cookie-authenticated mutations need a matching Origin.
        let body = #"{"reason":"x"}"#
        let noOrigin = try rawExchange("POST /control/pause HTTP/1.1\r\nHost: gate\r\nCookie: \(cookie)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        XCTAssertTrue(noOrigin.hasPrefix("HTTP/1.1 403"), noOrigin)
        let foreign = try rawExchange("POST /control/pause HTTP/1.1\r\nHost: gate\r\nOrigin: http://evil.example\r\nCookie: \(cookie)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        XCTAssertTrue(foreign.hasPrefix("HTTP/1.1 403"))
        let same = try rawExchange("POST /control/pause HTTP/1.1\r\nHost: gate\r\nOrigin: http://gate\r\nCookie: \(cookie)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        XCTAssertTrue(same.hasPrefix("HTTP/1.1 200"), same)
        let browser = try rawExchange("GET /dashboard HTTP/1.1\r\nHost: gate\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(browser.hasPrefix("HTTP/1.1 303") && browser.contains("location: /dashboard/login"))
    }

    // MARK: Abuse

    func testSlowClient_gets408_whileOthersAreServed() throws {
        gate.signal(SIGTERM)
        _ = gate.wait(timeout: .seconds(10))
        try startGate(["SWITCHYARD_HTTP_HEADER_TIMEOUT_MS": "400"])
        let slow = try connectRaw()
        defer { close(slow) }
        _ = "GET /healthz HTTP/1.1\r\nHo".withCString { send(slow, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        XCTAssertEqual(try call("GET", "/healthz", token: nil).status, 200, "others are served meanwhile")
        let answer = readAll(slow, timeout: .seconds(5))
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 408"), answer)
        XCTAssertTrue(answer.contains("connection: close"))
    }

    func testConnectionFlood_staysBounded_andRecovers() throws {
        gate.signal(SIGTERM)
        _ = gate.wait(timeout: .seconds(10))
        try startGate(["SWITCHYARD_HTTP_MAX_CONNECTIONS": "20", "SWITCHYARD_HTTP_IDLE_TIMEOUT_MS": "600", "SWITCHYARD_HTTP_HEADER_TIMEOUT_MS": "600"])
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        for _ in 0..<80 { flood.append(try connectRaw()) }
        // Beyond the cap, connections are answered 503 and closed at once.
        var refused = 0
        for fd in flood.suffix(40) where readAll(fd, timeout: .seconds(2)).hasPrefix("HTTP/1.1 503") { refused += 1 }
        XCTAssertGreaterThanOrEqual(refused, 40)
        // The idle ones are closed by the server; then it serves again, though the flooder never closed anything.
        XCTAssertTrue(waitUntil(.seconds(10)) { (try? self.call("GET", "/healthz", token: nil).status) == 200 })
        let metrics = try call("GET", "/metrics").text
        let rejected = metrics.split(separator: "\n").first { $0.hasPrefix("switchyard_gate_rejected_connections_total ") }
        XCTAssertGreaterThanOrEqual(Int(rejected?.split(separator: " ").last ?? "") ?? 0, 40, "the refusals are visible in /metrics")
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(gate.pid)/fd").count
        XCTAssertLessThan(fds, 60, "the gate holds no descriptor per flood connection")
    }

    func testKeepAlive_servesSeveralRequestsOnOneConnection() throws {
        let fd = try connectRaw()
        defer { close(fd) }
        let request = "GET /healthz HTTP/1.1\r\nHost: gate\r\n\r\n"
        let twice = request + request
        _ = twice.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var text = ""
        XCTAssertTrue(waitUntil(.seconds(5)) {
            text += self.readAvailable(fd)
            return text.components(separatedBy: "HTTP/1.1 200").count == 3
        }, text)
        XCTAssertTrue(text.contains("connection: keep-alive"))
    }

    func testProductionGate_refusesMissingPlaceholderOrShortTokens() throws {
        for (token, expected) in [(nil as String?, "no control token"), ("changeme-changeme-changeme-changeme-1234", "placeholder"), ("short", "shorter than 32")] {
            var env = sandbox.environment(["SWITCHYARD_MODE": "production", "SWITCHYARD_GATE_LISTEN": "127.0.0.1:0"])
            env["SWITCHYARD_STATE_DIR"] = sandbox.path + "/prod"
            if let token { env["SWITCHYARD_CONTROL_TOKEN"] = token }
            let child = try sandbox.start("switchyard-gate", environment: env, logName: "prod")
            XCTAssertEqual(child.wait(timeout: .seconds(20)), .exited(78), expected)
            XCTAssertTrue(sandbox.read("prod.err").contains(expected), sandbox.read("prod.err"))
            if let token, token.count >= 32 { XCTAssertFalse(sandbox.read("prod.err").contains(token), "the refused token is not echoed") }
        }
    }

    // MARK: Raw sockets

    private func connectRaw() throws -> Int32 {
        let (host, port, _) = try HTTPClient.parseURL(base)
        return try HTTPClient.openConnection(host: host, port: port)
    }

    private func readAvailable(_ fd: Int32) -> String {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 50) == 1 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    private func readAll(_ fd: Int32, timeout: Duration) -> String {
        var data: [UInt8] = []
        let deadline = MonotonicInstant.now().adding(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while MonotonicInstant.now() < deadline {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) == 1 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func rawExchange(_ request: String) throws -> String {
        let fd = try connectRaw()
        defer { close(fd) }
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        return readAll(fd, timeout: .seconds(5))
    }
}
