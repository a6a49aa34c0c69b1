/// Limits the dispatch decision respects.
public struct DispatchPolicy: Sendable, Equatable {
    /// Active tasks per lane when lane_limits has no row for it.
    public var defaultLaneLimit = 1
    /// Active tasks across all lanes.
    public var maxActive = 8
    /// Spend per UTC day across all tasks; nil for none.
    public var dailyBudgetUSD: Double?
    /// A profile serves a task when |required ∩ capabilities| / |required| reaches this.
    public var minCapabilityScore = 1.0
    /// A claimed task that no agent took within this long is failed (and retried).
    public var claimTimeout: Duration = .seconds(120)
    public init() {}
}

/// Why dispatch is held. The raw values are stable strings (Enoch's dispatch_blockers).
public enum DispatchBlocker: String, Sendable, CaseIterable {
    case queuePaused = "queue_paused"
    case maintenanceMode = "maintenance_mode"
    case autoDispatchOff = "auto_dispatch_off"
    case liveDispatchDisabled = "live_dispatch_disabled"
    case noQueuedTasks = "no_queued_tasks"
    case laneBusy = "lane_busy"
    case globalConcurrencyLimit = "global_concurrency_limit"
    case dailyBudgetReached = "daily_budget_reached"
    case taskBudgetReached = "task_budget_reached"
    case noMatchingProfile = "no_matching_profile"
    case profileAtCapacity = "profile_at_capacity"
}

public struct DispatchCandidate: Sendable, Equatable {
    public var task: TaskRecord
    public var profile: String
    public var score: Double
}

/// What the planner found: what blocks all dispatch, the task that would be claimed next, and
/// why the tasks before it are held.
public struct DispatchAssessment: Sendable {
    public var flags: ControlFlags
    public var globalBlockers: [DispatchBlocker]
    public var candidate: DispatchCandidate?
    public var held: [(task: TaskRecord, blockers: [DispatchBlocker])]
    public var activeCount: Int
    public var spentTodayUSD: Double
    /// The earliest not_before in the future among queued tasks (when to look again).
    public var nextNotBefore: Microseconds?

    public var dispatchSafe: Bool { globalBlockers.isEmpty && candidate != nil }

    /// Nothing is queued and nothing blocks: idle, not held (no_queued_tasks is then the only blocker).
    public var isIdle: Bool { globalBlockers.isEmpty && candidate == nil && held.isEmpty }

    /// All blockers, as the status API reports them: global ones, then the reasons the head of
    /// the queue is held when nothing can be claimed.
    public var blockers: [String] {
        var list = globalBlockers.map(\.rawValue)
        if candidate == nil {
            if held.isEmpty && globalBlockers.isEmpty { list.append(DispatchBlocker.noQueuedTasks.rawValue) }
            for blocker in held.first?.blockers ?? [] where !list.contains(blocker.rawValue) { list.append(blocker.rawValue) }
        }
        return list
    }
}

/// The one dispatch decision, used by the scheduler (automatic mode) and by the gate's
/// dispatch-next (operator mode, dry run or live).
public struct DispatchPlanner {
    public let db: Database
    public let policy: DispatchPolicy
    public let catalog: ProfileCatalog

    public init(db: Database, policy: DispatchPolicy, catalog: ProfileCatalog) {
        self.db = db
        self.policy = policy
        self.catalog = catalog
    }

    /// How many tasks of a profile may be active at once. An rpc profile claims one task ahead per
    /// agent: the poller hands it to an agent in the same sweep that sees the agent's previous
    /// result, instead of waiting for a scheduler round trip (claim-ahead keeps warm agents busy).
    public static func claimCapacity(_ profile: AgentProfile) -> Int {
        profile.mode == .rpc ? profile.maxInstances * 2 : profile.maxInstances
    }

    /// Capability score of `profile` for a task that requires `required`.
    public static func score(required: [String], capabilities: [String]) -> Double {
        guard !required.isEmpty else { return 1 }
        let have = Set(capabilities)
        return Double(Set(required).filter(have.contains).count) / Double(Set(required).count)
    }

    /// The best-fit profile: highest score at or above the policy's minimum; ties go to the
    /// profile with fewer active tasks, then to the name.
    public func bestProfile(for task: TaskRecord, activeByProfile: [String: Int]) -> (AgentProfile, Double)? {
        let profiles = task.profile.map { name in catalog.profiles.filter { $0.name == name } } ?? catalog.profiles
        let scored = profiles.map { ($0, Self.score(required: task.capabilities, capabilities: $0.capabilities)) }
            .filter { $0.1 >= policy.minCapabilityScore }
        return scored.min { a, b in
            if a.1 != b.1 { return a.1 > b.1 }
            let activeA = activeByProfile[a.0.name, default: 0], activeB = activeByProfile[b.0.name, default: 0]
            if activeA != activeB { return activeA < activeB }
            return a.0.name < b.0.name
        }
    }

    /// Assesses the queue without changing anything.
    /// `operatorMode`: automatic dispatch being off does not block (dispatch-next).
    public func assess(now: Microseconds = WallClock.now(), operatorMode: Bool = false, limit: Int = 200) throws -> DispatchAssessment {
        try db.read { try assessInTransaction(now: now, operatorMode: operatorMode, limit: limit, stopAtFirst: true).assessment }
    }

    private struct Working {
        var assessment: DispatchAssessment
        var claimable: [DispatchCandidate]
    }

    /// What limits dispatch at one moment: the switches, what is active where, the limits and
    /// the day's spend. Claims counted with `take` as they are made.
    private struct Occupancy {
        var flags: ControlFlags
        var globalBlockers: [DispatchBlocker]
        var activeByLane: [String: Int] = [:]
        var activeByProfile: [String: Int] = [:]
        var active = 0
        var laneLimits: [String: Int]
        var spent: Double

        mutating func take(lane: String, profile: String) {
            activeByLane[lane, default: 0] += 1
            activeByProfile[profile, default: 0] += 1
            active += 1
        }
    }

    private func occupancy(now: Microseconds, operatorMode: Bool) throws -> Occupancy {
        let flags = try ControlStore(db: db).flags()
        var global: [DispatchBlocker] = []
        if flags.paused { global.append(.queuePaused) }
        if flags.maintenanceMode { global.append(.maintenanceMode) }
        if !flags.autoDispatch && !operatorMode { global.append(.autoDispatchOff) }
        let laneLimits = Dictionary(try db.query("SELECT lane, max_active FROM lane_limits", map: { ($0.string(0), $0.int(1)) }),
                                    uniquingKeysWith: { $1 })
        var occupancy = Occupancy(flags: flags, globalBlockers: [], laneLimits: laneLimits, spent: try spentToday(now: now))
        // Counted here rather than with GROUP BY: at most max_active rows, and no sorter to build.
        for (lane, profile) in try db.query("""
            SELECT lane, coalesce(profile, '') FROM tasks WHERE status IN (\(TaskStatus.activeSQLList))
            """, map: { ($0.string(0), $0.string(1)) }) {
            occupancy.take(lane: lane, profile: profile)
        }
        // A oneshot agent may still be exiting after its task finished: its slot is not free yet.
        if catalog.profiles.contains(where: { $0.mode == .oneshot }) {
            for (profile, live) in try db.query("""
                SELECT profile, count(*) FROM agents WHERE mode = 'oneshot' AND state IN ('starting', 'idle', 'busy', 'stopping') GROUP BY profile
                """, map: { ($0.string(0), $0.int(1)) }) {
                occupancy.activeByProfile[profile] = max(occupancy.activeByProfile[profile, default: 0], live)
            }
        }
        if occupancy.active >= policy.maxActive { global.append(.globalConcurrencyLimit) }
        if let budget = policy.dailyBudgetUSD, occupancy.spent >= budget { global.append(.dailyBudgetReached) }
        occupancy.globalBlockers = global
        return occupancy
    }

    /// Why `task` cannot be claimed now for `pick` (its best profile, if any); empty: it can.
    private func blockers(for task: TaskRecord, pick: (AgentProfile, Double)?, in occupancy: Occupancy) -> [DispatchBlocker] {
        var blockers: [DispatchBlocker] = []
        if let budget = task.budgetUSD, task.costUSD >= budget { blockers.append(.taskBudgetReached) }
        if pick == nil { blockers.append(.noMatchingProfile) }
        if occupancy.activeByLane[task.lane, default: 0] >= occupancy.laneLimits[task.lane] ?? policy.defaultLaneLimit {
            blockers.append(.laneBusy)
        }
        if let (profile, _) = pick, occupancy.activeByProfile[profile.name, default: 0] >= Self.claimCapacity(profile) {
            blockers.append(.profileAtCapacity)
        }
        if occupancy.active >= policy.maxActive { blockers.append(.globalConcurrencyLimit) }
        return blockers
    }

    private func assessInTransaction(now: Microseconds, operatorMode: Bool, limit: Int, stopAtFirst: Bool) throws -> Working {
        var occupancy = try occupancy(now: now, operatorMode: operatorMode)
        let active = occupancy.active

        // INDEXED BY: the walk must follow tasks_ready (stops after `limit`); without statistics
        // the planner may prefer sorting every queued row (https://www.sqlite.org/lang_indexedby.html).
        let queued: [TaskRecord]
        if stopAtFirst {
            // Assessment (status, dispatch-next): the head of the queue, held tasks included, so
            // the answer can say why each is held.
            queued = try db.query("""
                SELECT \(TaskRecord.columns) FROM tasks INDEXED BY tasks_ready WHERE status = 'queued' AND not_before <= ?1
                ORDER BY priority DESC, id LIMIT ?2
                """, now, limit, map: TaskRecord.decode)
        } else {
            // Claiming: only as many candidates as free slots could take, with some room for held
            // ones, and none from lanes already at their limit (skipped by SQLite without being
            // decoded, so a busy lane at the head of the queue cannot hide the work behind it).
            let profileRoom = catalog.profiles.reduce(0) {
                $0 + max(0, Self.claimCapacity($1) - occupancy.activeByProfile[$1.name, default: 0])
            }
            let free = max(0, min(policy.maxActive - active, profileRoom))
            var busyLanes: [JSON] = []
            for (lane, count) in occupancy.activeByLane where count >= occupancy.laneLimits[lane] ?? policy.defaultLaneLimit {
                busyLanes.append(.string(lane))
            }
            queued = try db.query("""
                SELECT \(TaskRecord.columns) FROM tasks INDEXED BY tasks_ready WHERE status = 'queued' AND not_before <= ?1
                    AND lane NOT IN (SELECT value FROM json_each(?3))
                ORDER BY priority DESC, id LIMIT ?2
                """, now, min(limit, free == 0 ? 1 : free * 2 + 8), JSON.array(busyLanes).serialized(), map: TaskRecord.decode)
        }
        let nextNotBefore = try db.scalarInt("""
            SELECT min(not_before) FROM tasks INDEXED BY tasks_retry_due WHERE status = 'queued' AND not_before > 0 AND not_before > ?1
            """, now)

        var held: [(task: TaskRecord, blockers: [DispatchBlocker])] = []
        var claimable: [DispatchCandidate] = []
        var first: DispatchCandidate?
        for task in queued {
            let pick = bestProfile(for: task, activeByProfile: occupancy.activeByProfile)
            let blockers = blockers(for: task, pick: pick, in: occupancy)
            guard blockers.isEmpty, let (profile, score) = pick else {
                held.append((task, blockers))
                continue
            }
            let candidate = DispatchCandidate(task: task, profile: profile.name, score: score)
            if first == nil { first = candidate }
            if stopAtFirst { break }
            claimable.append(candidate)
            // Count the claim as if made, so later candidates see the lane and profile taken.
            occupancy.take(lane: task.lane, profile: profile.name)
        }
        let assessment = DispatchAssessment(flags: occupancy.flags, globalBlockers: occupancy.globalBlockers, candidate: first,
                                            held: held, activeCount: active, spentTodayUSD: occupancy.spent,
                                            nextNotBefore: nextNotBefore)
        return Working(assessment: assessment, claimable: claimable)
    }

    /// Cost recorded since the start of the current UTC day (daily_spend, kept by a trigger).
    public func spentToday(now: Microseconds) throws -> Double {
        let day = String(Timestamp.iso8601(now).prefix(10))
        return try db.queryOne("SELECT cost_usd FROM daily_spend WHERE day = ?1", day) { $0.double(0) } ?? 0
    }

    public struct ClaimReport: Sendable {
        public var claimed: [DispatchCandidate] = []
        public var spawnedAgents: [Int64] = []
        public var assessment: DispatchAssessment?
    }

    /// What automatic mode would claim, planned on a read snapshot (see `claimReady`).
    public struct ClaimPlan: Sendable {
        public let assessment: DispatchAssessment
        public let candidates: [DispatchCandidate]
    }

    /// Automatic mode: claims every task that may run now, parks what no profile can serve,
    /// and asks the supervisor for rpc agents where none is idle (autospawn). One write
    /// transaction, after a plan made outside it (`planClaims`, then `claim`).
    public func claimReady(now: Microseconds = WallClock.now(), source: String, limit: Int = 200) throws -> ClaimReport {
        try claim(try planClaims(now: now, limit: limit), now: now, source: source)
    }

    /// The walk of the queue, the expensive part of a sweep, on a read snapshot: outside the
    /// write lock, so the other components are not held up by it.
    public func planClaims(now: Microseconds = WallClock.now(), limit: Int = 200) throws -> ClaimPlan {
        let working = try db.read { try assessInTransaction(now: now, operatorMode: false, limit: limit, stopAtFirst: false) }
        return ClaimPlan(assessment: working.assessment, candidates: working.claimable)
    }

    /// Claims what `plan` found, under the write lock. What may have changed since the snapshot
    /// is read again (the switches, what is active where, the limits, the spend) and every
    /// candidate is checked once more against it; a candidate that itself moved meanwhile is
    /// refused by the fenced claim. Tasks queued after the snapshot wait for the next sweep.
    public func claim(_ plan: ClaimPlan, now: Microseconds = WallClock.now(), source: String) throws -> ClaimReport {
        var report = ClaimReport(assessment: plan.assessment)
        guard plan.assessment.globalBlockers.isEmpty else { return report }
        return try db.write {
            var current = try occupancy(now: now, operatorMode: false)
            guard current.globalBlockers.isEmpty else {
                report.assessment?.globalBlockers = current.globalBlockers
                report.assessment?.flags = current.flags
                return report
            }
            let tasks = TaskStore(db: db)
            for candidate in plan.candidates {
                guard let profile = catalog[candidate.profile],
                      blockers(for: candidate.task, pick: (profile, candidate.score), in: current).isEmpty else { continue }
                if try tasks.apply(.claim(profile: candidate.profile), to: candidate.task.id, attempt: candidate.task.attempt,
                                   source: source, at: now, known: candidate.task.knownState).didApply {
                    report.claimed.append(candidate)
                    current.take(lane: candidate.task.lane, profile: candidate.profile)
                }
            }
            try recordHeld(plan.assessment.held, now: now, source: source)
            report.spawnedAgents = try autospawn(now: now, source: source)
            return report
        }
    }

    /// Operator mode (dispatch-next): claims the assessed candidate, if still claimable.
    public func claimNext(now: Microseconds = WallClock.now(), source: String) throws -> (DispatchAssessment, TransitionOutcome?) {
        try db.write {
            let assessment = try assessInTransaction(now: now, operatorMode: true, limit: 200, stopAtFirst: true).assessment
            guard assessment.globalBlockers.isEmpty, let candidate = assessment.candidate else { return (assessment, nil) }
            let outcome = try TaskStore(db: db).apply(.claim(profile: candidate.profile), to: candidate.task.id,
                                                      attempt: candidate.task.attempt, source: source, at: now)
            _ = try autospawn(now: now, source: source)
            return (assessment, outcome)
        }
    }

    /// Parks held tasks: blocked_reason says why (shown by the API); a task event marks each change.
    private func recordHeld(_ held: [(task: TaskRecord, blockers: [DispatchBlocker])], now: Microseconds, source: String) throws {
        for (task, blockers) in held {
            // Only reasons that belong to the task itself; lane and concurrency come and go.
            let own = blockers.filter { $0 == .noMatchingProfile || $0 == .taskBudgetReached }.map(\.rawValue).joined(separator: ",")
            let reason: String? = own.isEmpty ? nil : own
            guard reason != task.blockedReason,
                  try db.run("UPDATE tasks SET blocked_reason = ?2 WHERE id = ?1 AND attempt = ?3 AND status = 'queued'",
                             task.id, reason, task.attempt) == 1
            else { continue }  // unchanged, or no longer queued since the plan was made
            if let reason {
                try TaskStore(db: db).appendEvent(task: task.id, attempt: task.attempt, kind: "parked", source: source, at: now,
                                                  payload: ["reason": .string(reason)])
            }
        }
    }

    /// For each rpc profile: claimed tasks waiting for an agent beyond the idle and starting
    /// agents, up to max_instances, get new agents.
    private func autospawn(now: Microseconds, source: String) throws -> [Int64] {
        var spawned: [Int64] = []
        let agents = AgentStore(db: db)
        for profile in catalog.profiles where profile.mode == .rpc {
            let waiting = try db.scalarInt("SELECT count(*) FROM tasks WHERE status = 'claimed' AND profile = ?1", profile.name) ?? 0
            guard waiting > 0 else { continue }
            let counts = try db.queryOne("""
                SELECT count(*), coalesce(sum(state IN ('starting', 'idle') AND task_id IS NULL), 0)
                FROM agents WHERE profile = ?1 AND state IN ('starting', 'idle', 'busy', 'stopping')
                """, profile.name) { ($0.int(0), $0.int(1)) } ?? (0, 0)
            let need = min(Int(waiting) - counts.1, profile.maxInstances - counts.0)
            guard need > 0 else { continue }
            for _ in 0..<need {
                let id = try agents.createAgent(profile: profile, at: now)
                try agents.enqueue(.spawn, agentID: id, payload: [:], requestedBy: source, at: now)
                spawned.append(id)
            }
        }
        return spawned
    }
}
