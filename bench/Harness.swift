import Foundation
import Glibc
import Shared

/// A temporary state folder with the real executables running in it.
final class BenchStack {
    let directory: String
    var supervisor: ChildProcess?
    var extraProcesses: [ChildProcess] = []
    private(set) var db: Database!
    let environment: [String: String]

    init(name: String, profiles: String? = nil, rpcAgents: Int = 8, environment extra: [String: String] = [:]) throws {
        var template = Array("/tmp/sy-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp failed") }
        directory = String(cString: made)
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "SWITCHYARD_STATE_DIR": directory + "/state", "SWITCHYARD_LOG": "stderr",
                   "SWITCHYARD_LOG_LEVEL": ProcessInfo.processInfo.environment["BENCH_LOG_LEVEL"] ?? "warning", "SWITCHYARD_GATE_LISTEN": "127.0.0.1:0"]
        // Diagnostics passed through to the daemons (SWITCHYARD_SQL_PROFILE=1 with BENCH_LOG_LEVEL=notice).
        if let profile = ProcessInfo.processInfo.environment["SWITCHYARD_SQL_PROFILE"] { env["SWITCHYARD_SQL_PROFILE"] = profile }
        if let profiles {
            let text = "{\"profiles\": [\(profiles)]}".replacingOccurrences(of: "@BIN@", with: BinaryLocation.directory)
                .replacingOccurrences(of: "@DIR@", with: directory)
                .replacingOccurrences(of: "@RPC_AGENTS@", with: String(rpcAgents))
            try text.write(toFile: directory + "/profiles.json", atomically: true, encoding: .utf8)
            env["SWITCHYARD_PROFILES"] = directory + "/profiles.json"
        }
        env.merge(extra) { $1 }
        environment = env
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
    }

    deinit {
        stop()
        if ProcessInfo.processInfo.environment["SWITCHYARD_BENCH_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        } else {
            print("  (kept \(directory))")
        }
    }

    var runDirectory: String { directory + "/state/run" }

    func start(_ binary: String = "switchyard-supervisor", arguments: [String] = [], expectReady: Int) throws {
        let log = open(directory + "/\(binary).log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        var request = SpawnRequest(executable: BinaryLocation.directory + "/" + binary, arguments: arguments, environment: environment)
        request.stdout = .descriptor(log)
        request.stderr = .descriptor(log)
        let child = try ChildProcess.spawn(request)
        if binary == "switchyard-supervisor" { supervisor = child } else { extraProcesses.append(child) }
        do {
            try waitReady(binary, expectReady)
        } catch {
            let log = (try? String(contentsOfFile: directory + "/\(binary).log", encoding: .utf8)) ?? ""
            throw BenchError("\(error); last lines of \(binary).log:\n\(log.suffix(2000))")
        }
    }

    private func waitReady(_ binary: String, _ expectReady: Int) throws {
        try waitFor("\(binary) ready", timeout: .seconds(60)) {
            if db == nil, FileManager.default.fileExists(atPath: directory + "/state/switchyard.db") {
                db = try? Database(path: directory + "/state/switchyard.db")
            }
            let ready: Int64? = (try? db?.scalarInt("SELECT count(*) FROM components WHERE state = 'ready'")) ?? nil
            return (ready ?? 0) >= Int64(expectReady)
        }
    }

    func stop() {
        for child in ([supervisor].compactMap { $0 } + extraProcesses) where child.exitStatus == nil {
            child.signal(SIGTERM)
            if child.wait(timeout: .seconds(60)) == nil {
                child.signalGroup(SIGKILL)
                child.signal(SIGKILL)
                _ = child.wait(timeout: .seconds(5))
            }
        }
    }

    func nudge(_ name: String) { WakeSender(runDirectory: runDirectory).nudge(name) }

    func pids() throws -> [Int32] {
        try db.query("SELECT pid FROM components WHERE state = 'ready' AND pid IS NOT NULL") { Int32($0.int64(0)) }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func waitFor(_ what: String, timeout: Duration, poll: Duration = .microseconds(200), _ condition: () throws -> Bool) throws {
    let deadline = MonotonicInstant.now().adding(timeout)
    while MonotonicInstant.now() < deadline {
        if try condition() { return }
        usleep(UInt32(poll.nanosecondsClamped / 1000))
    }
    throw BenchError("timed out waiting for \(what)")
}

/// Percentiles of a sample (nearest-rank).
struct Sample {
    var values: [Double]
    init(_ values: [Double]) { self.values = values.sorted() }
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(values.count)).rounded(.up))
        return values[Swift.min(values.count - 1, Swift.max(0, rank - 1))]
    }
    var max: Double { values.last ?? .nan }
    var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }
}

/// CPU time (user + system) of a process, in seconds, from /proc/PID/stat fields 14 and 15.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Results, printed as they come and collected for the report.
final class Report {
    var rows: [(section: String, name: String, value: String, target: String, ratio: String)] = []
    /// Physical limits measured in this run (seconds per bare commit, per bare spawn).
    var commitSeconds: Double?
    var spawnSeconds: Double?

    func add(_ section: String, _ name: String, _ value: String, target: String = "", ratio: String = "") {
        rows.append((section, name, value, target, ratio))
        print("  \(name): \(value)\(target.isEmpty ? "" : "   (target \(target))")\(ratio.isEmpty ? "" : "   [\(ratio)]")")
        fflush(nil)
    }

    /// A latency as a multiple of the bare commit time.
    func commits(_ seconds: Double) -> String {
        guard let c = commitSeconds else { return "" }
        return String(format: "%.1f bare commits", seconds / c)
    }

    /// A rate per second as a fraction of the bare commit rate.
    func perCommit(_ rate: Double, _ unit: String) -> String {
        guard let c = commitSeconds else { return "" }
        return String(format: "%.2f %@ per bare commit time", rate * c, unit)
    }

    func table() -> String {
        var text = "| section | figure | value | target | as a ratio to the limits |\n|---|---|---|---|---|\n"
        for row in rows { text += "| \(row.section) | \(row.name) | \(row.value) | \(row.target) | \(row.ratio) |\n" }
        return text
    }
}

func ms(_ seconds: Double) -> String { String(format: "%.3f ms", seconds * 1000) }
func rate(_ value: Double, _ unit: String) -> String { "\(Int(value.rounded())) \(unit)" }
