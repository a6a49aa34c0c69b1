import Foundation
import Glibc
import Shared

/// The physical limits the other figures are compared with, measured in the same run.
func benchLimits(_ report: Report, synchronous: SynchronousMode, seconds: Double) throws -> (commitSeconds: Double, spawnSeconds: Double) {
    print("limits")
    let stack = try BenchStack(name: "limits")
    let db = try Database(path: stack.directory + "/limits.db", options: DatabaseOptions(synchronous: synchronous))
    try db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    var commits = 0
    let start = MonotonicInstant.now()
    let end = start.adding(.milliseconds(Int64(seconds * 1000)))
    while MonotonicInstant.now() < end {
        try db.write { _ = try db.run("INSERT INTO t (v) VALUES (?1)", "x") }
        commits += 1
    }
    let commitSeconds = MonotonicInstant.now().duration(since: start).secondsDouble / Double(commits)
    report.add("limits", "bare SQLite commit, one row, synchronous=\(synchronous.rawValue)", String(format: "%.1f us (%.0f commits/s)", commitSeconds * 1e6, 1 / commitSeconds))
    var spawns = 0
    let spawnStart = MonotonicInstant.now()
    let spawnEnd = spawnStart.adding(.milliseconds(Int64(seconds * 1000)))
    while MonotonicInstant.now() < spawnEnd {
        var request = SpawnRequest(executable: "/bin/true", environment: ["PATH": "/usr/bin:/bin"])
        request.stdin = .null
        request.stdout = .null
        let child = try ChildProcess.spawn(request)
        _ = child.wait()
        spawns += 1
    }
    let spawnSeconds = MonotonicInstant.now().duration(since: spawnStart).secondsDouble / Double(spawns)
    report.add("limits", "bare posix_spawn + wait of /bin/true", String(format: "%.0f us (%.0f spawns/s)", spawnSeconds * 1e6, 1 / spawnSeconds))
    return (commitSeconds, spawnSeconds)
}

/// kill -9 of a component until it is READY again (the supervisor restarts it).
func benchRestart(_ report: Report, rounds: Int) throws {
    print("restart latency (kill -9 -> ready), \(rounds) rounds")
    let stack = try BenchStack(name: "restart", environment: ["SWITCHYARD_RESTART_STABLE_MS": "100", "SWITCHYARD_START_LIMIT_BURST": "100000"])
    try stack.start(expectReady: 4)
    var samples: [Double] = []
    let names = ["gate", "scheduler", "poller"]
    for round in 0..<rounds {
        let name = names[round % names.count]
        usleep(300_000)  // longer than the stable period: every kill counts as a first failure
        guard let (pid, incarnation) = try stack.db.queryOne("SELECT pid, incarnation FROM components WHERE name = ?1", name, map: { (Int32($0.int64(0)), $0.int64(1)) }) else {
            throw BenchError("no row for \(name)")
        }
        let t0 = MonotonicInstant.now()
        kill(pid, SIGKILL)
        try waitFor("\(name) restart", timeout: .seconds(10), poll: .microseconds(100)) {
            try stack.db.scalarInt("SELECT count(*) FROM components WHERE name = ?1 AND incarnation > ?2 AND state = 'ready'", name, incarnation) == 1
        }
        samples.append(MonotonicInstant.now().duration(since: t0).secondsDouble)
    }
    let s = Sample(samples)
    let spawnRatio = report.spawnSeconds.map { String(format: "%.1f bare spawns", s.percentile(50) / $0) } ?? ""
    report.add("supervisor", "restart to READY, p50", ms(s.percentile(50)), target: "<= 100 ms", ratio: spawnRatio)
    report.add("supervisor", "restart to READY, p99", ms(s.percentile(99)))
    report.add("supervisor", "restart to READY, max", ms(s.max))
}

/// Agent spawns through the command inbox (spawn, run /bin/true, reap, record).
func benchSpawn(_ report: Report, count: Int) throws -> Double {
    print("agent spawn rate, \(count) agents")
    let stack = try BenchStack(name: "spawn", profiles: """
        {"name": "true", "argv": ["/bin/true"], "mode": "oneshot", "format": "plain", "max_instances": 1000}
        """)
    try stack.start(arguments: ["--agents-only"], expectReady: 1)
    let t0 = MonotonicInstant.now()
    try queueSpawns(stack, AgentProfile(name: "true", argv: ["/bin/true"], mode: .oneshot, format: .plain), count: count)
    try waitFor("all agents exited", timeout: .seconds(120), poll: .milliseconds(1)) {
        try stack.db.scalarInt("SELECT count(*) FROM agents WHERE state = 'exited'") == Int64(count)
    }
    let elapsed = MonotonicInstant.now().duration(since: t0).secondsDouble
    report.add("supervisor", "agent spawn rate (spawn, exit, reap, record)", rate(Double(count) / elapsed, "agents/s"),
               ratio: report.spawnSeconds.map { String(format: "%.0f %% of bare posix_spawn + wait", Double(count) / elapsed * $0 * 100) } ?? "")
    return elapsed / Double(count)
}

/// Output ingestion across many agents: every line stored once.
func benchIngest(_ report: Report, agents: Int, linesEach: Int) throws {
    print("output ingestion, \(agents) agents x \(linesEach) lines")
    let stack = try BenchStack(name: "ingest", profiles: """
        {"name": "seq", "argv": ["/usr/bin/seq", "1", "\(linesEach)"], "mode": "oneshot", "format": "plain", "max_instances": 1000, "max_lines_per_second": 10000000}
        """)
    try stack.start(arguments: ["--agents-only"], expectReady: 1)
    let t0 = MonotonicInstant.now()
    try queueSpawns(stack, AgentProfile(name: "seq", argv: ["/usr/bin/seq"], mode: .oneshot, format: .plain), count: agents)
    try waitFor("all agents exited", timeout: .seconds(300), poll: .milliseconds(2)) {
        try stack.db.scalarInt("SELECT count(*) FROM agents WHERE state = 'exited'") == Int64(agents)
    }
    let elapsed = MonotonicInstant.now().duration(since: t0).secondsDouble
    let stored = try stack.db.scalarInt("SELECT count(*) FROM agent_output WHERE kind = 'line'") ?? 0
    let expected = Int64(agents * linesEach)
    report.add("supervisor", "output ingestion", rate(Double(stored) / elapsed, "lines/s"), target: ">= 100000 lines/s",
               ratio: report.perCommit(Double(stored) / elapsed, "lines"))
    report.add("supervisor", "lines stored / lines written", "\(stored) / \(expected)\(stored == expected ? " (nothing lost)" : " (LOST LINES)")")
    if let pid = stack.supervisor?.pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) {
        report.add("supervisor", "supervisor peak RSS during ingestion", line.split(separator: " ").dropFirst().joined(separator: " "))
    }
}

let rpcProfile = """
    {"name": "rpc", "argv": ["@BIN@/switchyard-demo-agent", "rpc"], "mode": "rpc", "max_instances": @RPC_AGENTS@, "env": {"DEMO_ARRIVALS": "@DIR@/arrivals"}},
    {"name": "oneshot", "argv": ["@BIN@/switchyard-demo-agent", "oneshot"], "mode": "oneshot", "capabilities": ["oneshot"], "max_instances": 8}
    """

/// Intake commit to the prompt line arriving on a warm rpc agent's stdin.
func benchDispatchLatency(_ report: Report, rounds: Int) throws {
    print("dispatch latency (intake commit -> prompt on a warm rpc agent's stdin), \(rounds) tasks")
    let stack = try BenchStack(name: "latency", profiles: rpcProfile, environment: ["SWITCHYARD_LANE_LIMIT": "100", "SWITCHYARD_MAX_ACTIVE": "100"])
    try stack.start(expectReady: 4)
    let tasks = TaskStore(db: stack.db)
    // Warm up: an agent is spawned and takes a first task.
    let warm = try tasks.submit(IntakeRequest(prompt: "warm up", profile: "rpc")).task.id
    stack.nudge("scheduler")
    try waitFor("warm-up task", timeout: .seconds(30)) { try tasks.task(id: warm)?.status == .succeeded }
    var commits: [Int64: Microseconds] = [:]
    for i in 0..<rounds {
        let id = try tasks.submit(IntakeRequest(prompt: "noop \(i)", lane: "l\(i % 4)", profile: "rpc")).task.id
        commits[id] = WallClock.now()  // submit() returned: the commit is durable
        stack.nudge("scheduler")
        try waitFor("task \(id)", timeout: .seconds(30), poll: .microseconds(100)) { try tasks.task(id: id)?.status == .succeeded }
    }
    let arrivals = (try? String(contentsOfFile: stack.directory + "/arrivals", encoding: .utf8)) ?? ""
    var samples: [Double] = []
    for line in arrivals.split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count == 2, let id = Int64(parts[0]), let at = Int64(parts[1]), let committed = commits[id] else { continue }
        samples.append(Double(at - committed) / 1e6)
    }
    guard samples.count == rounds else { throw BenchError("only \(samples.count) of \(rounds) arrivals recorded") }
    let s = Sample(samples)
    report.add("dispatch", "intake commit -> prompt on agent stdin, p50", ms(s.percentile(50)), target: "<= 2 ms",
               ratio: report.commits(s.percentile(50)))
    report.add("dispatch", "intake commit -> prompt on agent stdin, p99", ms(s.percentile(99)), target: "<= 10 ms",
               ratio: report.commits(s.percentile(99)))
}

/// End-to-end throughput: submit N tasks, wait for all results.
func benchThroughput(_ report: Report, tasks count: Int, profile: String, rpcAgents: Int = 8, label: String, target: String) throws {
    print("throughput through \(label), \(count) tasks")
    let stack = try BenchStack(name: "throughput", profiles: rpcProfile, rpcAgents: rpcAgents, environment: [
        // Room for every agent's task and one claimed ahead for each (DispatchPlanner.claimCapacity).
        "SWITCHYARD_LANE_LIMIT": "1000", "SWITCHYARD_MAX_ACTIVE": String(max(64, 2 * rpcAgents)),
        "SWITCHYARD_SYNCHRONOUS": ProcessInfo.processInfo.environment["BENCH_SYNCHRONOUS"] ?? "FULL"])
    try stack.start(expectReady: 4)
    let tasks = TaskStore(db: stack.db)
    let caps = profile == "oneshot" ? ["oneshot"] : []
    if profile == "rpc" {
        // Warm: every agent up before the clock starts.
        var warm: [Int64] = []
        for i in 0..<rpcAgents { warm.append(try tasks.submit(IntakeRequest(prompt: "warm", lane: "w\(i)", profile: "rpc")).task.id) }
        stack.nudge("scheduler")
        try waitFor("warm-up", timeout: .seconds(60)) { try warm.allSatisfy { try tasks.task(id: $0)?.status == .succeeded } }
    }
    let before = try stack.db.scalarInt("SELECT count(*) FROM tasks WHERE status = 'succeeded'") ?? 0
    let cpuBefore = cpuSnapshot()
    let t0 = MonotonicInstant.now()
    var submitted = 0
    while submitted < count {
        // Intake in batches of 50 per transaction, as a busy gate's clients would arrive.
        let batch = min(50, count - submitted)
        try stack.db.write {
            for i in 0..<batch {
                _ = try tasks.submit(IntakeRequest(prompt: "noop", lane: "l\((submitted + i) % 64)", capabilities: caps, profile: profile))
            }
        }
        submitted += batch
        stack.nudge("scheduler")
    }
    try waitFor("all tasks", timeout: .seconds(600), poll: .milliseconds(2)) {
        try stack.db.scalarInt("SELECT n FROM task_counts WHERE status = 'succeeded'") == before + Int64(count)
    }
    let elapsed = MonotonicInstant.now().duration(since: t0).secondsDouble
    report.add("dispatch", "throughput, \(label), synchronous=\(ProcessInfo.processInfo.environment["BENCH_SYNCHRONOUS"] ?? "FULL")",
               rate(Double(count) / elapsed, "tasks/s"), target: target, ratio: report.perCommit(Double(count) / elapsed, "tasks"))
    let spent = cpuSpent(from: cpuBefore, to: cpuSnapshot()).filter { $0.value > 0.01 }.sorted { $0.value > $1.value }
    report.add("dispatch", "CPU seconds per 1000 tasks (\(label))",
               spent.map { String(format: "%@ %.2f", $0.key, $0.value / Double(count) * 1000) }.joined(separator: ", "))
}

/// CPU of all daemons together while nothing happens.
func benchIdle(_ report: Report, seconds: Int) throws {
    print("idle CPU of all daemons over \(seconds) s")
    let stack = try BenchStack(name: "idle", profiles: rpcProfile)
    try stack.start(expectReady: 4)
    sleep(2)
    let pids = try stack.pids()
    let before = pids.map(cpuSeconds).reduce(0, +)
    let t0 = MonotonicInstant.now()
    sleep(UInt32(seconds))
    let after = pids.map(cpuSeconds).reduce(0, +)
    let wall = MonotonicInstant.now().duration(since: t0).secondsDouble
    report.add("dispatch", "idle CPU, supervisor + gate + scheduler + poller", String(format: "%.3f %% of one core", (after - before) / wall * 100),
               target: "<= 0.3 %")
}

/// GET /control/api/status with 100,000 tasks in the database.
func benchStatus(_ report: Report, tasks: Int, seconds: Double, connections: Int) throws {
    print("GET /control/api/status with \(tasks) tasks, \(connections) keep-alive connections, \(Int(seconds)) s")
    let token = ControlTokens.randomToken()
    let stack = try BenchStack(name: "status", environment: ["SWITCHYARD_CONTROL_TOKEN": token, "SWITCHYARD_LANE_LIMIT": "2"])
    let db = try Database(path: stack.directory + "/state/switchyard.db")
    try Migrator.migrate(db)
    try db.write {
        _ = try db.run("""
            WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
            INSERT INTO tasks (title, prompt, lane, priority, status, attempt, created_at, updated_at, requested_by, cost_usd, finished_at)
            SELECT 'task ' || x, 'prompt of task ' || x, 'lane' || (x % 50), x % 7,
                CASE x % 10 WHEN 0 THEN 'queued' WHEN 1 THEN 'dead' WHEN 2 THEN 'needs_review' WHEN 3 THEN 'canceled' ELSE 'succeeded' END,
                1, 1700000000000000 + x, 1700000000000000 + x, 'bench', 0.01, 1700000000000000 + x
            FROM n
            """, tasks)
    }
    try stack.start("switchyard-gate", expectReady: 1)
    let address = try String(contentsOfFile: stack.runDirectory + "/gate.address", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    let (host, port, _) = try HTTPClient.parseURL("http://" + address)
    let collector = LatencyCollector()
    let deadline = MonotonicInstant.now().adding(.milliseconds(Int64(seconds * 1000)))
    let request = Array("GET /control/api/status HTTP/1.1\r\nHost: \(address)\r\nAuthorization: Bearer \(token)\r\n\r\n".utf8)
    DispatchQueue.concurrentPerform(iterations: connections) { _ in
        var latencies: [Double] = []
        var bytes = 0
        do {
            let fd = try HTTPClient.openConnection(host: host, port: port)
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while MonotonicInstant.now() < deadline {
                let t0 = MonotonicInstant.now()
                _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                var received: [UInt8] = []
                var expected = -1
                while expected < 0 || received.count < expected {
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { throw BenchError("connection closed") }
                    received.append(contentsOf: buffer[0..<n])
                    if expected < 0, let headEnd = findHeadEnd(received) {
                        let head = String(decoding: received[0..<headEnd], as: UTF8.self).lowercased()
                        let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                            .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                        expected = headEnd + 4 + length
                    }
                }
                bytes = received.count
                latencies.append(MonotonicInstant.now().duration(since: t0).secondsDouble)
            }
        } catch {
            collector.fail("\(error)")
        }
        collector.add(latencies, bytes: bytes)
    }
    if let failure = collector.failure { throw BenchError("status load failed: \(failure)") }
    let s = Sample(collector.latencies)
    report.add("gate", "GET /control/api/status, \(tasks) tasks: requests/s", rate(Double(s.values.count) / seconds, "req/s"))
    report.add("gate", "GET /control/api/status latency p50", ms(s.percentile(50)))
    report.add("gate", "GET /control/api/status latency p99", ms(s.percentile(99)), target: "<= 5 ms", ratio: report.commits(s.percentile(99)))
    report.add("gate", "status response size", "\(collector.bytes) bytes")
}

final class LatencyCollector: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private(set) var latencies: [Double] = []
    private(set) var failure: String?
    private(set) var bytes = 0
    func add(_ values: [Double], bytes: Int) { lock.lock(); latencies += values; self.bytes = max(self.bytes, bytes); lock.unlock() }
    func fail(_ message: String) { lock.lock(); failure = message; lock.unlock() }
}

func findHeadEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
    return nil
}


/// Asks the supervisor for `count` agents of `profile` in one transaction, as the poller does.
func queueSpawns(_ stack: BenchStack, _ profile: AgentProfile, count: Int) throws {
    try stack.db.write {
        let store = AgentStore(db: stack.db)
        for _ in 0..<count {
            let id = try store.createAgent(profile: profile)
            try store.enqueue(.spawn, agentID: id, requestedBy: "bench")
        }
    }
    stack.nudge("supervisor")
}

/// CPU seconds of every visible process, summed by command name.
/// CPU seconds of every process, by pid, with its command name (kernel workers are renamed by
/// the work they do, so they are grouped as "kworker").
func cpuSnapshot() -> [pid_t: (String, Double)] {
    var snapshot: [pid_t: (String, Double)] = [:]
    for entry in ProcessTable.all() {
        guard let text = try? String(contentsOfFile: "/proc/\(entry.pid)/comm", encoding: .utf8) else { continue }
        var name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if name.hasPrefix("kworker") { name = "kworker" }
        snapshot[entry.pid] = (name, cpuSeconds(entry.pid))
    }
    return snapshot
}

/// CPU seconds spent between two snapshots, by command name (a process that started in between
/// counts whole).
func cpuSpent(from before: [pid_t: (String, Double)], to after: [pid_t: (String, Double)]) -> [String: Double] {
    var totals: [String: Double] = [:]
    for (pid, (name, seconds)) in after {
        totals[name, default: 0] += seconds - (before[pid]?.1 ?? 0)
    }
    return totals
}
