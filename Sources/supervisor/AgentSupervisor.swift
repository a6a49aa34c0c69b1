import CLinux
import Foundation
import Glibc
import Shared

/// Owns every agent process: executes the agent_commands inbox, ingests agent output into the
/// database in batches, stops process trees, reaps adopted orphans, and after a crash of a
/// previous supervisor finds its agents and hands their tasks to the retry policy.
final class AgentSupervisor {
    let runtime: DaemonRuntime
    let catalog: ProfileCatalog
    var agents: [Int64: AgentProcess] = [:]
    var pendingOutput: [AgentOutputRow] = []
    var pendingOutputBytes = 0
    var flushScheduled = false
    var flushTimer: EventLoop.Handle?
    var flushDue: MonotonicInstant?
    /// A flush holds the write lock and is reading late output into its batch: queue, do not flush.
    var toppingUp = false
    /// Lines read from a pipe are being queued (a flush now must not read any pipe again).
    var queueingLines = false
    var shuttingDown = false
    var chunk = [UInt8](repeating: 0, count: 65_536)
    /// Pids the component supervisor owns: the orphan sweep must never reap them.
    var trackedComponentPids: () -> Set<pid_t> = { [] }
    var log: Logger { runtime.log }
    var store: AgentStore { AgentStore(db: runtime.db) }

    /// Flush early when this much output is waiting (bounds memory between loop iterations).
    static let maxPendingRows = 8192
    static let maxPendingBytes = 8 << 20

    init(runtime: DaemonRuntime, catalog: ProfileCatalog) {
        self.runtime = runtime
        self.catalog = catalog
    }

    func start() throws {
        if clinux_set_child_subreaper() != 0 {
            log.warning("PR_SET_CHILD_SUBREAPER failed: escaped agent descendants may not be found")
        }
        try recoverPreviousIncarnation()
        runtime.signalHandlers[SIGCHLD] = { [unowned self] in self.sweepOrphans() }
        runtime.loop.schedule(after: .seconds(5), repeating: .seconds(5)) { [unowned self] in self.sweepOrphans() }
        runtime.loop.schedule(after: .seconds(2), repeating: .seconds(2)) { [unowned self] in self.flushStderrTails() }
    }

    var liveCount: Int { agents.count }

    // MARK: Recovery

    /// Agents recorded as live by an earlier incarnation cannot be supervised any more (their
    /// pipes died with it). Each is identified by pid AND start time (never the pid alone, which
    /// may have been reused), its tree is killed, and its task is handed to the retry policy
    /// through a `lost` output row.
    func recoverPreviousIncarnation() throws {
        let incarnation = runtime.incarnation
        let stale = try store.liveAgents().filter { $0.supervisorIncarnation != nil && $0.supervisorIncarnation != incarnation }
        guard !stale.isEmpty else { return }
        let table = ProcessTable.all()
        for agent in stale {
            var killed = 0
            if let pid = agent.pid, let startTime = agent.processStartTime, ProcessTable.startTime(of: pid) == startTime {
                // Still the same process: its group id is held by it, so the group kill is safe.
                kill(-pid, SIGKILL)
                if ProcessTable.signal(pid, startTime: startTime, SIGKILL) { killed += 1 }
            }
            // Descendants that escaped the group carry the agent's marker in their environment.
            for entry in table where entry.pid != getpid()
                && ProcessTable.environmentValue(entry.pid, "SWITCHYARD_AGENT_ID") == String(agent.id) {
                if ProcessTable.signal(entry.pid, startTime: entry.startTime, SIGKILL) { killed += 1 }
            }
            try runtime.db.write {
                try store.recordEnd(agentID: agent.id, state: .lost, status: nil, usage: nil, stderrTail: agent.stderrTail,
                                    error: "agent lost: supervisor incarnation \(agent.supervisorIncarnation ?? 0) ended")
                try store.append([AgentOutputRow(agentID: agent.id, taskID: agent.taskID, attempt: agent.taskAttempt,
                                                 kind: .lost, line: "agent lost")])
            }
            log.warning("agent of a previous supervisor found and stopped; its task goes to the retry policy",
                        ["AGENT_ID": String(agent.id), "TASK_ID": agent.taskID.map(String.init) ?? "",
                         "ATTEMPT": agent.taskAttempt.map(String.init) ?? "", "KILLED": String(killed)])
        }
        runtime.wakeSender.nudge("poller")
    }

    // MARK: Commands

    /// Executes pending commands in order. Each is answered (done or failed) in the database.
    func processCommands() throws {
        guard !shuttingDown else { return }
        var cursor: Int64 = 0
        // Agents whose spawn waits for a free slot: their later commands wait behind it.
        var waiting: Set<Int64> = []
        while true {
            let commands = try store.pendingCommands(after: cursor, limit: 64)
            guard let last = commands.last else { return }
            cursor = last.id
            var needsCommit = false
            for command in commands where !executedAwaitingCommit.contains(command.id) {
                if let agent = command.agentID, waiting.contains(agent) { continue }
                if command.kind == .spawn, let agent = command.agentID, mustWaitForSlot(command) {
                    waiting.insert(agent)
                    continue
                }
                let result = execute(command)
                // The answer is recorded with the next commit (usually the agent's output a moment
                // later): one commit instead of two per task. Until then the id is remembered here,
                // so the command is never executed twice; after a crash, agents are restarted anyway.
                completions.append((command.id, result.ok, result.message))
                executedAwaitingCommit.insert(command.id)
                if command.kind != .prompt { needsCommit = true }
            }
            if needsCommit { flushOutput() }
        }
        scheduleFlush(after: .milliseconds(2))
    }

    var completions: [(id: Int64, ok: Bool, message: String)] = []
    var executedAwaitingCommit: Set<Int64> = []

    /// A spawn over the profile's max_instances waits (stays pending) until an agent of the
    /// profile exits: a oneshot agent often reports its result a moment before its process ends.
    func mustWaitForSlot(_ command: AgentCommand) -> Bool {
        guard let agentID = command.agentID, let record = try? store.agent(id: agentID),
              let profile = catalog[record.profile] else { return false }
        return agents.values.filter { $0.profile.name == profile.name }.count >= profile.maxInstances
    }

    func execute(_ command: AgentCommand) -> (ok: Bool, message: String) {
        switch command.kind {
        case .spawn: return spawn(command)
        case .prompt: return prompt(command)
        case .closeStdin:
            guard let agent = command.agentID.flatMap({ agents[$0] }) else { return (false, "no such live agent") }
            agent.pendingStdin.removeAll()
            agent.child.closeStdin()
            return (true, "stdin closed")
        case .signal:
            guard let agent = command.agentID.flatMap({ agents[$0] }) else { return (false, "no such live agent") }
            guard let number = command.payload["signal"]?.int64Value, (1...64).contains(number) else {
                return (false, "payload.signal must be a signal number")
            }
            agent.child.signalGroup(Int32(number))
            return (true, "signal \(number) sent to the agent's process group")
        case .stop:
            guard let agent = command.agentID.flatMap({ agents[$0] }) else { return (true, "agent is not running") }
            let grace = command.payload["grace_ms"]?.int64Value.map { Duration.milliseconds($0) } ?? agent.profile.stopGrace
            stop(agent, grace: grace, reason: command.payload["reason"]?.stringValue ?? "stop requested by \(command.requestedBy)")
            return (true, "stopping")
        }
    }

    func spawn(_ command: AgentCommand) -> (ok: Bool, message: String) {
        guard let agentID = command.agentID else { return (false, "spawn needs agent_id") }
        func refuse(_ reason: String) -> (ok: Bool, message: String) {
            log.error("cannot spawn agent: \(reason)", ["AGENT_ID": String(agentID), "TASK_ID": command.taskID.map(String.init) ?? ""])
            queue(AgentOutputRow(agentID: agentID, taskID: command.taskID, attempt: command.taskAttempt, kind: .spawnFailed, line: reason))
            flushOutput(also: {
                try self.store.recordEnd(agentID: agentID, state: .failed, status: nil, usage: nil, stderrTail: "", error: reason)
            })
            return (false, reason)
        }
        guard agents[agentID] == nil else { return (false, "agent \(agentID) is already running") }
        guard let record = try? store.agent(id: agentID), record.state == .starting || record.state == .busy, record.pid == nil else {
            return refuse("agent \(agentID) is not waiting to be spawned")
        }
        guard let profile = catalog[record.profile] else { return refuse("unknown profile '\(record.profile)'") }
        // A spawn that waited for a slot may have outlived its task (canceled, timed out).
        if let taskID = command.taskID, let attempt = command.taskAttempt,
           let task = try? TaskStore(db: runtime.db).task(id: taskID), task.attempt != attempt || !task.status.isActive {
            runtime.step("record skipped spawn") {
                try store.recordEnd(agentID: agentID, state: .failed, status: nil, usage: nil, stderrTail: "",
                                    error: "not started: task \(taskID) attempt \(attempt) is no longer active")
            }
            return (true, "skipped: the task is no longer active")
        }
        let live = agents.values.filter { $0.profile.name == profile.name }.count
        guard live < profile.maxInstances else {
            return refuse("profile '\(profile.name)' already runs \(live) of max_instances \(profile.maxInstances)")
        }
        let prompt = command.payload["prompt"]?.stringValue
        let lane = command.payload["lane"]?.stringValue
        var request = SpawnRequest(
            executable: profile.argv[0], arguments: Array(profile.arguments(prompt: prompt).dropFirst()),
            environment: profile.childEnvironment(from: runtime.configuration.environment, agentID: agentID,
                                                  taskID: command.taskID, attempt: command.taskAttempt))
        if let directory = profile.expandedWorkingDirectory(lane: lane, taskID: command.taskID,
                                                            stateDirectory: runtime.configuration.stateDirectory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o750])
            } catch {
                return refuse("cannot create working directory \(directory): \(error.localizedDescription)")
            }
            request.workingDirectory = directory
        }
        request.stdin = .pipe
        request.stdout = .pipe
        request.stderr = .pipe
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(request)
        } catch {
            return refuse("\(error)")
        }
        let agent = AgentProcess(id: agentID, profile: profile, child: child, taskID: command.taskID, attempt: command.taskAttempt)
        agents[agentID] = agent
        let state: AgentRecord.State = command.taskID == nil ? .idle : .busy
        runtime.step("record spawn") {
            try store.recordSpawn(agentID: agentID, pid: child.pid, processStartTime: agent.startTime,
                                  incarnation: runtime.incarnation, state: state)
        }
        queue(AgentOutputRow(agentID: agentID, taskID: agent.taskID, attempt: agent.attempt, kind: .spawned,
                             line: JSON.object(["pid": .int(Int64(child.pid))]).serialized()))
        watch(agent)
        if profile.mode == .oneshot {
            if profile.promptDelivery == .stdin, let prompt {
                writeStdin(agent, Array(prompt.utf8), thenClose: true)
            } else {
                agent.child.closeStdin()
            }
        }
        log.info("agent started", agent.logFields + ["PID": String(child.pid)])
        return (true, "pid \(child.pid)")
    }

    func prompt(_ command: AgentCommand) -> (ok: Bool, message: String) {
        guard let agentID = command.agentID, let agent = agents[agentID], !agent.stopRequested,
              agent.child.stdinFD != nil else {
            // The dispatcher is waiting for this prompt to land: tell it the agent is gone.
            queue(AgentOutputRow(agentID: command.agentID ?? 0, taskID: command.taskID, attempt: command.taskAttempt,
                                 kind: .lost, line: "prompt for an agent that is not running"))
            return (false, "no such live agent with an open stdin")
        }
        guard let line = command.payload["line"]?.stringValue, !line.utf8.contains(0x0a) else {
            return (false, "payload.line must be one line of text")
        }
        agent.taskID = command.taskID
        agent.attempt = command.taskAttempt
        // The dispatcher marked the agent busy in the transaction that queued this prompt.
        writeStdin(agent, Array((line + "\n").utf8), thenClose: false)
        return (true, "prompt written")
    }

    // MARK: Shutdown

    func beginShutdown() {
        shuttingDown = true
        for agent in agents.values { stop(agent, grace: min(agent.profile.stopGrace, .seconds(10)), reason: "supervisor stopping") }
    }

    var isDrained: Bool { agents.isEmpty }
}

extension ExitStatus {
    var exitCode: Int32? { if case .exited(let code) = self { return code }; return nil }
    var signal: Int32? { if case .signaled(let signal) = self { return signal }; return nil }
}

