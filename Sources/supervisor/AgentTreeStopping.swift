import CLinux
import Foundation
import Glibc
import Shared

/// Stopping agent process trees, and the orphans a child subreaper adopts.
extension AgentSupervisor {
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
    func signalTree(_ agent: AgentProcess, _ signal: Int32) {
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
    func killAdoptedDescendants(of agentID: Int64, signal: Int32 = SIGKILL) {
        let marker = String(agentID)
        for pid in adoptedOrphans() {
            guard let entry = ProcessTable.entry(pid), entry.state != "Z",
                  ProcessTable.environmentValue(pid, "SWITCHYARD_AGENT_ID") == marker else { continue }
            ProcessTable.signal(pid, startTime: entry.startTime, signal)
        }
    }

    /// Our children that we did not start ourselves: descendants of agents whose parent died.
    func adoptedOrphans() -> [pid_t] {
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

}
