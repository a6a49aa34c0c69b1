import Foundation
import Glibc
import Shared
import XCTest

/// The chain queued -> claimed -> dispatched -> running -> result, with the real executables and
/// the demo agent.
final class DispatchChainTests: XCTestCase {
    static let demoProfiles = """
        {"name": "rpc", "argv": ["@DEMO@", "rpc"], "mode": "rpc", "capabilities": ["code", "docs"], "max_instances": 4, "stall_timeout_s": 1.5},
        {"name": "oneshot", "argv": ["@DEMO@", "oneshot"], "mode": "oneshot", "capabilities": ["shell"], "max_instances": 4, "stall_timeout_s": 1.5}
        """

    func testRpcAndOneshotProfiles_runTasksToSuccessWithCost() throws {
        let stack = try Stack(profiles: Self.demoProfiles)
        let rpc = try stack.submit("write docs @cost=0.25 @tokens=1000,200 @progress=2 @work=50", capabilities: ["docs"])
        let oneshot = try stack.submit("run the build @cost=0.5", lane: "ci", capabilities: ["shell"])
        XCTAssertTrue(stack.waitFor([rpc, oneshot]), stack.log)
        for (id, profile, cost) in [(rpc, "rpc", 0.25), (oneshot, "oneshot", 0.5)] {
            let task = try stack.task(id)
            XCTAssertEqual(task.status, .succeeded)
            XCTAssertEqual(task.profile, profile)
            XCTAssertEqual(task.costUSD, cost, accuracy: 1e-9, "cost is recorded per task")
            XCTAssertEqual(task.attempt, 1)
            XCTAssertNotNil(task.startedAt)
            XCTAssertTrue(task.resultSummary?.hasPrefix("done:") ?? false)
            let kinds = try stack.events(id).map(\.kind)
            XCTAssertEqual(kinds.filter { $0 != "agent_spawned" }, ["submitted", "claimed", "dispatched", "started", "succeeded"])
        }
        XCTAssertEqual(try stack.task(rpc).usage, TokenUsage(input: 1000, output: 200))
        // The rpc agent stays up for the next task and is idle again.
        XCTAssertEqual(try stack.db.scalarString("SELECT state FROM agents WHERE profile = 'rpc'"), "idle")
        let second = try stack.submit("another", capabilities: ["code"])
        XCTAssertTrue(stack.waitFor([second]))
        XCTAssertEqual(try stack.db.scalarInt("SELECT count(*) FROM agents WHERE profile = 'rpc'"), 1, "the warm rpc agent was reused")
    }

    func testStart_isWrittenOnItsOwn_unlessTheResultArrivesInTheSameBatch() throws {
        let stack = try Stack(profiles: Self.demoProfiles)
        // The agent acknowledges, works 400 ms, then reports: two batches of output, so the task
        // is seen running in between.
        let slow = try stack.submit("slow @work=400", capabilities: ["code"])
        XCTAssertTrue(waitUntil(.seconds(20)) { stack.status(slow) == .running }, stack.log)
        XCTAssertTrue(stack.waitFor([slow]), stack.log)
        // The agent acknowledges and reports in one write: one batch, one finishing UPDATE that
        // also records the start.
        let quick = try stack.submit("quick", capabilities: ["code"])
        XCTAssertTrue(stack.waitFor([quick]), stack.log)
        for (id, folded) in [(slow, false), (quick, true)] {
            let task = try stack.task(id)
            XCTAssertEqual(task.status, .succeeded)
            let events = try stack.events(id)
            XCTAssertEqual(events.map(\.kind).filter { $0 != "agent_spawned" }, ["submitted", "claimed", "dispatched", "started", "succeeded"])
            let started = try XCTUnwrap(events.first { $0.kind == "started" })
            XCTAssertEqual(started.payload["folded"]?.boolValue ?? false, folded, "task \(id): \(started.payload)")
            XCTAssertEqual(task.startedAt, started.at)
            let finished = try XCTUnwrap(task.finishedAt)
            XCTAssertLessThanOrEqual(try XCTUnwrap(task.startedAt), finished)
        }
    }

    func testOutputFormats_zotClaudeCodexPlain_replayedFixtures() throws {
        // Fixture agents that print recorded-looking lines of each format.
        let zot = """
            #!/bin/sh
            while read -r line; do
              id=$(printf '%s' "$line" | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')
              echo '{"type":"response","id":"'$id'","success":true}'
              echo '{"type":"turn_start","id":"'$id'"}'
              echo '{"type":"tool_call","id":"'$id'","name":"bash"}'
              echo '{"type":"turn_end","id":"'$id'","usage":{"input":1200,"output":300,"cache_read":50,"cache_write":10,"cost_usd":0.012}}'
              echo '{"type":"turn_end","id":"'$id'","usage":{"input":800,"output":100,"cache_read":0,"cache_write":0,"cost_usd":0.008}}'
              echo '{"type":"done","id":"'$id'"}'
            done
            """
        let claude = """
            #!/bin/sh
            cat > /dev/null
            echo '{"type":"system","subtype":"init","session_id":"s-1","model":"claude-x","cwd":"/tmp","tools":["Bash"]}'
            echo '{"type":"assistant","message":{"content":[{"type":"text","text":"working"}]}}'
            echo '{"type":"user","message":{"content":[{"type":"tool_result","content":"ok"}]}}'
            echo '{"type":"result","subtype":"success","is_error":false,"duration_ms":1234,"num_turns":3,"session_id":"s-1","result":"All tests pass.","total_cost_usd":0.0421,"usage":{"input_tokens":900,"output_tokens":120,"cache_creation_input_tokens":40,"cache_read_input_tokens":300}}'
            """
        let codex = """
            #!/bin/sh
            echo '{"type":"thread.started","thread_id":"t-1"}'
            echo '{"type":"turn.started"}'
            echo '{"type":"item.started","item":{"id":"i1","type":"command_execution"}}'
            echo '{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"Refactored the parser."}}'
            echo '{"type":"turn.completed","usage":{"input_tokens":2000000,"cached_input_tokens":1000000,"output_tokens":100000}}'
            """
        let plain = "#!/bin/sh\necho compiling\necho 'built 3 targets'\n"
        let sandbox = Sandbox()
        for (name, body) in [("zot", zot), ("claude", claude), ("codex", codex), ("plain", plain)] {
            try body.write(toFile: sandbox.path + "/\(name).sh", atomically: true, encoding: .utf8)
            chmod(sandbox.path + "/\(name).sh", 0o755)
        }
        let profiles = """
            {"name": "zot", "argv": ["\(sandbox.path)/zot.sh", "rpc"], "mode": "rpc", "format": "zot", "capabilities": ["zot"]},
            {"name": "claude", "argv": ["\(sandbox.path)/claude.sh", "-p", "--output-format", "stream-json", "--verbose"], "mode": "oneshot", "format": "claude", "capabilities": ["claude"]},
            {"name": "codex", "argv": ["\(sandbox.path)/codex.sh", "exec", "--json", "{prompt}"], "mode": "oneshot", "format": "codex", "prompt_via": "argument", "capabilities": ["codex"],
             "prices": {"input_usd_per_mtok": 1.25, "cached_input_usd_per_mtok": 0.125, "output_usd_per_mtok": 10}},
            {"name": "plain", "argv": ["\(sandbox.path)/plain.sh"], "mode": "oneshot", "format": "plain", "capabilities": ["plain"]}
            """
        let stack = try Stack(profiles: profiles, environment: ["SWITCHYARD_LANE_LIMIT": "4"])
        let ids = try ["zot", "claude", "codex", "plain"].map { try stack.submit("task for \($0)", capabilities: [$0]) }
        XCTAssertTrue(stack.waitFor(ids), stack.log)
        let zotTask = try stack.task(ids[0]), claudeTask = try stack.task(ids[1]), codexTask = try stack.task(ids[2]), plainTask = try stack.task(ids[3])
        for task in [zotTask, claudeTask, codexTask, plainTask] { XCTAssertEqual(task.status, .succeeded, "\(task.profile ?? "") \(task.error ?? "")") }
        // zot rpc: cost summed per task from its turns, not at process exit (Colibri's gap).
        XCTAssertEqual(zotTask.costUSD, 0.02, accuracy: 1e-9)
        XCTAssertEqual(zotTask.usage, TokenUsage(input: 2000, output: 400, cacheRead: 50, cacheWrite: 10))
        XCTAssertEqual(claudeTask.costUSD, 0.0421, accuracy: 1e-9)
        XCTAssertEqual(claudeTask.usage, TokenUsage(input: 900, output: 120, cacheRead: 300, cacheWrite: 40))
        XCTAssertEqual(claudeTask.resultSummary, "All tests pass.")
        // Codex: priced from the profile's table: 1M uncached x 1.25 + 1M cached x 0.125 + 0.1M out x 10.
        XCTAssertEqual(codexTask.costUSD, 1.25 + 0.125 + 1.0, accuracy: 1e-9)
        XCTAssertEqual(codexTask.resultSummary, "Refactored the parser.")
        XCTAssertEqual(plainTask.resultSummary, "built 3 targets")
    }

    func testRetryThenSuccess_andRetriesExhaustedGoDead() throws {
        let stack = try Stack(profiles: Self.demoProfiles, environment: ["SWITCHYARD_LANE_LIMIT": "4"])
        let flaky = try stack.submit("flaky @fail-until=2", capabilities: ["code"])
        let broken = try stack.submit("broken @fail", lane: "b", capabilities: ["code"], maxAttempts: 2)
        let fatal = try stack.submit("bad input @fatal", lane: "c", capabilities: ["code"])
        XCTAssertTrue(stack.waitFor([flaky, broken, fatal]), stack.log)
        XCTAssertEqual(try stack.task(flaky).status, .succeeded)
        XCTAssertEqual(try stack.task(flaky).attempt, 2)
        XCTAssertEqual(try stack.events(flaky).map(\.kind).filter { ["failed", "retry_scheduled", "succeeded"].contains($0) },
                       ["failed", "retry_scheduled", "succeeded"])
        XCTAssertEqual(try stack.task(broken).status, .dead)
        XCTAssertEqual(try stack.task(broken).attempt, 2)
        XCTAssertEqual(try stack.task(fatal).status, .needsReview, "a non-retryable failure goes to an operator")
        XCTAssertEqual(try stack.task(fatal).attempt, 1)
    }

    func testStall_killsTheAgentAndRetries() throws {
        let stack = try Stack(profiles: Self.demoProfiles)
        let id = try stack.submit("hangs first @hang-until=2", capabilities: ["shell"])
        XCTAssertTrue(stack.waitFor([id], timeout: .seconds(30)), stack.log)
        let task = try stack.task(id)
        XCTAssertEqual(task.status, .succeeded)
        XCTAssertEqual(task.attempt, 2)
        let failed = try XCTUnwrap(stack.events(id).first { $0.kind == "failed" })
        XCTAssertTrue(failed.payload["error"]?.stringValue?.contains("stalled") ?? false, "\(failed.payload)")
        // The stalled agent was stopped, not left behind.
        let firstAgent = try XCTUnwrap(stack.db.scalarInt("SELECT min(id) FROM agents WHERE task_id = ?1", id))
        XCTAssertTrue(waitUntil(.seconds(10)) { (try? stack.db.scalarString("SELECT state FROM agents WHERE id = ?1", firstAgent)) == "exited" })
    }

    func testCancelOfARunningTask_killsItsTree() throws {
        let stack = try Stack(profiles: Self.demoProfiles)
        let pidfile = stack.sandbox.path + "/grandchild.pid"
        let id = try stack.submit("long job @grandchild=\(pidfile) @progress=100 @work=100000", capabilities: ["shell"])
        XCTAssertTrue(stack.waitFor([id], in: [.running]), stack.log)
        var grandchild: Int32?
        XCTAssertTrue(waitUntil(.seconds(10)) {
            grandchild = Int32(stack.sandbox.read("grandchild.pid").trimmingCharacters(in: .whitespacesAndNewlines))
            return grandchild != nil
        })
        let agentPid = try XCTUnwrap(stack.db.scalarInt("SELECT pid FROM agents WHERE task_id = ?1", id)).asPid
        XCTAssertEqual(try stack.tasks.requestCancel(id: id, reason: "operator changed their mind", source: "test"),
                       .applied(status: .running, attempt: 1))
        WakeSender(runDirectory: stack.runDirectory).nudge("poller")
        XCTAssertTrue(stack.waitFor([id], in: [.canceled]), stack.log)
        XCTAssertEqual(try stack.task(id).error, "operator changed their mind")
        for pid in [agentPid, try XCTUnwrap(grandchild)] {
            XCTAssertTrue(waitUntil(.seconds(15)) { ProcessTable.entry(pid).map { $0.state == "Z" } ?? true }, "process \(pid) is gone")
        }
    }

    func testTaskBudget_blocksFurtherDispatch() throws {
        let stack = try Stack(profiles: Self.demoProfiles)
        // The first attempt fails after spending more than the task's budget: no second attempt runs.
        let id = try stack.submit("expensive @fail @cost=0.5", capabilities: ["shell"], budget: 0.1)
        XCTAssertTrue(waitUntil(.seconds(30)) { (try? stack.task(id).blockedReason) == "task_budget_reached" }, stack.log)
        let task = try stack.task(id)
        XCTAssertEqual(task.status, .queued)
        XCTAssertEqual(task.attempt, 1)
        XCTAssertEqual(task.costUSD, 0.5, accuracy: 1e-9)
        let assessment = try DispatchPlanner(db: stack.db, policy: DispatchPolicy(),
                                             catalog: ProfileCatalog(profiles: [], source: "")).assess()
        XCTAssertTrue(assessment.blockers.contains("task_budget_reached"), "\(assessment.blockers)")
    }

    func testCapabilityMismatch_parksTheTaskWithoutFailingIt() throws {
        let stack = try Stack(profiles: Self.demoProfiles)
        let id = try stack.submit("train a model", capabilities: ["gpu"])
        let other = try stack.submit("docs", lane: "other", capabilities: ["docs"])
        XCTAssertTrue(stack.waitFor([other]))
        XCTAssertTrue(waitUntil(.seconds(10)) { (try? stack.task(id).blockedReason) == "no_matching_profile" })
        XCTAssertEqual(try stack.task(id).status, .queued)
        XCTAssertEqual(try stack.task(id).attempt, 0)
        XCTAssertEqual(try stack.events(id).last?.kind, "parked")
    }

    /// 200 tasks over 5 lanes with 20 agents: from the event log, no lane ever had two active tasks.
    func testTwoHundredTasksOverFiveLanes_neverTwoActiveInALane() throws {
        let stack = try Stack(profiles: """
            {"name": "rpc", "argv": ["@DEMO@", "rpc"], "mode": "rpc", "capabilities": ["code"], "max_instances": 10},
            {"name": "oneshot", "argv": ["@DEMO@", "oneshot"], "mode": "oneshot", "capabilities": ["code"], "max_instances": 10}
            """, environment: ["SWITCHYARD_MAX_ACTIVE": "20"])
        var ids: [Int64] = []
        for i in 0..<200 { ids.append(try stack.submit("task \(i) @work=\(i % 3 * 5)", lane: "lane\(i % 5)", capabilities: ["code"])) }
        XCTAssertTrue(stack.waitFor(ids, timeout: .seconds(120)), stack.log)
        XCTAssertEqual(try stack.db.scalarInt("SELECT count(*) FROM tasks WHERE status = 'succeeded'"), 200)
        try assertLaneExclusive(stack.db, limit: 1)
    }

    /// kill -9 of the scheduler and of the poller in the middle of 100 tasks: every task ends once.
    func testKill9OfSchedulerAndPoller_midRun_everyTaskEndsOnce() throws {
        let stack = try Stack(profiles: Self.demoProfiles, environment: ["SWITCHYARD_LANE_LIMIT": "3", "SWITCHYARD_MAX_ACTIVE": "8"])
        var ids: [Int64] = []
        for i in 0..<100 {
            ids.append(try stack.submit("task \(i) @work=\(10 + i % 4 * 10)", lane: "lane\(i % 4)", capabilities: [i % 2 == 0 ? "code" : "shell"]))
        }
        var killedIncarnation: [String: Int64] = [:]
        for (round, name) in ["scheduler", "poller", "scheduler", "poller"].enumerated() {
            XCTAssertTrue(waitUntil(.seconds(30)) {
                (try? stack.db.scalarInt("SELECT count(*) FROM tasks WHERE status = 'succeeded'")) ?? 0 >= Int64(15 * (round + 1))
            }, stack.log)
            // The component must be back (a new incarnation, ready) before it is killed again, and
            // the pid must still be its own: a stale pid could by now belong to an agent.
            var target: (pid: Int32, incarnation: Int64)?
            XCTAssertTrue(try waitUntil(.seconds(10)) {
                guard let row = try stack.db.queryOne("SELECT pid, incarnation FROM components WHERE name = ?1 AND state = 'ready'", name,
                                                      map: { (Int32($0.int64(0)), $0.int64(1)) }),
                      row.1 > killedIncarnation[name, default: 0],
                      let comm = try? String(contentsOfFile: "/proc/\(row.0)/comm", encoding: .utf8),
                      comm.hasPrefix("switchyard-" + name.prefix(4)) else { return false }
                target = row
                return true
            })
            let victim = try XCTUnwrap(target)
            XCTAssertEqual(kill(victim.pid, SIGKILL), 0)
            killedIncarnation[name] = victim.incarnation
        }
        XCTAssertTrue(stack.waitFor(ids, timeout: .seconds(120)), stack.log)
        for id in ids {
            let events = try stack.events(id)
            XCTAssertEqual(events.filter { $0.kind == "succeeded" }.count, 1, "task \(id) completed exactly once")
            XCTAssertEqual(try stack.task(id).status, .succeeded)
        }
        XCTAssertGreaterThanOrEqual(try stack.db.scalarInt("SELECT sum(incarnation) FROM components WHERE name IN ('scheduler', 'poller')") ?? 0, 6)
        try assertLaneExclusive(stack.db, limit: 3)
    }

    func testKill9OfTheSupervisor_requeuesItsTasksAndTheyFinish() throws {
        let stack = try Stack(profiles: Self.demoProfiles, environment: ["SWITCHYARD_LANE_LIMIT": "4"])
        let ids = try (0..<4).map { try stack.submit("slow \($0) @work=1500 @progress=3", capabilities: [$0 % 2 == 0 ? "code" : "shell"]) }
        XCTAssertTrue(stack.waitFor(ids, in: [.running]), stack.log)
        let agentPids = try stack.db.query("SELECT pid FROM agents WHERE state = 'busy'") { Int32($0.int64(0)) }
        let componentPids = try ["gate", "scheduler", "poller"].map { try XCTUnwrap(stack.componentPid($0)) }
        XCTAssertEqual(kill(stack.supervisor.pid, SIGKILL), 0)
        _ = stack.supervisor.wait(timeout: .seconds(5))
        // The components it launched stop with it (PR_SET_PDEATHSIG), so no second copy runs later.
        XCTAssertTrue(waitUntil(.seconds(10)) { componentPids.allSatisfy { ProcessTable.entry($0) == nil } },
                      "components outlived their supervisor")
        try stack.start()
        XCTAssertTrue(stack.waitFor(ids, timeout: .seconds(60)), stack.log)
        for id in ids {
            let task = try stack.task(id)
            XCTAssertEqual(task.status, .succeeded)
            XCTAssertEqual(task.attempt, 2, "the lost attempt went through the retry policy")
            XCTAssertTrue(try stack.events(id).contains { $0.kind == "failed" && ($0.payload["error"]?.stringValue ?? "").contains("agent lost") })
        }
        for pid in agentPids { XCTAssertTrue(ProcessTable.entry(pid).map { $0.state == "Z" } ?? true, "old agent \(pid) is gone") }
    }
}

/// From the event log alone: in each lane, at no moment were more than `limit` tasks between
/// their claim and the end of that attempt.
func assertLaneExclusive(_ db: Database, limit: Int, file: StaticString = #filePath, line: UInt = #line) throws {
    let rows = try db.query("""
        SELECT t.lane, e.task_id, e.attempt, e.kind, e.id FROM task_events e JOIN tasks t ON t.id = e.task_id
        WHERE e.kind IN ('claimed', 'succeeded', 'failed', 'canceled', 'needs_review', 'dead') ORDER BY e.id
        """) { ($0.string(0), $0.int64(1), $0.int(2), $0.string(3)) }
    var active: [String: Set<String>] = [:]
    var peak: [String: Int] = [:]
    for (lane, task, attempt, kind) in rows {
        let key = "\(task):\(attempt)"
        if kind == "claimed" {
            active[lane, default: []].insert(key)
            peak[lane] = max(peak[lane] ?? 0, active[lane]!.count)
        } else {
            active[lane]?.remove(key)
        }
    }
    for (lane, count) in peak {
        XCTAssertLessThanOrEqual(count, limit, "lane \(lane) had \(count) active tasks at once", file: file, line: line)
    }
    XCTAssertFalse(peak.isEmpty, file: file, line: line)
}

extension Int64 {
    var asPid: Int32 { Int32(self) }
}
