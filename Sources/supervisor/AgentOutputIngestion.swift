import CLinux
import Foundation
import Glibc
import Shared

/// Agent pipes: stdin writes, stdout lines (paced by the profile's rate, committed in batches),
/// stderr to the journal and a bounded tail, and the exit record after the last line.
extension AgentSupervisor {
    // MARK: Pipes

    func watch(_ agent: AgentProcess) {
        let loop = runtime.loop
        if let fd = agent.child.stdoutFD {
            agent.stdoutWatch = loop.watch(fd: fd) { [unowned self, unowned agent] _ in self.readStdout(agent) }
        }
        if let fd = agent.child.stderrFD {
            agent.stderrWatch = loop.watch(fd: fd) { [unowned self, unowned agent] _ in self.readStderr(agent) }
        }
        agent.exitWatch = loop.watch(fd: agent.child.pidfd) { [unowned self, unowned agent] _ in self.agentExited(agent) }
    }

    /// The lines a pipe has now (at most `budget` lines within `limit` bytes); at end of file, the
    /// unfinished last line too. `open` is false at end of file.
    func readLines(_ fd: Int32, _ splitter: inout LineSplitter, limit: Int, budget: Int = .max)
        -> (lines: [LineSplitter.Line], open: Bool) {
        var lines: [LineSplitter.Line] = []
        let open = readAvailable(fd, limit: limit, chunk: &chunk, stop: { lines.count >= budget }) { bytes in
            splitter.feed(bytes, into: &lines)
        }
        if !open { splitter.finish(into: &lines) }
        return (lines, open)
    }

    func unwatch(_ handle: inout EventLoop.Handle?) {
        if let watch = handle { runtime.loop.unwatch(watch) }
        handle = nil
    }

    func readStdout(_ agent: AgentProcess, ignoringRate: Bool = false, byteLimit: Int = 256 * 1024) {
        guard let fd = agent.child.stdoutFD else { return }
        // Read no more than the rate allows now: a read that took whatever the pipe held could
        // overshoot the rate by a whole read when the agent keeps the pipe full.
        let budget = ignoringRate ? Int.max : max(1, Int(agent.stdoutBucket.available()))
        let (lines, open) = readLines(fd, &agent.stdoutSplitter, limit: ignoringRate ? Int.max : byteLimit, budget: budget)
        if !open {
            unwatch(&agent.stdoutWatch)
            agent.child.closeStdout()
        }
        queueLines(lines, of: agent)
        guard open, !ignoringRate, !lines.isEmpty else { return }
        let pause = agent.stdoutBucket.take(Double(lines.count))
        if pause > .zero, let watch = agent.stdoutWatch {
            // Backpressure: stop reading; the full pipe makes the agent wait.
            log.debug("agent output over its rate: pausing reads for \(pause.short) after \(lines.count) lines", agent.logFields)
            runtime.loop.setEvents(watch, 0)
            agent.stdoutPaused = true
            runtime.loop.schedule(after: pause) { [weak self, weak agent] in
                guard let agent else { return }
                agent.stdoutPaused = false
                guard let watch = agent.stdoutWatch else { return }
                self?.runtime.loop.setEvents(watch, Int16(POLLIN))
            }
        }
    }

    /// Queues lines read from an agent's stdout, in order. A flush that a full buffer triggers
    /// meanwhile does not top up (`topUpOutput`): lines already read but not yet queued would
    /// land behind newer ones.
    func queueLines(_ lines: [LineSplitter.Line], of agent: AgentProcess) {
        queueingLines = true
        defer { queueingLines = false }
        for line in lines {
            queue(AgentOutputRow(agentID: agent.id, taskID: agent.taskID, attempt: agent.attempt, kind: .line,
                                 line: line.text, truncated: line.truncated))
            if line.truncated {
                log.warning("agent output line truncated at \(agent.profile.maxLineBytes) bytes", agent.logFields)
            }
        }
    }

    func readStderr(_ agent: AgentProcess) {
        guard let fd = agent.child.stderrFD else { return }
        let (lines, open) = readLines(fd, &agent.stderrSplitter, limit: 256 * 1024)
        if !open {
            unwatch(&agent.stderrWatch)
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

    func writeStdin(_ agent: AgentProcess, _ bytes: [UInt8], thenClose: Bool) {
        agent.pendingStdin.append(contentsOf: bytes)
        flushStdin(agent, closeWhenDone: thenClose)
    }

    func flushStdin(_ agent: AgentProcess, closeWhenDone: Bool) {
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

    func queue(_ row: AgentOutputRow) {
        pendingOutput.append(row)
        pendingOutputBytes += row.line?.utf8.count ?? 0
        if toppingUp { return }  // the flush in progress takes it
        if pendingOutput.count >= Self.maxPendingRows || pendingOutputBytes >= Self.maxPendingBytes {
            flushOutput()
        } else {
            // At the end of this loop iteration: everything read in one poll round commits together.
            scheduleFlush(after: .zero)
        }
    }

    /// Arranges a flush after `delay`, or sooner if one is already due sooner.
    func scheduleFlush(after delay: Duration) {
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
        var rows: [AgentOutputRow] = []
        let answers = completions
        let ok = runtime.step("append agent output") {
            try runtime.db.write {
                topUpOutput()
                rows = pendingOutput
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

    /// Reads what agents wrote while this flush waited for the write lock, so it commits with
    /// this batch instead of in the next transaction: one poll(2) over the pipes that are not
    /// paused by their rate, then a read of the ready ones only. Only for small batches, at most
    /// one pipe's worth per agent and `topUpBytes` in all: it catches the few lines of a short
    /// wait; a flood is read by the event loop as usual, within the usual bounds.
    static let topUpBelowRows = 1024
    static let topUpBytes = 256 * 1024

    func topUpOutput() {
        guard !queueingLines, pendingOutput.count < Self.topUpBelowRows else { return }
        let candidates = agents.values.filter { $0.stdoutWatch != nil && !$0.stdoutPaused && $0.child.stdoutFD != nil }
        guard !candidates.isEmpty else { return }
        var fds = candidates.map { pollfd(fd: $0.child.stdoutFD ?? -1, events: Int16(POLLIN), revents: 0) }
        guard poll(&fds, nfds_t(fds.count), 0) > 0 else { return }
        toppingUp = true
        defer { toppingUp = false }
        let stopAt = pendingOutputBytes + Self.topUpBytes
        for (agent, polled) in zip(candidates, fds) where polled.revents & Int16(POLLIN | POLLHUP) != 0 {
            guard pendingOutputBytes < stopAt else { break }
            readStdout(agent, byteLimit: 64 * 1024)
        }
    }

    func flushStderrTails() {
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

    func agentExited(_ agent: AgentProcess) {
        guard agent.child.exitStatus == nil, agent.child.pidfd >= 0 else { return }
        // Whatever is still in the pipes belongs before the exit record.
        readStdout(agent, ignoringRate: true)
        readStderr(agent)
        var lines: [LineSplitter.Line] = []
        agent.stdoutSplitter.finish(into: &lines)
        queueLines(lines, of: agent)
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

}
