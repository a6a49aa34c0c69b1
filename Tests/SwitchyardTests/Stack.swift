import Foundation
import Glibc
import Shared
import XCTest

/// The whole stack in all-in-one mode (supervisor, gate, scheduler, poller) on a sandbox,
/// with a profiles file of the test's choosing.
final class Stack {
    let sandbox: Sandbox
    private(set) var supervisor: ChildProcess!
    private(set) var db: Database!
    let environment: [String: String]

    var runDirectory: String { sandbox.path + "/state/run" }

    /// `profiles`: JSON array body of the profiles file. `@DEMO@` stands for the demo agent's path
    /// and `@SANDBOX@` for the sandbox.
    init(profiles: String, environment extra: [String: String] = [:], components: String = "gate,scheduler,poller") throws {
        sandbox = Sandbox()
        let text = "{\"profiles\": [\(profiles)]}"
            .replacingOccurrences(of: "@DEMO@", with: TestBinaries.path("switchyard-demo-agent"))
            .replacingOccurrences(of: "@SANDBOX@", with: sandbox.path)
        try text.write(toFile: sandbox.path + "/profiles.json", atomically: true, encoding: .utf8)
        var env = sandbox.environment([
            "SWITCHYARD_PROFILES": sandbox.path + "/profiles.json", "SWITCHYARD_RETRY_BASE_MS": "50", "SWITCHYARD_RETRY_MAX_MS": "200",
            "SWITCHYARD_LOG_LEVEL": "info", "SWITCHYARD_GATE_LISTEN": "127.0.0.1:0",
        ])
        env.merge(extra) { $1 }
        environment = env
        try FileManager.default.createDirectory(atPath: sandbox.path + "/state", withIntermediateDirectories: true)
        try start(components: components)
    }

    func start(components: String = "gate,scheduler,poller") throws {
        supervisor = try sandbox.start("switchyard-supervisor", components == "none" ? ["--agents-only"] : ["--components", components],
                                       environment: environment, logName: "supervisor")
        let expected = components == "none" ? 1 : components.split(separator: ",").count + 1
        let ready = waitUntil(.seconds(30)) {
            if self.db == nil, FileManager.default.fileExists(atPath: self.sandbox.databasePath) {
                self.db = try? Database(path: self.sandbox.databasePath)
            }
            return (try? self.db?.scalarInt("SELECT count(*) FROM components WHERE state = 'ready'")) == Int64(expected)
        }
        if !ready { throw StackError(message: "stack did not become ready: \(sandbox.read("supervisor.err").suffix(3000))") }
    }

    struct StackError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    deinit { stop() }

    func stop() {
        guard let supervisor, supervisor.exitStatus == nil else { return }
        supervisor.signal(SIGTERM)
        if supervisor.wait(timeout: .seconds(40)) == nil {
            supervisor.signalGroup(SIGKILL)
            supervisor.signal(SIGKILL)
            _ = supervisor.wait(timeout: .seconds(5))
        }
    }

    var tasks: TaskStore { TaskStore(db: db) }

    @discardableResult
    func submit(_ prompt: String, lane: String = "default", capabilities: [String] = [], profile: String? = nil,
                maxAttempts: Int = 3, budget: Double? = nil) throws -> Int64 {
        let task = try tasks.submit(IntakeRequest(prompt: prompt, lane: lane, capabilities: capabilities, profile: profile,
                                                  maxAttempts: maxAttempts, budgetUSD: budget)).task
        WakeSender(runDirectory: runDirectory).nudge("scheduler")
        return task.id
    }

    func task(_ id: Int64) throws -> TaskRecord { try XCTUnwrap(tasks.task(id: id)) }

    func status(_ id: Int64) -> TaskStatus? { try? tasks.task(id: id)?.status }

    /// Waits until every task is in a status of `statuses`.
    @discardableResult
    func waitFor(_ ids: [Int64], in statuses: Set<TaskStatus> = [.succeeded, .dead, .canceled, .needsReview],
                 timeout: Duration = .seconds(60)) -> Bool {
        waitUntil(timeout, poll: .milliseconds(20)) { ids.allSatisfy { self.status($0).map(statuses.contains) ?? false } }
    }

    func events(_ id: Int64) throws -> [TaskEvent] { try tasks.events(task: id) }

    var log: String { sandbox.read("supervisor.err") }

    func componentPid(_ name: String) throws -> Int32? {
        try db.scalarInt("SELECT pid FROM components WHERE name = ?1", name).map { Int32($0) }
    }
}
