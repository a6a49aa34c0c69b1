import Foundation
import Shared

/// Claims queued tasks when it is safe: on a wake hint (intake, a finished task freeing a lane,
/// an idle agent) with low latency, at the next not_before, and on a fallback period.
final class SchedulerService: SweepingService {
    private var planner: DispatchPlanner!
    private var lastBlockers: [String] = []
    private var lastClaims = 0
    private var notBeforeTimer: EventLoop.Handle?

    init() { super.init(wakeName: "scheduler", fallbackPeriod: .seconds(1)) }

    override func start(_ runtime: DaemonRuntime) throws {
        let catalog = try ProfileCatalog.load(configuration: runtime.configuration, binaryDirectory: BinaryLocation.directory)
        planner = DispatchPlanner(db: runtime.db, policy: runtime.configuration.dispatchPolicy, catalog: catalog)
        runtime.log.info("profiles: \(catalog.profiles.map(\.name).joined(separator: ", ")) (from \(catalog.source))")
        try super.start(runtime)
    }

    override func sweep() throws {
        // Nothing queued or waiting for an agent: nothing to decide, and no write lock to take.
        if try TaskStore(db: runtime.db).count(in: [.queued, .claimed]) == 0 {
            lastClaims = 0
            lastBlockers = []
            return
        }
        let report = try planner.claimReady(source: "scheduler")
        for claim in report.claimed {
            runtime.log.info("claimed task for profile \(claim.profile)", [
                "TASK_ID": String(claim.task.id), "ATTEMPT": String(claim.task.attempt + 1), "LANE": claim.task.lane,
                "PROFILE": claim.profile,
            ])
        }
        for agent in report.spawnedAgents {
            runtime.log.info("autospawn: asked the supervisor for an agent", ["AGENT_ID": String(agent)])
        }
        if !report.claimed.isEmpty { runtime.wakeSender.nudge("poller") }
        if !report.spawnedAgents.isEmpty { runtime.wakeSender.nudge("supervisor") }
        lastClaims = report.claimed.count
        let blockers = report.assessment.map { $0.isIdle ? [] : $0.blockers } ?? []
        if blockers != lastBlockers {
            runtime.log.notice(blockers.isEmpty ? "dispatch unblocked" : "dispatch held: \(blockers.joined(separator: ", "))")
            lastBlockers = blockers
        }
        // Wake exactly when the next retry is due instead of waiting for the fallback period.
        if let next = report.assessment?.nextNotBefore {
            let delay = Duration.microseconds(max(0, next - WallClock.now()))
            if let timer = notBeforeTimer { runtime.loop.cancel(timer) }
            notBeforeTimer = runtime.loop.schedule(after: delay) { [unowned self] in
                self.notBeforeTimer = nil
                self.runSweep()
            }
        }
        // A full batch may have left more claimable work behind.
        if report.claimed.count >= 200 { runtime.loop.schedule(after: .zero) { [unowned self] in self.runSweep() } }
    }

    override var statusText: String {
        lastBlockers.isEmpty ? "dispatching (last sweep claimed \(lastClaims))" : "held: \(lastBlockers.joined(separator: ", "))"
    }
}

