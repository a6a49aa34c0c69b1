import Foundation
import Glibc
import Shared

struct ChaosOptions {
    var tasks = 1000
    var seed: UInt64 = UInt64(WallClock.now())
    var keep = false
    var laneLimit = 2
    var lanes = 10

    static func parse(_ arguments: [String]) throws -> ChaosOptions {
        var options = ChaosOptions()
        var index = 0
        func value() throws -> String {
            index += 1
            guard index < arguments.count else { throw ChaosError("\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--tasks": options.tasks = Int(try value()) ?? options.tasks
            case "--seed": options.seed = UInt64(try value()) ?? options.seed
            case "--keep": options.keep = true
            default: throw ChaosError("usage: switchyard-chaos [--tasks N] [--seed N] [--keep]")
            }
            index += 1
        }
        return options
    }
}

struct ChaosError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A small seeded generator (SplitMix64), so a run can be repeated with --seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

final class ChaosRun {
    let options: ChaosOptions
    let directory: String
    let token = ControlTokens.randomToken()
    var random: SeededRandom
    var supervisor: ChildProcess?
    var base = ""
    var environment: [String: String] = [:]
    /// Every intake that was answered 201 (or 200 on a replay of a 201): idempotency key -> task id.
    var accepted: [String: Int64] = [:]
    var kills: [String: Int] = [:]
    var stops = 0
    /// Set when something went wrong: the state folder is evidence.
    var keepDirectory = false

    init(options: ChaosOptions) throws {
        self.options = options
        random = SeededRandom(state: options.seed)
        var template = Array("/tmp/sy-chaos-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ChaosError("mkdtemp failed") }
        directory = String(cString: made)
    }

    deinit {
        if let supervisor, supervisor.exitStatus == nil {
            supervisor.signal(SIGCONT)
            supervisor.signal(SIGTERM)
            if supervisor.wait(timeout: .seconds(30)) == nil { supervisor.signalGroup(SIGKILL); supervisor.signal(SIGKILL); _ = supervisor.wait() }
        }
        if !options.keep && !keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    var db: Database { get throws { try Database(path: directory + "/state/switchyard.db") } }

    func run() throws -> Int {
        say("chaos: \(options.tasks) tasks, seed \(options.seed), state in \(directory)")
        try startStack()
        let started = MonotonicInstant.now()
        // Submit from a background thread while the main thread makes chaos.
        let submitter = Submitter(run: self)
        let thread = Thread { submitter.submitAll() }
        thread.start()
        var nextStrike = MonotonicInstant.now().adding(.milliseconds(Int64.random(in: 1000...3000, using: &random)))
        let chaosEnd = { () throws -> Bool in submitter.isDone ? try self.allTerminal() : false }
        while !((try? chaosEnd()) ?? false) {
            if MonotonicInstant.now().duration(since: started) > .seconds(900) { throw ChaosError("no end after 15 minutes") }
            try keepSupervisorAlive()
            if MonotonicInstant.now() >= nextStrike {
                try strike()
                nextStrike = MonotonicInstant.now().adding(.milliseconds(Int64.random(in: 1000...3000, using: &random)))
            }
            usleep(50_000)
        }
        accepted = submitter.accepted
        let elapsed = MonotonicInstant.now().duration(since: started)
        say("chaos: all \(accepted.count) accepted tasks terminal after \(elapsed.short); \(kills.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")) killed, \(stops) stopped")
        return try audit()
    }

    // MARK: The stack

    func startStack() throws {
        let profiles = """
            {"profiles": [
              {"name": "rpc", "argv": ["\(BinaryLocation.directory)/switchyard-demo-agent", "rpc"], "mode": "rpc", "capabilities": ["code"], "max_instances": 4, "stall_timeout_s": 3},
              {"name": "oneshot", "argv": ["\(BinaryLocation.directory)/switchyard-demo-agent", "oneshot"], "mode": "oneshot", "capabilities": ["code"], "max_instances": 4, "stall_timeout_s": 3}
            ]}
            """
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
        try profiles.write(toFile: directory + "/profiles.json", atomically: true, encoding: .utf8)
        environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "SWITCHYARD_STATE_DIR": directory + "/state", "SWITCHYARD_LOG": "stderr",
            "SWITCHYARD_LOG_LEVEL": "notice", "SWITCHYARD_GATE_LISTEN": "127.0.0.1:0", "SWITCHYARD_CONTROL_TOKEN": token,
            "SWITCHYARD_PROFILES": directory + "/profiles.json", "SWITCHYARD_LANE_LIMIT": String(options.laneLimit),
            "SWITCHYARD_MAX_ACTIVE": "8", "SWITCHYARD_RETRY_BASE_MS": "200", "SWITCHYARD_RETRY_MAX_MS": "2000",
            "SWITCHYARD_CLAIM_TIMEOUT_MS": "15000", "SWITCHYARD_COMPONENT_WATCHDOG_MS": "2000",
            "SWITCHYARD_RESTART_STABLE_MS": "1000", "SWITCHYARD_START_LIMIT_BURST": "1000",
        ]
        try launchSupervisor()
    }

    func launchSupervisor() throws {
        let log = open(directory + "/stack.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        var request = SpawnRequest(executable: BinaryLocation.directory + "/switchyard-supervisor", environment: environment)
        request.stdout = .descriptor(log)
        request.stderr = .descriptor(log)
        try? FileManager.default.removeItem(atPath: directory + "/state/run/gate.address")
        supervisor = try ChildProcess.spawn(request)
        let deadline = MonotonicInstant.now().adding(.seconds(30))
        while MonotonicInstant.now() < deadline {
            if let address = try? String(contentsOfFile: directory + "/state/run/gate.address", encoding: .utf8), !address.isEmpty {
                base = "http://" + address.trimmingCharacters(in: .whitespacesAndNewlines)
                return
            }
            usleep(20_000)
        }
        let text = (try? String(contentsOfFile: directory + "/stack.log", encoding: .utf8)) ?? ""
        keepDirectory = true
        throw ChaosError("the stack did not start within 30 s (state kept in \(directory)); last lines of stack.log:\n\(text.suffix(3000))")
    }

    /// What systemd would do for the top process: start it again when it dies.
    func keepSupervisorAlive() throws {
        guard let supervisor, supervisor.reapIfExited() != nil else { return }
        try launchSupervisor()
    }

    // MARK: Strikes

    func strike() throws {
        let db = try self.db
        var targets: [(label: String, pid: Int32, startTime: Int64?)] = []
        for (name, pid) in try db.query("SELECT name, pid FROM components WHERE state = 'ready' AND pid IS NOT NULL AND name != 'supervisor'", map: { ($0.string(0), Int32($0.int64(1))) }) {
            // The row may be stale: the pid must still be that component (an agent, also a child of
            // the supervisor, may have been given the number since).
            guard let entry = ProcessTable.entry(pid), entry.ppid == supervisor?.pid,
                  let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                  comm.hasPrefix("switchyard-" + name.prefix(4)) else { continue }
            targets.append((name, pid, entry.startTime))
        }
        if let supervisor { targets.append(("supervisor", supervisor.pid, ProcessTable.startTime(of: supervisor.pid))) }
        for (pid, start) in try db.query("SELECT pid, process_start_time FROM agents WHERE state IN ('idle', 'busy') AND pid IS NOT NULL", map: { (Int32($0.int64(0)), $0.optionalInt64(1)) }) {
            targets.append(("agent", pid, start))
        }
        guard !targets.isEmpty else { return }
        let target = targets[Int.random(in: 0..<targets.count, using: &random)]
        guard let startTime = target.startTime else { return }
        if Int.random(in: 0..<5, using: &random) == 0 {
            // SIGSTOP: the watchdog (components) or stall detection (agents) must deal with it; the
            // supervisor itself is watched by nobody here, so it is continued after a while.
            guard ProcessTable.signal(target.pid, startTime: startTime, SIGSTOP) else { return }
            stops += 1
            if target.label == "supervisor" {
                usleep(UInt32.random(in: 500_000...2_500_000, using: &random))
                ProcessTable.signal(target.pid, startTime: startTime, SIGCONT)
            }
        } else if ProcessTable.signal(target.pid, startTime: startTime, SIGKILL) {
            kills[target.label, default: 0] += 1
        }
    }

    func allTerminal() throws -> Bool {
        try db.scalarInt("SELECT count(*) FROM tasks WHERE status NOT IN ('succeeded', 'dead', 'canceled', 'needs_review')") == 0
    }

    // MARK: Audit

    func audit() throws -> Int {
        let db = try self.db
        var violations: [String] = []
        let tasks = try TaskStore(db: db).tasks(matching: "1", [], order: "id", limit: 1_000_000)
        let byID = Dictionary(uniqueKeysWithValues: tasks.map { ($0.id, $0) })
        // Every intake answered 201 is present, with its key; none is lost.
        for (key, id) in accepted {
            guard let task = byID[id] else { violations.append("accepted task \(id) (\(key)) is missing"); continue }
            if task.idempotencyKey != key { violations.append("task \(id) has key \(task.idempotencyKey ?? "none"), expected \(key)") }
        }
        if tasks.count != accepted.count { violations.append("\(tasks.count) tasks in the database, \(accepted.count) accepted") }
        // Every task is terminal.
        for task in tasks where !task.status.isTerminal && task.status != .needsReview {
            violations.append("task \(task.id) is \(task.status.rawValue)")
        }
        // No lane over its limit, replaying the event log in commit order.
        var active: [String: Set<String>] = [:]
        var worst: [String: Int] = [:]
        let events = try db.query("SELECT task_id, attempt, kind FROM task_events ORDER BY id") { ($0.int64(0), $0.int(1), $0.string(2)) }
        var completions: [Int64: [Int]] = [:]
        for (id, attempt, kind) in events {
            guard let lane = byID[id]?.lane else { continue }
            let key = "\(id):\(attempt)"
            switch kind {
            case "claimed":
                active[lane, default: []].insert(key)
                worst[lane] = max(worst[lane] ?? 0, active[lane]!.count)
            case "failed", "succeeded", "canceled", "needs_review", "dead":
                active[lane]?.remove(key)
                if kind == "succeeded" { completions[id, default: []].append(attempt) }
            default: break
            }
        }
        for (lane, peak) in worst where peak > options.laneLimit { violations.append("lane \(lane) had \(peak) active tasks (limit \(options.laneLimit))") }
        // No completion from a stale attempt: at most one success, from the task's final attempt.
        for (id, attempts) in completions {
            if attempts.count > 1 { violations.append("task \(id) completed \(attempts.count) times") }
            if let task = byID[id], attempts.last != task.attempt { violations.append("task \(id) completed by attempt \(attempts.last!) but is at \(task.attempt)") }
        }
        let stale = events.filter { $0.2 == "stale_report_ignored" }.count
        let counts = Dictionary(grouping: tasks, by: \.status).mapValues(\.count)
        say("chaos: \(tasks.count) tasks: " + counts.map { "\($0.value) \($0.key.rawValue)" }.sorted().joined(separator: ", ")
              + "; \(stale) stale reports refused; lanes peaked at \(worst.values.max() ?? 0) (limit \(options.laneLimit))")
        for violation in violations.prefix(50) { say("VIOLATION: \(violation)") }
        say(violations.isEmpty ? "chaos: no violation" : "chaos: \(violations.count) violations")
        return violations.count
    }
}

/// Submits every task through the gate, retrying with the same idempotency key while the gate is
/// down or being restarted (a crashed request may or may not have committed: the key makes the
/// retry safe either way).
final class Submitter: @unchecked Sendable {
    // @unchecked: `accepted` and `done` are written by the submitting thread and read by the main
    // thread only after `done` is seen true under the lock.
    private let lock = NSLock()
    private var _accepted: [String: Int64] = [:]
    private var _done = false
    private let total: Int
    private let seed: UInt64
    private let token: String
    private let lanes: Int
    private let baseProvider: () -> String

    init(run: ChaosRun) {
        total = run.options.tasks
        seed = run.options.seed
        token = run.token
        lanes = run.options.lanes
        baseProvider = { [unowned run] in run.base }
    }

    var isDone: Bool { lock.lock(); defer { lock.unlock() }; return _done }
    var accepted: [String: Int64] { lock.lock(); defer { lock.unlock() }; return _accepted }

    func submitAll() {
        var random = SeededRandom(state: seed ^ 0x5eed)
        for i in 0..<total {
            let roll = Int.random(in: 0..<100, using: &random)
            let directive: String
            switch roll {
            case 0..<60: directive = "@work=\(Int.random(in: 5...150, using: &random))"
            case 60..<72: directive = "@fail-until=2"
            case 72..<77: directive = "@fail"
            case 77..<85: directive = "@work=\(Int.random(in: 800...2500, using: &random)) @progress=4"
            case 85..<90: directive = "@ask=review"
            case 90..<95: directive = "@hang-until=2"
            default: directive = "@cost=0.01 @tokens=500,50"
            }
            let key = "chaos-\(seed)-\(i)"
            let body: JSON = ["prompt": .string("chaos task \(i) \(directive)"), "lane": .string("lane\(i % lanes)"),
                              "capabilities": ["code"], "max_attempts": 4, "idempotency_key": .string(key), "requested_by": "chaos"]
            while true {
                do {
                    let response = try HTTPClient.request("POST", url: baseProvider(), path: "/control/api/tasks", bearer: token,
                                                          body: Array(body.serialized().utf8), timeout: .seconds(3))
                    if (response.status == 201 || response.status == 200), let id = response.json?["task"]?["id"]?.int64Value {
                        lock.lock(); _accepted[key] = id; lock.unlock()
                        break
                    }
                    if response.status >= 400 && response.status < 500 && response.status != 408 {
                        say("chaos: intake refused \(response.status): \(String(decoding: response.body, as: UTF8.self))")
                        break
                    }
                } catch {
                    // The gate is down or restarting: try again with the same key.
                }
                usleep(50_000)
            }
        }
        lock.lock(); _done = true; lock.unlock()
    }
}
