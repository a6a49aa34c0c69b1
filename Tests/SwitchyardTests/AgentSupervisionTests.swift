import Foundation
import Glibc
import Shared
import XCTest

/// The supervisor owning real agent processes (shell scripts standing in for agent programs).
final class AgentSupervisionTests: XCTestCase {
    private var sandbox: Sandbox!
    private var supervisor: ChildProcess!
    private var db: Database!

    override func tearDown() {
        if let supervisor, supervisor.exitStatus == nil {
            supervisor.signal(SIGTERM)
            _ = supervisor.wait(timeout: .seconds(30))
        }
        supervisor = nil
        db = nil
        sandbox = nil
    }

    /// Writes an agent script and a profiles file, and starts the supervisor (agents only).
    private func startSupervisor(script: String, profile extra: String = "", environment: [String: String] = [:]) throws {
        sandbox = Sandbox()
        let agentPath = sandbox.path + "/agent.sh"
        try ("#!/bin/sh\n" + script.replacingOccurrences(of: "@SANDBOX@", with: sandbox.path))
            .write(toFile: agentPath, atomically: true, encoding: .utf8)
        chmod(agentPath, 0o755)
        let profiles = """
        {"profiles": [{"name": "script", "argv": ["\(agentPath)"], "mode": "rpc", "max_instances": 300,
                       "capabilities": ["test"], "env": {"PROFILE_VAR": "from-profile"}, "stop_grace_s": 0.3 \(extra)}]}
        """
        try profiles.write(toFile: sandbox.path + "/profiles.json", atomically: true, encoding: .utf8)
        var env = sandbox.environment(["SWITCHYARD_PROFILES": sandbox.path + "/profiles.json"])
        env.merge(environment) { $1 }
        supervisor = try sandbox.start("switchyard-supervisor", ["--agents-only"], environment: env)
        XCTAssertTrue(waitUntil(.seconds(20)) {
            if self.db == nil, FileManager.default.fileExists(atPath: self.sandbox.databasePath) {
                self.db = try? Database(path: self.sandbox.databasePath)
            }
            return (try? self.db?.scalarString("SELECT state FROM components WHERE name = 'supervisor'")) == "ready"
        }, sandbox.read("switchyard-supervisor.err"))
    }

    private var profile: AgentProfile { AgentProfile(name: "script", argv: ["unused"], mode: .rpc) }

    /// Asks the supervisor to spawn an agent, as the scheduler and poller do.
    @discardableResult
    private func spawnAgent(taskID: Int64? = nil) throws -> Int64 {
        let store = AgentStore(db: db)
        let id = try db.write { () -> Int64 in
            let id = try store.createAgent(profile: profile)
            try store.enqueue(.spawn, agentID: id, requestedBy: "test")
            return id
        }
        WakeSender(runDirectory: sandbox.path + "/state/run").nudge("supervisor")
        return id
    }

    private func agent(_ id: Int64) throws -> AgentRecord? { try AgentStore(db: db).agent(id: id) }

    private func waitForPid(_ id: Int64) throws -> Int32 {
        var pid: Int32?
        XCTAssertTrue(try waitUntil(.seconds(10)) { pid = try self.agent(id)?.pid; return pid != nil }, sandbox.read("switchyard-supervisor.err"))
        return try XCTUnwrap(pid)
    }

    private func waitForEnd(_ id: Int64, timeout: Duration = .seconds(20)) throws -> AgentRecord {
        XCTAssertTrue(try waitUntil(timeout) { try self.agent(id).map { !$0.state.isLive } ?? false },
                      "agent \(id) ended: \(sandbox.read("switchyard-supervisor.err").suffix(2000))")
        return try XCTUnwrap(agent(id))
    }

    private func stopAgent(_ id: Int64, graceMS: Int64? = nil) throws {
        var payload: [String: JSON] = [:]
        if let graceMS { payload["grace_ms"] = .int(graceMS) }
        try AgentStore(db: db).enqueue(.stop, agentID: id, payload: payload, requestedBy: "test")
        WakeSender(runDirectory: sandbox.path + "/state/run").nudge("supervisor")
    }

    private func isAlive(_ pid: Int32) -> Bool {
        guard let entry = ProcessTable.entry(pid) else { return false }
        return entry.state != "Z"
    }

    private func peakRSSKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    // MARK: Stopping

    func testAgentThatIgnoresSIGTERM_isKilledAfterTheGrace() throws {
        try startSupervisor(script: "trap '' TERM\necho started\nwhile true; do sleep 0.05; done\n")
        let id = try spawnAgent()
        let pid = try waitForPid(id)
        try stopAgent(id, graceMS: 300)
        let ended = try waitForEnd(id)
        XCTAssertEqual(ended.state, .exited)
        XCTAssertEqual(ended.exitSignal, Int(SIGKILL), "TERM was ignored, KILL ended it")
        XCTAssertFalse(isAlive(pid))
        XCTAssertTrue(sandbox.read("switchyard-supervisor.err").contains("ignored SIGTERM"))
    }

    func testAgentThatForksSetsidGrandchildren_stopKillsThemToo() throws {
        // One grandchild stays below the agent (setsid: a new session, outside the agent's group);
        // the other is orphaned at once (its parent exits) and is adopted by the subreaper supervisor.
        try startSupervisor(script: """
            setsid sh -c 'echo $$ > @SANDBOX@/below.pid; exec sleep 1000' &
            ( setsid sh -c 'echo $$ > @SANDBOX@/orphan.pid; exec sleep 1000' & )
            trap '' TERM
            while true; do sleep 0.05; done
            """)
        let id = try spawnAgent()
        _ = try waitForPid(id)
        var below: Int32?
        var orphan: Int32?
        XCTAssertTrue(waitUntil(.seconds(10)) {
            below = Int32(self.sandbox.read("below.pid").trimmingCharacters(in: .whitespacesAndNewlines))
            orphan = Int32(self.sandbox.read("orphan.pid").trimmingCharacters(in: .whitespacesAndNewlines))
            return below != nil && orphan != nil
        })
        let grandchildren = [try XCTUnwrap(below), try XCTUnwrap(orphan)]
        XCTAssertTrue(waitUntil(.seconds(5)) { ProcessTable.entry(grandchildren[1])?.ppid == self.supervisor.pid },
                      "the orphan is adopted by the subreaper supervisor")
        for pid in grandchildren { XCTAssertTrue(isAlive(pid)) }
        try stopAgent(id, graceMS: 300)
        _ = try waitForEnd(id)
        XCTAssertTrue(waitUntil(.seconds(10)) { grandchildren.allSatisfy { !self.isAlive($0) } },
                      "both setsid grandchildren are gone")
        // ...and reaped: no zombie stays below the supervisor.
        XCTAssertTrue(waitUntil(.seconds(10)) {
            ProcessTable.children(of: self.supervisor.pid).allSatisfy { ProcessTable.entry($0)?.state != "Z" }
        })
    }

    // MARK: Output

    func testAgentPrintingA50MBLine_isTruncatedAndMemoryStaysBounded() throws {
        try startSupervisor(script: "head -c 52428800 /dev/zero | tr '\\0' x\necho\necho after\n", profile: #", "max_line_bytes": 65536"#)
        let id = try spawnAgent()
        let ended = try waitForEnd(id, timeout: .seconds(60))
        XCTAssertEqual(ended.exitStatus, 0)
        XCTAssertEqual(ended.truncatedLines, 1, "the truncation is recorded")
        let lines = try db.query("SELECT length(line), truncated FROM agent_output WHERE agent_id = ?1 AND kind = 'line' ORDER BY id", id) {
            ($0.int(0), $0.bool(1))
        }
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines.first?.0, 65536)
        XCTAssertEqual(lines.first?.1, true)
        XCTAssertEqual(try db.scalarString("SELECT line FROM agent_output WHERE agent_id = ?1 AND kind = 'line' ORDER BY id DESC LIMIT 1", id), "after")
        let peak = peakRSSKiB(supervisor.pid)
        XCTAssertLessThan(peak, 48 * 1024, "supervisor peak RSS \(peak) KiB: the 50 MB line was never held in memory")
    }

    func testAgentPrintingAMillionLines_losesNothingAndMemoryStaysBounded() throws {
        try startSupervisor(script: "seq 1 1000000\n", profile: #", "max_lines_per_second": 2000000"#)
        let id = try spawnAgent()
        let ended = try waitForEnd(id, timeout: .seconds(120))
        XCTAssertEqual(ended.exitStatus, 0)
        XCTAssertEqual(ended.outputLines, 1_000_000)
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM agent_output WHERE agent_id = ?1 AND kind = 'line'", id), 1_000_000)
        XCTAssertEqual(try db.scalarInt("SELECT sum(CAST(line AS INTEGER)) FROM agent_output WHERE agent_id = ?1 AND kind = 'line'", id),
                       500_000_500_000, "every line, each once")
        XCTAssertEqual(try db.scalarInt("""
            SELECT count(*) FROM (SELECT CAST(line AS INTEGER) AS n, lag(CAST(line AS INTEGER)) OVER (ORDER BY id) AS previous
                                  FROM agent_output WHERE agent_id = ?1 AND kind = 'line')
            WHERE previous IS NOT NULL AND n != previous + 1
            """, id), 0, "in the order the agent wrote them")
        let last = try db.scalarString("SELECT kind FROM agent_output WHERE agent_id = ?1 ORDER BY id DESC LIMIT 1", id)
        XCTAssertEqual(last, "exit", "the exit record comes after every line")
        let peak = peakRSSKiB(supervisor.pid)
        XCTAssertLessThan(peak, 64 * 1024, "supervisor peak RSS \(peak) KiB")
    }

    func testAgentOutputRate_isPacedByBackpressureNotDropped() throws {
        // 100,000 lines (about 590 KB) are far more than a pipe holds, so pacing reaches the agent.
        try startSupervisor(script: "seq 1 100000\n", profile: #", "max_lines_per_second": 20000"#)
        let id = try spawnAgent()
        let ended = try waitForEnd(id, timeout: .seconds(30))
        XCTAssertEqual(ended.outputLines, 100_000, "nothing dropped")
        // 20,000 lines/s with a one-second burst: ingesting 100,000 lines must span about 4 s (less
        // the last pipe-full, read when the agent exits).
        let spread = try XCTUnwrap(db.queryOne("SELECT max(at) - min(at), count(DISTINCT at) FROM agent_output WHERE agent_id = ?1 AND kind = 'line'", id) {
            ($0.int64(0), $0.int64(1))
        })
        XCTAssertGreaterThan(spread.0, 2_000_000,
                             "lines were ingested over \(spread.0) us in \(spread.1) reads; log: \(sandbox.read("switchyard-supervisor.err").suffix(1500))")
    }

    func testStderr_keepsABoundedTailInTheDatabase() throws {
        try startSupervisor(script: "i=0\nwhile [ $i -lt 2000 ]; do echo \"problem $i\" >&2; i=$((i+1)); done\nexit 3\n")
        let id = try spawnAgent()
        let ended = try waitForEnd(id)
        XCTAssertEqual(ended.exitStatus, 3)
        XCTAssertTrue(ended.stderrTail.hasSuffix("problem 1999"), String(ended.stderrTail.suffix(100)))
        XCTAssertLessThanOrEqual(ended.stderrTail.utf8.count, 8192)
        let exitLine = try XCTUnwrap(db.scalarString("SELECT line FROM agent_output WHERE agent_id = ?1 AND kind = 'exit'", id))
        let exit = try JSON.parse(exitLine)
        XCTAssertEqual(exit["status"]?.int64Value, 3)
        XCTAssertTrue(exit["stderr_tail"]?.stringValue?.hasSuffix("problem 1999") ?? false)
    }

    func testAgentEnvironment_isTheAllowlistPlusTheProfile() throws {
        try startSupervisor(script: "env | sort\n", environment: ["SECRET_OF_SUPERVISOR": "do-not-leak", "LANG": "C.UTF-8"])
        let id = try spawnAgent()
        _ = try waitForEnd(id)
        let lines = Set(try db.query("SELECT line FROM agent_output WHERE agent_id = ?1 AND kind = 'line'", id) { $0.string(0) })
        XCTAssertTrue(lines.contains("PROFILE_VAR=from-profile"))
        XCTAssertTrue(lines.contains("SWITCHYARD_AGENT_ID=\(id)"))
        XCTAssertTrue(lines.contains("LANG=C.UTF-8"), "allowlisted variables pass")
        XCTAssertFalse(lines.contains { $0.hasPrefix("SECRET_OF_SUPERVISOR") }, "nothing else leaks")
        XCTAssertFalse(lines.contains { $0.hasPrefix("SWITCHYARD_STATE_DIR") }, "not even Switchyard's own configuration")
    }

    func testPrompt_isWrittenAsOneLineToTheAgentsStdin() throws {
        try startSupervisor(script: "while read -r line; do echo \"got: $line\"; done\n")
        let id = try spawnAgent()
        _ = try waitForPid(id)
        let task = try TaskStore(db: db).submit(IntakeRequest(prompt: "p")).task
        // As the poller does: mark the agent busy and queue the prompt in one transaction.
        try db.write {
            try AgentStore(db: db).setState(agentID: id, .busy, taskID: task.id, attempt: 1)
            try AgentStore(db: db).enqueue(.prompt, agentID: id, taskID: task.id, attempt: 1,
                                           payload: ["line": #"{"type":"prompt","text":"hello"}"#], requestedBy: "test")
        }
        WakeSender(runDirectory: sandbox.path + "/state/run").nudge("supervisor")
        XCTAssertTrue(try waitUntil(.seconds(10)) {
            try self.db.scalarString("SELECT line FROM agent_output WHERE agent_id = ?1 AND kind = 'line'", id) == #"got: {"type":"prompt","text":"hello"}"#
        })
        XCTAssertEqual(try db.scalarInt("SELECT task_id FROM agent_output WHERE agent_id = ?1 AND kind = 'line'", id), task.id,
                       "output after a prompt is attributed to its task")
        XCTAssertEqual(try agent(id)?.state, .busy)
        try stopAgent(id)
        _ = try waitForEnd(id)
    }

    // MARK: Leaks

    func test200AgentSpawns_leakNoDescriptorAndLeaveNoZombie() throws {
        try startSupervisor(script: "echo hi\n")
        func descriptorCount() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(supervisor.pid)/fd").count) ?? -1
        }
        // Warm up once (lazy allocations such as the wake sender socket).
        _ = try waitForEnd(try spawnAgent())
        let before = descriptorCount()
        var ids: [Int64] = []
        for _ in 0..<200 { ids.append(try spawnAgent()) }
        for id in ids { XCTAssertEqual(try waitForEnd(id).exitStatus, 0) }
        XCTAssertEqual(descriptorCount(), before, "no descriptor leaked across 200 spawns")
        XCTAssertTrue(waitUntil(.seconds(5)) {
            ProcessTable.children(of: self.supervisor.pid).allSatisfy { ProcessTable.entry($0)?.state != "Z" }
        }, "no zombie remains")
    }

    // MARK: Crash recovery

    func testKill9OfTheSupervisor_thenRestart_stopsOldAgentsAndReportsThemLost() throws {
        try startSupervisor(script: "sleep 1000 &\necho $! > \"$0.child\"\nwhile true; do sleep 0.05; done\n")
        let task = try TaskStore(db: db).submit(IntakeRequest(prompt: "p")).task
        let ids = try (0..<3).map { _ in try spawnAgent() }
        let pids = try ids.map { try waitForPid($0) }
        try db.run("UPDATE agents SET task_id = ?1, task_attempt = 1 WHERE id = ?2", task.id, ids[0])
        XCTAssertEqual(kill(supervisor.pid, SIGKILL), 0)
        _ = supervisor.wait(timeout: .seconds(10))
        for pid in pids { XCTAssertTrue(isAlive(pid), "agents outlive a SIGKILLed supervisor until it comes back") }

        supervisor = try sandbox.start("switchyard-supervisor", ["--agents-only"], environment: sandbox.environment([
            "SWITCHYARD_PROFILES": sandbox.path + "/profiles.json"]), logName: "supervisor2")
        for id in ids {
            let ended = try waitForEnd(id)
            XCTAssertEqual(ended.state, .lost)
            XCTAssertTrue(ended.error?.contains("agent lost") ?? false)
        }
        XCTAssertTrue(waitUntil(.seconds(10)) { pids.allSatisfy { !self.isAlive($0) } }, "old agents are gone")
        let lost = try db.query("SELECT task_id, attempt FROM agent_output WHERE kind = 'lost' AND agent_id = ?1", ids[0]) {
            ($0.optionalInt64(0), $0.optionalInt(1))
        }
        XCTAssertEqual(lost.first?.0, task.id, "the lost agent's task is reported for the retry policy")
        XCTAssertEqual(lost.first?.1, 1)
    }

    func testSecondSupervisor_onTheSameDatabase_refusesToStart() throws {
        try startSupervisor(script: "echo\n")
        let second = try sandbox.start("switchyard-supervisor", ["--agents-only"], environment: sandbox.environment([
            "SWITCHYARD_PROFILES": sandbox.path + "/profiles.json"]), logName: "second")
        XCTAssertEqual(second.wait(timeout: .seconds(20)), .exited(78))
        XCTAssertTrue(sandbox.read("second.err").contains("another switchyard-supervisor"))
    }
}
