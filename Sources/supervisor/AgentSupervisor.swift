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
    private(set) var agents: [Int64: AgentProcess] = [:]
    private var pendingOutput: [AgentOutputRow] = []
    private var pendingOutputBytes = 0
    private var flushScheduled = false
    private var shuttingDown = false
    private var chunk = [UInt8](repeating: 0, count: 65_536)
    /// Pids the component supervisor owns: the orphan sweep must never reap them.
    var trackedComponentPids: () -> Set<pid_t> = { [] }
    private var log: Logger { runtime.log }
    private var store: AgentStore { AgentStore(db: runtime.db) }

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
    private func recoverPreviousIncarnation() throws {
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

    private var completions: [(id: Int64, ok: Bool, message: String)] = []
    private var executedAwaitingCommit: Set<Int64> = []

    /// A spawn over the profile's max_instances waits (stays pending) until an agent of the
    /// profile exits: a oneshot agent often reports its result a moment before its process ends.
    private func mustWaitForSlot(_ command: AgentCommand) -> Bool {
        guard let agentID = command.agentID, let record = try? store.agent(id: agentID),
              let profile = catalog[record.profile] else { return false }
        return agents.values.filter { $0.profile.name == profile.name }.count >= profile.maxInstances
    }

    private func execute(_ command: AgentCommand) -> (ok: Bool, message: String) {
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

    private func spawn(_ command: AgentCommand) -> (ok: Bool, message: String) {
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

    private func prompt(_ command: AgentCommand) -> (ok: Bool, message: String) {
        guard let agentID = command.agentID, let agent = agents[agentID], !agent.stopRequested,
              agent.child.stdinFD != nil else {
            // The dispatcher is waiting for this prompt to land: tell it the agent is gone.
            queue(AgentOutputRow(agentID: command.agentID ?? 0, taskID: command.taskID, attempt: command.taskAttempt,
                                 kind: .lost, line: "prompt for an agent that is not running"))
            return (false, "no such live agent with an open stdin")
        }
        guard let line = command.payload["line"]?.stringValue, !line.contains("\n") else {
            return (false, "payload.line must be one line of text")
        }
        agent.taskID = command.taskID
        agent.attempt = command.taskAttempt
        // The dispatcher marked the agent busy in the transaction that queued this prompt.
        writeStdin(agent, Array((line + "\n").utf8), thenClose: false)
        return (true, "prompt written")
    }

    // MARK: Pipes

    private func watch(_ agent: AgentProcess) {
        let loop = runtime.loop
        if let fd = agent.child.stdoutFD {
            agent.stdoutWatch = loop.watch(fd: fd) { [unowned self, unowned agent] _ in self.readStdout(agent) }
        }
        if let fd = agent.child.stderrFD {
            agent.stderrWatch = loop.watch(fd: fd) { [unowned self, unowned agent] _ in self.readStderr(agent) }
        }
        agent.exitWatch = loop.watch(fd: agent.child.pidfd) { [unowned self, unowned agent] _ in self.agentExited(agent) }
    }

    private func readStdout(_ agent: AgentProcess, ignoringRate: Bool = false) {
        guard let fd = agent.child.stdoutFD else { return }
        var lines: [LineSplitter.Line] = []
        // Read no more than the rate allows now: a read that took whatever the pipe held could
        // overshoot the rate by a whole read when the agent keeps the pipe full.
        let budget = ignoringRate ? Int.max : max(1, Int(agent.stdoutBucket.available()))
        let open = readAvailable(fd, limit: ignoringRate ? Int.max : 256 * 1024, chunk: &chunk,
                                 stop: { lines.count >= budget }) { bytes in
            agent.stdoutSplitter.feed(bytes, into: &lines)
        }
        if !open {
            agent.stdoutSplitter.finish(into: &lines)
            if let watch = agent.stdoutWatch { runtime.loop.unwatch(watch) }
            agent.stdoutWatch = nil
            agent.child.closeStdout()
        }
        for line in lines {
            queue(AgentOutputRow(agentID: agent.id, taskID: agent.taskID, attempt: agent.attempt, kind: .line,
                                 line: line.text, truncated: line.truncated))
            if line.truncated {
                log.warning("agent output line truncated at \(agent.profile.maxLineBytes) bytes", agent.logFields)
            }
        }
        guard open, !ignoringRate, !lines.isEmpty else { return }
        let pause = agent.stdoutBucket.take(Double(lines.count))
        if pause > .zero, let watch = agent.stdoutWatch {
            // Backpressure: stop reading; the full pipe makes the agent wait.
            log.debug("agent output over its rate: pausing reads for \(pause.short) after \(lines.count) lines", agent.logFields)
            runtime.loop.setEvents(watch, 0)
            runtime.loop.schedule(after: pause) { [weak self, weak agent] in
                guard let agent, let watch = agent.stdoutWatch else { return }
                self?.runtime.loop.setEvents(watch, Int16(POLLIN))
            }
        }
    }

    private func readStderr(_ agent: AgentProcess) {
        guard let fd = agent.child.stderrFD else { return }
        var lines: [LineSplitter.Line] = []
        let open = readAvailable(fd, limit: 256 * 1024, chunk: &chunk) { bytes in
            agent.stderrSplitter.feed(bytes, into: &lines)
        }
        if !open {
            agent.stderrSplitter.finish(into: &lines)
            if let watch = agent.stderrWatch { runtime.loop.unwatch(watch) }
            agent.stderrWatch = nil
            agent.child.closeStderr()
        }
        for line in lines {
            agent.stderrTail.append(line.text)
            agent.stderrTailDirty = true
            if agent.journalBucket.tryTake() {
                if agent.suppressedStderrLines > 0 {
                    log.warning("\(agent.suppressedStderrLines) agent stderr lines not forwarded (rate limit)", agent.logFields)
                    agent.suppressedStderrLines = 0
                }
                log.info(line.text, agent.logFields + ["STREAM": "stderr"])
            } else {
                agent.suppressedStderrLines += 1
            }
        }
    }

    private func writeStdin(_ agent: AgentProcess, _ bytes: [UInt8], thenClose: Bool) {
        agent.pendingStdin.append(contentsOf: bytes)
        flushStdin(agent, closeWhenDone: thenClose)
    }

    private func flushStdin(_ agent: AgentProcess, closeWhenDone: Bool) {
        guard let fd = agent.child.stdinFD else { agent.pendingStdin.removeAll(); return }
        while !agent.pendingStdin.isEmpty {
            let n = agent.pendingStdin.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { agent.pendingStdin.removeFirst(n); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                if agent.stdinWatch == nil {
                    agent.stdinWatch = runtime.loop.watch(fd: fd, events: Int16(POLLOUT)) { [unowned self, unowned agent] _ in
                        self.flushStdin(agent, closeWhenDone: closeWhenDone)
                    }
                }
                return
            }
            // EPIPE: the agent closed its stdin or died; its exit will tell the rest.
            log.warning("cannot write to agent stdin: \(String(cString: strerror(errno)))", agent.logFields)
            agent.pendingStdin.removeAll()
            break
        }
        if let watch = agent.stdinWatch { runtime.loop.unwatch(watch); agent.stdinWatch = nil }
        if closeWhenDone { agent.child.closeStdin() }
    }

    // MARK: Output batches

    private func queue(_ row: AgentOutputRow) {
        pendingOutput.append(row)
        pendingOutputBytes += row.line?.utf8.count ?? 0
        if pendingOutput.count >= Self.maxPendingRows || pendingOutputBytes >= Self.maxPendingBytes {
            flushOutput()
        } else {
            // At the end of this loop iteration: everything read in one poll round commits together.
            scheduleFlush(after: .zero)
        }
    }

    /// Arranges a flush after `delay`, or sooner if one is already due sooner.
    private func scheduleFlush(after delay: Duration) {
        guard !(pendingOutput.isEmpty && completions.isEmpty) else { return }
        let due = MonotonicInstant.now().adding(delay)
        if let timer = flushTimer, let existing = flushDue {
            guard due < existing else { return }
            runtime.loop.reschedule(timer, after: delay)
            flushDue = due
            return
        }
        flushScheduled = true
        flushDue = due
        flushTimer = runtime.loop.schedule(after: delay) { [unowned self] in
            self.flushTimer = nil
            self.flushDue = nil
            self.flushOutput()
        }
    }

    private var flushTimer: EventLoop.Handle?
    private var flushDue: MonotonicInstant?

    /// Commits queued output and command answers in one transaction (with `also`, when given)
    /// and wakes the poller. Never nested in another transaction: its buffers are cleared only
    /// once their rows are committed.
    func flushOutput(also: (() throws -> Void)? = nil) {
        precondition(!runtime.db.isInTransaction, "flushOutput must own its transaction")
        flushScheduled = false
        if let timer = flushTimer {
            runtime.loop.cancel(timer)
            flushTimer = nil
            flushDue = nil
        }
        guard !pendingOutput.isEmpty || !completions.isEmpty || also != nil else { return }
        let rows = pendingOutput
        let answers = completions
        let ok = runtime.step("append agent output") {
            try runtime.db.write {
                try store.append(rows)
                for answer in answers { try store.completeCommand(id: answer.id, succeeded: answer.ok, result: answer.message) }
                try also?()
            }
        }
        if ok {
            pendingOutput.removeAll(keepingCapacity: true)
            pendingOutputBytes = 0
            completions.removeAll(keepingCapacity: true)
            for answer in answers { executedAwaitingCommit.remove(answer.id) }
            if !rows.isEmpty {
                let wake = runtime.wakeSender
                runtime.db.afterCommit { wake.nudge("poller") }
            }
        } else {
            // Keep everything and try again shortly (the database may be briefly unavailable).
            scheduleFlush(after: .milliseconds(100))
        }
    }

    private func flushStderrTails() {
        let dirty = agents.values.filter(\.stderrTailDirty)
        guard !dirty.isEmpty else { return }
        runtime.step("save stderr tails") {
            try runtime.db.write {
                for agent in dirty { try store.updateStderrTail(agentID: agent.id, agent.stderrTail.text) }
            }
            for agent in dirty { agent.stderrTailDirty = false }
        }
    }

    // MARK: Exit

    private func agentExited(_ agent: AgentProcess) {
        guard agent.child.exitStatus == nil, agent.child.pidfd >= 0 else { return }
        // Whatever is still in the pipes belongs before the exit record.
        readStdout(agent, ignoringRate: true)
        readStderr(agent)
        var lines: [LineSplitter.Line] = []
        agent.stdoutSplitter.finish(into: &lines)
        for line in lines {
            queue(AgentOutputRow(agentID: agent.id, taskID: agent.taskID, attempt: agent.attempt, kind: .line,
                                 line: line.text, truncated: line.truncated))
        }
        // The agent's helpers must not outlive it: kill its group while the zombie still holds
        // the group id (so the number cannot have been reused), and adopted escapees.
        kill(-agent.child.pid, SIGKILL)
        killAdoptedDescendants(of: agent.id)
        guard let status = agent.child.reapIfExited() else { return }
        for watch in [agent.stdoutWatch, agent.stderrWatch, agent.stdinWatch, agent.exitWatch].compactMap({ $0 }) {
            runtime.loop.unwatch(watch)
        }
        agents[agent.id] = nil
        let exitLine: JSON = [
            "status": status.exitCode.map { JSON.int(Int64($0)) } ?? .null,
            "signal": status.signal.map { JSON.int(Int64($0)) } ?? .null,
            "stop_requested": .bool(agent.stopRequested),
            "stderr_tail": .string(String(agent.stderrTail.text.suffix(2048))),
        ]
        queue(AgentOutputRow(agentID: agent.id, taskID: agent.taskID, attempt: agent.attempt, kind: .exit, line: exitLine.serialized()))
        let usage = agent.child.resourceUsage
        let tail = agent.stderrTail.text
        flushOutput(also: {
            try self.store.recordEnd(agentID: agent.id, state: .exited, status: status, usage: usage, stderrTail: tail, error: nil)
        })
        log.info("agent \(status)", agent.logFields + ["EXIT": "\(status)"])
        // A slot is free: spawns waiting for one can go now.
        runtime.loop.schedule(after: .zero) { [weak self] in
            guard let self else { return }
            self.runtime.step("agent commands") { try self.processCommands() }
        }
    }

    // MARK: Stopping trees

    /// The stop ladder for one agent: SIGTERM to its whole tree, SIGKILL after `grace`.
    func stop(_ agent: AgentProcess, grace: Duration, reason: String) {
        guard !agent.stopRequested else { return }
        agent.stopRequested = true
        log.info("stopping agent: \(reason)", agent.logFields)
        runtime.step("record stopping agent") {
            try runtime.db.run("UPDATE agents SET state = 'stopping' WHERE id = ?1 AND state IN ('starting','idle','busy')", agent.id)
        }
        signalTree(agent, SIGTERM)
        runtime.loop.schedule(after: grace) { [weak self, weak agent] in
            guard let self, let agent, agent.child.exitStatus == nil else { return }
            self.log.warning("agent ignored SIGTERM for \(grace.short): SIGKILL", agent.logFields)
            self.signalTree(agent, SIGKILL)
        }
    }

    /// Signals the agent's process group, every descendant (found through /proc, which catches
    /// children that left the group with setsid), and adopted orphans carrying its marker.
    private func signalTree(_ agent: AgentProcess, _ signal: Int32) {
        let table = ProcessTable.all()
        let descendants = Set(ProcessTable.descendants(of: agent.child.pid, in: table))
        agent.child.signalGroup(signal)
        agent.child.signal(signal)
        for entry in table where descendants.contains(entry.pid) {
            ProcessTable.signal(entry.pid, startTime: entry.startTime, signal)
        }
        killAdoptedDescendants(of: agent.id, signal: signal)
    }

    /// Processes reparented to us (we are a child subreaper) that carry `agentID`'s marker.
    private func killAdoptedDescendants(of agentID: Int64, signal: Int32 = SIGKILL) {
        let marker = String(agentID)
        for pid in adoptedOrphans() {
            guard let entry = ProcessTable.entry(pid), entry.state != "Z",
                  ProcessTable.environmentValue(pid, "SWITCHYARD_AGENT_ID") == marker else { continue }
            ProcessTable.signal(pid, startTime: entry.startTime, signal)
        }
    }

    /// Our children that we did not start ourselves: descendants of agents whose parent died.
    private func adoptedOrphans() -> [pid_t] {
        let tracked = Set(agents.values.map(\.child.pid)).union(trackedComponentPids())
        return ProcessTable.children(of: getpid()).filter { !tracked.contains($0) }
    }

    /// Reaps adopted orphans that exited and kills those whose agent is gone.
    func sweepOrphans() {
        for pid in adoptedOrphans() {
            guard let entry = ProcessTable.entry(pid) else { continue }
            if entry.state == "Z" {
                var status: Int32 = 0
                waitpid(pid, &status, WNOHANG)
                continue
            }
            if let marker = ProcessTable.environmentValue(pid, "SWITCHYARD_AGENT_ID"), let agentID = Int64(marker),
               agents[agentID] == nil {
                log.info("killing a leftover process of finished agent \(agentID)", ["AGENT_ID": marker, "PID": String(pid)])
                ProcessTable.signal(pid, startTime: entry.startTime, SIGKILL)
            }
        }
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

