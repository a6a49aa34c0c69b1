import Shared

extension GateService {
    func registerDashboardRoutes(_ router: inout Router) {
        router.add("GET", "/dashboard/login", .open, "Dashboard sign-in form") { _ in
            .now(.text(200, DashboardPage.login(error: nil), contentType: "text/html; charset=utf-8"))
        }
        router.add("POST", "/dashboard/login", .open, "Exchange a token for a dashboard session cookie") { [unowned self] context in
            // A login form posted from another site must not plant a session either.
            if context.request.header("origin") != nil && !Authenticator.originMatches(context.request) {
                throw APIError(status: 403, message: "cross-origin sign-in refused")
            }
            let form = String(decoding: context.request.body, as: UTF8.self)
            var token = ""
            for pair in form.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == "token" { token = HTTPParser.percentDecode(kv[1], plusIsSpace: true) ?? "" }
            }
            guard let principal = self.auth.principal(forToken: token.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                self.runtime.log.warning("dashboard sign-in refused", ["PEER": context.connection.peer])
                return .now(.text(401, DashboardPage.login(error: "That token is not valid."), contentType: "text/html; charset=utf-8"))
            }
            let session = self.auth.startSession(for: principal)
            try AuditLog(db: self.runtime.db).record(actor: principal.identity, tokenIdentity: principal.identity, action: "dashboard_login",
                                                     at: context.now, detail: ["peer": .string(context.connection.peer)])
            return .now(HTTPResponse(status: 303, headers: [
                ("location", "/dashboard"),
                ("set-cookie", "\(Authenticator.cookieName)=\(session); HttpOnly; SameSite=Strict; Path=/; Max-Age=\(Int(Authenticator.sessionLifetime.secondsDouble))"),
            ]))
        }
        router.add("POST", "/dashboard/logout", .read, "End the dashboard session") { [unowned self] context in
            self.auth.endSession(context.request)
            return .now(HTTPResponse(status: 303, headers: [
                ("location", "/dashboard/login"),
                ("set-cookie", "\(Authenticator.cookieName)=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ]))
        }
        router.add("GET", "/dashboard", .read, "The operators' dashboard") { [unowned self] context in
            let tab = DashboardPage.Tab(rawValue: context.request.query["tab"] ?? "active") ?? .active
            let status = try self.statusDocument(now: context.now)
            let rows = try self.dashboardRows(tab, now: context.now)
            let canAct = context.principal?.role == .control
            let main = DashboardPage.main(status: status, tab: tab, rows: rows, canAct: canAct)
            if context.request.query["partial"] == "1" { return .now(.text(200, main, contentType: "text/html; charset=utf-8")) }
            return .now(.text(200, DashboardPage.shell(title: "Switchyard", main: main, canAct: canAct), contentType: "text/html; charset=utf-8"))
        }
        router.add("GET", "/dashboard/tasks/{id}", .read, "One task: timeline and agent output") { [unowned self] context in
            let detail = try self.taskDetail(try context.parameterID())
            let canAct = context.principal?.role == .control
            let main = DashboardPage.task(detail, canAct: canAct)
            if context.request.query["partial"] == "1" { return .now(.text(200, main, contentType: "text/html; charset=utf-8")) }
            return .now(.text(200, DashboardPage.shell(title: "Task", main: main, canAct: canAct), contentType: "text/html; charset=utf-8"))
        }
    }

    func dashboardRows(_ tab: DashboardPage.Tab, now: Microseconds) throws -> JSON {
        let db = runtime.db
        switch tab {
        case .agents:
            return .array(try AgentStore(db: db).recent(limit: 100).map(\.json))
        case .components:
            return .array(try ComponentStore(db: db).all().map { $0.json(now: now) })
        case .events:
            return .array(try db.query("SELECT id, at, actor, action, task_id, detail FROM audit_events ORDER BY id DESC LIMIT 100") { row -> JSON in
                ["id": .int(row.int64(0)), "at": Timestamp.iso8601(row.int64(1)), "actor": .string(row.string(2)),
                 "action": .string(row.string(3)), "task_id": JSON(row.optionalInt64(4)), "detail": .string(row.string(5))]
            })
        default:
            let view = TaskQueueView(rawValue: tab.rawValue) ?? .active
            return .array(try TaskStore(db: db).tasks(matching: view.condition, [], order: "id DESC", limit: 100).map { $0.json(includePrompt: false) })
        }
    }
}

/// HTML for the dashboard. Everything interpolated goes through `escape`.
enum DashboardPage {
    enum Tab: String, CaseIterable {
        case active, queued, attention, done, failed, agents, components, events
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func text(_ value: JSON?) -> String {
        switch value {
        case .string(let s)?: return escape(s)
        case .int(let i)?: return String(i)
        case .double(let d)?: return d == d.rounded() && abs(d) < 1e12 ? String(Int64(d)) : String(format2(d))
        case .bool(let b)?: return b ? "yes" : "no"
        case .null?, nil: return "—"
        default: return escape(value!.serialized())
        }
    }

    static func format2(_ d: Double) -> String {
        let scaled = (d * 10_000).rounded() / 10_000
        return "\(scaled)"
    }

    static func time(_ value: JSON?) -> String {
        guard let s = value?.stringValue else { return "—" }
        return "<time datetime=\"\(escape(s))\">\(escape(String(s.dropFirst(11).prefix(8))))</time>"
    }

    static let style = """
    :root{--bg:#f6f7f9;--fg:#1d2330;--muted:#5d6677;--card:#fff;--line:#dfe3ea;--ok:#17803d;--hold:#b3261e;--warn:#9a6700;--accent:#2557d6}
    *{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
    header{display:flex;align-items:center;gap:16px;padding:10px 20px;background:#1d2330;color:#fff}
    header h1{font-size:16px;margin:0;font-weight:600;letter-spacing:.02em}header .spacer{flex:1}
    header form{margin:0}header button{background:transparent;color:#cfd6e4;border:1px solid #4a5468}
    main{padding:16px 20px;max-width:1400px;margin:0 auto}
    .banner{display:flex;align-items:center;gap:12px;padding:12px 16px;border-radius:8px;font-weight:600;margin-bottom:14px}
    .banner.ready{background:#e3f4e8;color:var(--ok);border:1px solid #b6e0c2}.banner.hold{background:#fbe9e7;color:var(--hold);border:1px solid #f1c3bd}
    .banner .blockers{font-weight:400;color:var(--fg)}.pill{display:inline-block;padding:1px 8px;border-radius:10px;background:#fff;border:1px solid var(--line);font-size:12px;margin:2px 4px 2px 0;font-family:ui-monospace,monospace}
    .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin-bottom:14px}
    .card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
    .card .value{font-size:22px;font-weight:600;margin-top:2px}.card .value.on{color:var(--hold)}.card .value.off{color:var(--ok)}
    .actions{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:14px;align-items:center}
    button{font:inherit;padding:6px 12px;border-radius:6px;border:1px solid var(--line);background:#fff;color:var(--fg);cursor:pointer}
    button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}button.danger{color:var(--hold);border-color:#f1c3bd}
    button:disabled{opacity:.5;cursor:default}
    #result{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px;display:none;max-height:240px;overflow:auto;width:100%}
    nav.tabs{display:flex;gap:2px;border-bottom:1px solid var(--line);margin-bottom:0;flex-wrap:wrap}
    nav.tabs a{padding:8px 14px;color:var(--muted);text-decoration:none;border:1px solid transparent;border-bottom:none;border-radius:6px 6px 0 0}
    nav.tabs a.current{background:#fff;color:var(--fg);border-color:var(--line);margin-bottom:-1px;font-weight:600}
    nav.tabs a .count{color:var(--muted);font-weight:400;margin-left:4px}
    table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line);border-top:none}
    th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}th{font-size:12px;color:var(--muted);font-weight:600;background:#fafbfc}
    td.num{text-align:right;font-variant-numeric:tabular-nums}td a{color:var(--accent);text-decoration:none}
    .status{font-family:ui-monospace,monospace;font-size:12px;padding:1px 6px;border-radius:4px;background:#eef1f6}
    .status.succeeded,.status.ready{background:#e3f4e8;color:var(--ok)}.status.dead,.status.failed,.status.needs_review{background:#fbe9e7;color:var(--hold)}
    .status.running,.status.busy{background:#e5edff;color:var(--accent)}.status.queued,.status.idle{background:#f3f0e6;color:var(--warn)}
    .empty{padding:28px;text-align:center;color:var(--muted);background:#fff;border:1px solid var(--line);border-top:none}
    .warnings{margin:0 0 14px;padding:8px 14px;background:#fff8e1;border:1px solid #f2d98a;border-radius:8px;color:#5c4400}
    .login{max-width:380px;margin:12vh auto;background:#fff;border:1px solid var(--line);border-radius:10px;padding:24px}
    .login input{width:100%;padding:8px;border:1px solid var(--line);border-radius:6px;font:inherit;margin:8px 0 14px}
    .error{color:var(--hold)}pre.output{background:#0f1420;color:#d7dee9;padding:10px;border-radius:6px;overflow:auto;max-height:420px;font-size:12px}
    dl.facts{display:grid;grid-template-columns:160px 1fr;gap:4px 12px;background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px}dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
    h2{font-size:15px;margin:18px 0 8px}.muted{color:var(--muted)}
    """

    static let script = """
    function busy(){return document.querySelector('dialog[open]')||document.activeElement&&document.activeElement.tagName==='INPUT'}
    async function api(path,body){const r=await fetch(path,{method:'POST',credentials:'same-origin',headers:{'Content-Type':'application/json'},body:JSON.stringify(body||{})});
      const t=await r.text();let j;try{j=JSON.parse(t)}catch(e){j={raw:t}};const el=document.getElementById('result');if(el){el.style.display='block';el.textContent='HTTP '+r.status+'\\n'+JSON.stringify(j,null,2)}return {status:r.status,json:j}}
    async function dryRun(){const r=await api('/control/dispatch-next',{dry_run:true,requested_by:'dashboard'});const b=document.getElementById('live');if(b)b.disabled=r.json.action!=='dry_run_dispatch'}
    async function live(){if(!confirm('Dispatch the next task live?'))return;await api('/control/dispatch-next',{dry_run:false,requested_by:'dashboard'});refresh()}
    async function pauseQ(){const reason=prompt('Reason for pausing?','maintenance');if(reason===null)return;await api('/control/pause',{reason:reason,paused_by:'dashboard'});refresh()}
    async function resumeQ(){await api('/control/resume',{resumed_by:'dashboard',maintenance_mode:false});refresh()}
    async function cancelTask(id){if(!confirm('Cancel task '+id+'?'))return;await api('/control/api/tasks/'+id+'/cancel',{requested_by:'dashboard'});refresh()}
    async function retryTask(id){await api('/control/api/tasks/'+id+'/retry',{requested_by:'dashboard'});refresh()}
    async function refresh(){if(busy())return;const u=new URL(location.href);u.searchParams.set('partial','1');
      try{const r=await fetch(u,{credentials:'same-origin'});if(r.status===200){const m=document.querySelector('main');const res=document.getElementById('result');const keep=res&&res.style.display==='block'?res.textContent:null;
      m.innerHTML=await r.text();if(keep){const n=document.getElementById('result');if(n){n.style.display='block';n.textContent=keep}}}else if(r.status===401||r.status===303){location.href='/dashboard/login'}}catch(e){}}
    setInterval(refresh,4000)
    """

    static func shell(title: String, main: String, canAct: Bool) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <title>\(escape(title)) · Switchyard</title><style>\(style)</style></head><body>
        <header><h1>Switchyard</h1><span class="muted" style="color:#9aa4b6">\(canAct ? "control" : "read-only")</span><span class="spacer"></span>
        <a href="/dashboard" style="color:#cfd6e4;text-decoration:none">Overview</a>
        <form method="post" action="/dashboard/logout"><button type="submit">Sign out</button></form></header>
        <main>\(main)</main><script>\(script)</script></body></html>
        """
    }

    static func login(error: String?) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <title>Sign in · Switchyard</title><style>\(style)</style></head><body>
        <form class="login" method="post" action="/dashboard/login"><h1 style="margin-top:0;font-size:20px">Switchyard</h1>
        <p class="muted">Sign in with the control token or the read-only token.</p>
        \(error.map { "<p class=\"error\">\(escape($0))</p>" } ?? "")
        <label for="token">Token</label><input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
        <button class="primary" type="submit">Sign in</button></form></body></html>
        """
    }

    static func main(status: JSON, tab: Tab, rows: JSON, canAct: Bool) -> String {
        let safe = status["dispatch_safe"]?.boolValue ?? false
        let idle = status["dispatch_idle"]?.boolValue ?? false
        let blockers = idle ? [] : (status["dispatch_blockers"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        let counts = status["counts"]
        func count(_ name: String) -> Int64 { counts?[name]?.int64Value ?? 0 }
        var html = "<div class=\"banner \(safe || idle ? "ready" : "hold")\">\(safe || idle ? "Ready to dispatch" : "Hold dispatch")"
        if idle {
            html += "<span class=\"blockers\">nothing queued</span>"
        } else if !blockers.isEmpty {
            html += "<span class=\"blockers\">" + blockers.map { "<span class=\"pill\">\(escape($0))</span>" }.joined() + "</span>"
        } else if let next = status["next_candidate"], next != .null {
            html += "<span class=\"blockers\">next: task \(text(next["id"])) · \(text(next["title"])) → \(text(next["profile"]))</span>"
        }
        html += "</div>"
        if let warnings = status["warnings"]?.arrayValue, !warnings.isEmpty {
            html += "<div class=\"warnings\">" + warnings.map { "⚠ " + text($0) }.joined(separator: "<br>") + "</div>"
        }
        let flags = status["flags"]
        func flagCard(_ label: String, _ on: Bool, good: Bool) -> String {
            "<div class=\"card\"><div class=\"label\">\(label)</div><div class=\"value \(on == good ? "off" : "on")\">\(on ? "on" : "off")</div></div>"
        }
        let attention = count("needs_review") + count("dead")
        html += "<div class=\"cards\">"
        let safeText = safe ? "yes" : (idle ? "idle" : "no")
        html += "<div class=\"card\"><div class=\"label\">Dispatch safe</div><div class=\"value \(safe ? "off" : (idle ? "" : "on"))\">\(safeText)</div></div>"
        html += flagCard("Live dispatch", flags?["live_dispatch_enabled"]?.boolValue ?? false, good: true)
        html += flagCard("Paused", flags?["paused"]?.boolValue ?? false, good: false)
        html += flagCard("Maintenance", flags?["maintenance_mode"]?.boolValue ?? false, good: false)
        html += "<div class=\"card\"><div class=\"label\">Active</div><div class=\"value\">\(count("claimed") + count("dispatched") + count("running"))</div></div>"
        html += "<div class=\"card\"><div class=\"label\">Queued</div><div class=\"value\">\(count("queued"))</div></div>"
        html += "<div class=\"card\"><div class=\"label\">Attention</div><div class=\"value\(attention > 0 ? " on" : "")\">\(attention)</div></div>"
        html += "<div class=\"card\"><div class=\"label\">Cost today</div><div class=\"value\">$\(text(status["budget"]?["spent_today_usd"]))</div></div>"
        html += "</div>"
        if canAct {
            let paused = flags?["paused"]?.boolValue ?? false
            html += "<div class=\"actions\">"
            html += paused ? "<button class=\"primary\" onclick=\"resumeQ()\">Resume</button>" : "<button class=\"danger\" onclick=\"pauseQ()\">Pause</button>"
            html += "<button onclick=\"dryRun()\">Dispatch next: dry run</button><button id=\"live\" class=\"primary\" onclick=\"live()\" disabled>Dispatch live…</button>"
            html += "<pre id=\"result\"></pre></div>"
        }
        html += "<nav class=\"tabs\">"
        for t in Tab.allCases {
            var badge = ""
            switch t {
            case .active: badge = String(count("claimed") + count("dispatched") + count("running"))
            case .queued: badge = String(count("queued"))
            case .attention: badge = String(attention)
            case .done: badge = String(count("succeeded"))
            default: break
            }
            html += "<a href=\"/dashboard?tab=\(t.rawValue)\" class=\"\(t == tab ? "current" : "")\">\(t.rawValue.capitalized)\(badge.isEmpty ? "" : "<span class=\"count\">\(badge)</span>")</a>"
        }
        html += "</nav>"
        html += table(tab, rows.arrayValue ?? [], canAct: canAct)
        html += "<p class=\"muted\" style=\"margin-top:10px\">Updated \(time(status["timestamp"])) UTC · refreshes every 4 s</p>"
        return html
    }

    static func table(_ tab: Tab, _ rows: [JSON], canAct: Bool) -> String {
        guard !rows.isEmpty else { return "<div class=\"empty\">Nothing here.</div>" }
        var html = "<table><thead><tr>"
        switch tab {
        case .agents:
            html += "<th>Agent</th><th>Profile</th><th>Mode</th><th>State</th><th>PID</th><th>Task</th><th class=num>Lines</th><th>Heartbeat</th><th>Exit</th></tr></thead><tbody>"
            for r in rows {
                let exit = r["exit_status"]?.int64Value.map { "status \($0)" } ?? r["exit_signal"]?.int64Value.map { "signal \($0)" } ?? "—"
                html += "<tr><td>\(text(r["id"]))</td><td>\(text(r["profile"]))</td><td>\(text(r["mode"]))</td><td><span class=\"status \(text(r["state"]))\">\(text(r["state"]))</span></td>"
                html += "<td>\(text(r["pid"]))</td><td>\(taskLink(r["task_id"]))</td><td class=num>\(text(r["output_lines"]))</td><td>\(time(r["heartbeat_at"]))</td><td>\(escape(exit))</td></tr>"
            }
        case .components:
            html += "<th>Component</th><th>State</th><th>PID</th><th class=num>Incarnation</th><th class=num>Restarts</th><th class=num>Watchdog age (s)</th><th>Status</th></tr></thead><tbody>"
            for r in rows {
                let age = r["last_watchdog_age_s"]?.doubleValue.map { String(Int($0)) } ?? "—"
                html += "<tr><td>\(text(r["name"]))</td><td><span class=\"status \(text(r["state"]))\">\(text(r["state"]))</span></td><td>\(text(r["pid"]))</td>"
                html += "<td class=num>\(text(r["incarnation"]))</td><td class=num>\(text(r["restarts"]))</td><td class=num>\(age)</td><td>\(text(r["status_text"]))</td></tr>"
            }
        case .events:
            html += "<th>#</th><th>Time</th><th>Who</th><th>Action</th><th>Task</th><th>Detail</th></tr></thead><tbody>"
            for r in rows {
                html += "<tr><td>\(text(r["id"]))</td><td>\(time(r["at"]))</td><td>\(text(r["actor"]))</td><td>\(text(r["action"]))</td>"
                html += "<td>\(taskLink(r["task_id"]))</td><td class=muted>\(escape(String((r["detail"]?.stringValue ?? "").prefix(160))))</td></tr>"
            }
        default:
            html += "<th>Task</th><th>Title</th><th>Lane</th><th>Status</th><th class=num>Attempt</th><th>Profile</th><th class=num>Cost $</th><th>Updated</th><th>Note</th>\(canAct ? "<th></th>" : "")</tr></thead><tbody>"
            for r in rows {
                let status = r["status"]?.stringValue ?? ""
                let note = r["blocked_reason"]?.stringValue ?? r["error"]?.stringValue ?? r["result_summary"]?.stringValue ?? ""
                html += "<tr><td>\(taskLink(r["id"]))</td><td>\(text(r["title"]))</td><td>\(text(r["lane"]))</td><td><span class=\"status \(escape(status))\">\(escape(status))</span></td>"
                html += "<td class=num>\(text(r["attempt"]))/\(text(r["max_attempts"]))</td><td>\(text(r["profile"]))</td><td class=num>\(text(r["cost_usd"]))</td>"
                html += "<td>\(time(r["updated_at"]))</td><td class=muted>\(escape(String(note.prefix(120))))</td>"
                if canAct { html += "<td>\(taskButtons(r["id"]?.int64Value ?? 0, status))</td>" }
                html += "</tr>"
            }
        }
        return html + "</tbody></table>"
    }

    static func taskLink(_ id: JSON?) -> String {
        guard let id = id?.int64Value else { return "—" }
        return "<a href=\"/dashboard/tasks/\(id)\">#\(id)</a>"
    }

    static func taskButtons(_ id: Int64, _ status: String) -> String {
        var html = ""
        if ["queued", "claimed", "dispatched", "running", "needs_review"].contains(status) {
            html += "<button class=\"danger\" onclick=\"cancelTask(\(id))\">Cancel</button> "
        }
        if ["dead", "canceled", "needs_review"].contains(status) { html += "<button onclick=\"retryTask(\(id))\">Retry</button>" }
        return html
    }

    static func task(_ detail: JSON, canAct: Bool) -> String {
        let task = detail["task"] ?? .null
        let id = task["id"]?.int64Value ?? 0
        let status = task["status"]?.stringValue ?? ""
        var html = "<h2>Task #\(id) · \(text(task["title"])) <span class=\"status \(escape(status))\">\(escape(status))</span></h2>"
        if canAct { html += "<div class=\"actions\">\(taskButtons(id, status))<pre id=\"result\"></pre></div>" }
        html += "<dl class=\"facts\">"
        for (label, key) in [("Lane", "lane"), ("Priority", "priority"), ("Profile", "profile"), ("Attempt", "attempt"), ("Max attempts", "max_attempts"),
                             ("Agent", "agent_id"), ("Cost (USD)", "cost_usd"), ("Requested by", "requested_by"), ("Created", "created_at"),
                             ("Finished", "finished_at"), ("Result", "result_summary"), ("Error", "error"), ("Blocked", "blocked_reason")] {
            html += "<dt>\(label)</dt><dd>\(text(task[key]))</dd>"
        }
        html += "<dt>Tokens</dt><dd>\(text(task["usage"]?["input_tokens"])) in · \(text(task["usage"]?["output_tokens"])) out</dd></dl>"
        html += "<h2>Prompt</h2><pre class=\"output\">\(text(task["prompt"]))</pre>"
        html += "<h2>Timeline</h2><table><thead><tr><th>Time</th><th class=num>Attempt</th><th>Event</th><th>By</th><th>Detail</th></tr></thead><tbody>"
        for event in detail["events"]?.arrayValue ?? [] {
            html += "<tr><td>\(time(event["at"]))</td><td class=num>\(text(event["attempt"]))</td><td>\(text(event["kind"]))</td>"
            html += "<td>\(text(event["source"]))</td><td class=muted>\(escape(String((event["payload"]?.serialized() ?? "").prefix(200))))</td></tr>"
        }
        html += "</tbody></table>"
        let lines = (detail["output_tail"]?.arrayValue ?? []).compactMap { $0["line"]?.stringValue }
        html += "<h2>Agent output (last \(lines.count) lines of this attempt)</h2><pre class=\"output\">\(escape(lines.joined(separator: "\n")))</pre>"
        if let stderr = detail["stderr_tail"]?.stringValue, !stderr.isEmpty {
            html += "<h2>Agent stderr (tail)</h2><pre class=\"output\">\(escape(stderr))</pre>"
        }
        return html
    }
}
