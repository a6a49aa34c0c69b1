import Foundation
import Shared
import XCTest

final class TaskStateMachineTests: XCTestCase {
    private var sandbox: Sandbox!
    private var db: Database!
    private var store: TaskStore!

    override func setUpWithError() throws {
        sandbox = Sandbox()
        db = try makeDatabase(sandbox)
        store = TaskStore(db: db, retryPolicy: RetryPolicy(baseDelay: .seconds(10), maxDelay: .seconds(300), jitter: 0))
    }

    override func tearDown() {
        store = nil
        db = nil
        sandbox = nil
    }

    /// Puts a task straight into `status` at attempt 1 (test set-up only; daemons never do this).
    private func task(in status: TaskStatus, maxAttempts: Int = 3) throws -> Int64 {
        let id = try store.submit(IntakeRequest(prompt: "p", maxAttempts: maxAttempts)).task.id
        try db.run("UPDATE tasks SET status = ?1, attempt = ?2 WHERE id = ?3", status.rawValue, status == .queued ? 0 : 1, id)
        return id
    }

    private static let changes: [TaskChange] = [
        .claim(profile: "demo"), .dispatch(agentID: 1), .start, .succeed(TaskResult(summary: "ok")),
        .fail(error: "boom", retryable: true, result: nil), .requestReview(reason: "question", result: nil),
        .cancel(reason: "operator"), .retry(reason: "operator"), .accept(reason: "looks right"),
    ]

    func testEveryTransition_appliesExactlyWhenTheStateMachineAllowsIt() throws {
        for from in TaskStatus.allCases {
            for change in Self.changes {
                let id = try task(in: from)
                let attempt = from == .queued ? 0 : 1
                let target = change.target
                var allowed = TaskStateMachine.allows(from: from, to: target)
                if case .accept = change { allowed = from == .needsReview }
                let outcome = try store.apply(change, to: id, attempt: attempt, source: "test")
                let after = try XCTUnwrap(store.task(id: id))
                if allowed {
                    XCTAssertTrue(outcome.didApply, "\(from) -> \(change) should apply, got \(outcome)")
                    XCTAssertNotEqual(after.status, .failed, "failed never persists: the retry policy resolves it")
                } else {
                    XCTAssertEqual(outcome, .forbidden(from: from, to: target), "\(from) -> \(change)")
                    XCTAssertEqual(after.status, from, "a forbidden change leaves the task as it was")
                }
            }
        }
    }

    func testClaim_incrementsAttemptAndRecordsProfile() throws {
        let id = try store.submit(IntakeRequest(prompt: "p")).task.id
        XCTAssertEqual(try store.apply(.claim(profile: "demo"), to: id, attempt: 0, source: "scheduler"),
                       .applied(status: .claimed, attempt: 1))
        let task = try XCTUnwrap(store.task(id: id))
        XCTAssertEqual(task.attempt, 1)
        XCTAssertEqual(task.profile, "demo")
        XCTAssertNotNil(task.claimedAt)
        XCTAssertEqual(try store.events(task: id).map(\.kind), ["submitted", "claimed"])
    }

    func testClaim_withStaleAttempt_doesNotDoubleClaim() throws {
        let id = try store.submit(IntakeRequest(prompt: "p")).task.id
        XCTAssertTrue(try store.apply(.claim(profile: "a"), to: id, attempt: 0, source: "s1").didApply)
        // A second scheduler that read the task before the first claim committed.
        XCTAssertEqual(try store.apply(.claim(profile: "b"), to: id, attempt: 0, source: "s2"),
                       .staleAttempt(current: 1, status: .claimed))
        XCTAssertEqual(try store.task(id: id)?.profile, "a")
    }

    /// Runs attempt 1 to a retryable failure and claims attempt 2.
    private func taskOnSecondAttempt() throws -> Int64 {
        let id = try store.submit(IntakeRequest(prompt: "p")).task.id
        try store.apply(.claim(profile: "demo"), to: id, attempt: 0, source: "test")
        try store.apply(.dispatch(agentID: 1), to: id, attempt: 1, source: "test")
        try store.apply(.fail(error: "agent lost", retryable: true, result: nil), to: id, attempt: 1, source: "test")
        try store.apply(.claim(profile: "demo"), to: id, attempt: 1, source: "test")
        try store.apply(.dispatch(agentID: 2), to: id, attempt: 2, source: "test")
        return id
    }

    func testApply_withWrongKnownState_decidesAgainFromTheDatabase() throws {
        let id = try taskOnSecondAttempt()  // dispatched, attempt 2
        // A caller that believes the task is still claimed at attempt 2: nothing is written on
        // that belief; the change is decided from what the database holds.
        let wrong = TaskStore.KnownState(status: .claimed, attempt: 2, maxAttempts: 3)
        XCTAssertEqual(try store.apply(.start, to: id, attempt: 2, source: "poller", known: wrong),
                       .applied(status: .running, attempt: 2))
        // A belief that the attempt is current when it is not: the stale report is recorded once.
        let stale = TaskStore.KnownState(status: .running, attempt: 1, maxAttempts: 3)
        XCTAssertEqual(try store.apply(.succeed(TaskResult(summary: "late")), to: id, attempt: 1, source: "poller", known: stale),
                       .staleAttempt(current: 2, status: .running))
        XCTAssertEqual(try store.events(task: id).filter { $0.kind == "stale_report_ignored" }.count, 1)
        // A belief that allows nothing the database allows: forbidden, nothing written.
        let finished = TaskStore.KnownState(status: .running, attempt: 2, maxAttempts: 3)
        try store.apply(.succeed(TaskResult(summary: "done")), to: id, attempt: 2, source: "poller", known: finished)
        XCTAssertEqual(try store.apply(.start, to: id, attempt: 2, source: "poller", known: finished),
                       .forbidden(from: .succeeded, to: .running))
        XCTAssertEqual(try store.task(id: id)?.status, .succeeded)
    }

    func testFoldedStart_aDispatchedTaskThatFinishesRecordsItsStartInTheSameWrite() throws {
        for finishing in [TaskChange.succeed(TaskResult(summary: "ok")), .fail(error: "boom", retryable: true, result: nil),
                          .requestReview(reason: "question", result: nil)] {
            let id = try task(in: .dispatched)
            let start = TaskStore.FoldedStart(at: 1_000, lastEventAt: 1_500)
            XCTAssertTrue(try store.apply(finishing, to: id, attempt: 1, source: "poller", at: 2_000, foldedStart: start).didApply)
            let after = try XCTUnwrap(store.task(id: id))
            XCTAssertEqual(after.startedAt, 1_000, "\(finishing)")
            XCTAssertEqual(after.lastEventAt, 1_500)
            let events = try store.events(task: id).filter { $0.kind != "submitted" }
            XCTAssertEqual(events.first?.kind, "started", "the start comes first, as if written on its own")
            XCTAssertEqual(events.first?.at, 1_000)
            XCTAssertEqual(events.dropFirst().first?.kind, finishing.eventKindForTests)
            XCTAssertEqual(events.filter { $0.kind == "started" }.count, 1)
        }
    }

    func testFoldedStart_isIgnoredUnlessTheTaskIsStillDispatched() throws {
        // Already running: its start was written; a second one would be a lie.
        let running = try task(in: .running)
        try store.apply(.succeed(TaskResult(summary: "ok")), to: running, attempt: 1, source: "poller",
                        foldedStart: TaskStore.FoldedStart(at: 1_000, lastEventAt: 1_000))
        XCTAssertFalse(try store.events(task: running).contains { $0.kind == "started" })
        XCTAssertNil(try store.task(id: running)?.startedAt)
        // A caller that wrongly believes the task is dispatched: decided again from the database,
        // and the start is neither recorded twice nor on a task that was never dispatched.
        let claimed = try task(in: .claimed)
        let wrong = TaskStore.KnownState(status: .dispatched, attempt: 1, maxAttempts: 3)
        XCTAssertEqual(try store.apply(.succeed(TaskResult(summary: "ok")), to: claimed, attempt: 1, source: "poller",
                                       known: wrong, foldedStart: TaskStore.FoldedStart(at: 1_000, lastEventAt: 1_000)),
                       .forbidden(from: .claimed, to: .succeeded))
        XCTAssertFalse(try store.events(task: claimed).contains { $0.kind == "started" })
    }

    func testFencing_staleAttemptCannotComplete() throws {
        let id = try taskOnSecondAttempt()
        let outcome = try store.apply(.succeed(TaskResult(summary: "late", costUSD: 5)), to: id, attempt: 1, source: "poller")
        XCTAssertEqual(outcome, .staleAttempt(current: 2, status: .dispatched))
        let task = try XCTUnwrap(store.task(id: id))
        XCTAssertEqual(task.status, .dispatched)
        XCTAssertEqual(task.costUSD, 0, "a stale report changes nothing, not even cost")
        XCTAssertNil(task.resultSummary)
        let stale = try store.events(task: id).filter { $0.kind == "stale_report_ignored" }
        XCTAssertEqual(stale.count, 1, "the stale report is kept as evidence")
        XCTAssertEqual(stale.first?.attempt, 1)
    }

    func testFencing_staleAttemptCannotFail() throws {
        let id = try taskOnSecondAttempt()
        XCTAssertEqual(try store.apply(.fail(error: "late", retryable: true, result: nil), to: id, attempt: 1, source: "poller"),
                       .staleAttempt(current: 2, status: .dispatched))
        XCTAssertEqual(try store.task(id: id)?.status, .dispatched)
    }

    func testFencing_staleAttemptCannotCancel() throws {
        let id = try taskOnSecondAttempt()
        XCTAssertEqual(try store.apply(.cancel(reason: "late"), to: id, attempt: 1, source: "poller"),
                       .staleAttempt(current: 2, status: .dispatched))
        XCTAssertEqual(try store.task(id: id)?.status, .dispatched)
    }

    func testFencing_unknownTask_isNotFound() throws {
        XCTAssertEqual(try store.apply(.start, to: 999, attempt: 1, source: "poller"), .notFound)
    }

    func testFail_retryable_requeuesWithBackoff() throws {
        let id = try store.submit(IntakeRequest(prompt: "p")).task.id
        try store.apply(.claim(profile: "demo"), to: id, attempt: 0, source: "test")
        let now: Microseconds = 1_000_000_000
        let outcome = try store.apply(.fail(error: "exit 1", retryable: true, result: TaskResult(costUSD: 0.5)),
                                      to: id, attempt: 1, source: "test", at: now)
        XCTAssertEqual(outcome, .applied(status: .queued, attempt: 1))
        let task = try XCTUnwrap(store.task(id: id))
        XCTAssertEqual(task.status, .queued)
        XCTAssertEqual(task.notBefore, now + 10_000_000, "first retry waits the base delay (10 s)")
        XCTAssertEqual(task.costUSD, 0.5, "a failed attempt's cost is kept")
        XCTAssertEqual(task.error, "exit 1")
        XCTAssertEqual(try store.events(task: id).map(\.kind), ["submitted", "claimed", "failed", "retry_scheduled"])
    }

    func testFail_whenAttemptsExhausted_goesDead() throws {
        let id = try store.submit(IntakeRequest(prompt: "p", maxAttempts: 2)).task.id
        for attempt in 1...2 {
            try store.apply(.claim(profile: "demo"), to: id, attempt: attempt - 1, source: "test")
            try store.apply(.fail(error: "boom", retryable: true, result: nil), to: id, attempt: attempt, source: "test")
        }
        XCTAssertEqual(try store.task(id: id)?.status, .dead)
        XCTAssertEqual(try store.events(task: id).last?.kind, "dead")
    }

    func testFail_notRetryable_goesToReview() throws {
        let id = try store.submit(IntakeRequest(prompt: "p")).task.id
        try store.apply(.claim(profile: "demo"), to: id, attempt: 0, source: "test")
        XCTAssertEqual(try store.apply(.fail(error: "bad prompt", retryable: false, result: nil), to: id, attempt: 1, source: "test"),
                       .applied(status: .needsReview, attempt: 1))
    }

    func testOperatorRetry_ofDeadTask_grantsOneMoreAttempt() throws {
        let id = try store.submit(IntakeRequest(prompt: "p", maxAttempts: 1)).task.id
        try store.apply(.claim(profile: "demo"), to: id, attempt: 0, source: "test")
        try store.apply(.fail(error: "boom", retryable: true, result: nil), to: id, attempt: 1, source: "test")
        XCTAssertEqual(try store.task(id: id)?.status, .dead)
        XCTAssertTrue(try store.apply(.retry(reason: "fixed the agent"), to: id, attempt: 1, source: "operator").didApply)
        let task = try XCTUnwrap(store.task(id: id))
        XCTAssertEqual(task.status, .queued)
        XCTAssertEqual(task.maxAttempts, 2)
        XCTAssertEqual(task.notBefore, 0)
    }

    func testRequestCancel_ofRunningTask_flagsIt_andOfQueuedTask_cancelsIt() throws {
        let queued = try store.submit(IntakeRequest(prompt: "q")).task.id
        XCTAssertEqual(try store.requestCancel(id: queued, reason: "no longer needed", source: "operator"),
                       .applied(status: .canceled, attempt: 0))
        let running = try store.submit(IntakeRequest(prompt: "r")).task.id
        try store.apply(.claim(profile: "demo"), to: running, attempt: 0, source: "test")
        try store.apply(.dispatch(agentID: 1), to: running, attempt: 1, source: "test")
        try store.apply(.start, to: running, attempt: 1, source: "test")
        XCTAssertEqual(try store.requestCancel(id: running, reason: "stop", source: "operator"),
                       .applied(status: .running, attempt: 1))
        let task = try XCTUnwrap(store.task(id: running))
        XCTAssertTrue(task.cancelRequested)
        XCTAssertEqual(task.status, .running, "the poller stops the agent first, then cancels the attempt")
    }

    func testRetryPolicy_backoffDoublesAndCaps() {
        let policy = RetryPolicy(baseDelay: .seconds(10), maxDelay: .seconds(300), jitter: 0)
        let delays = (1...7).map { policy.delay(afterAttempt: $0, random: 0.5) }
        XCTAssertEqual(delays, [.seconds(10), .seconds(20), .seconds(40), .seconds(80), .seconds(160), .seconds(300), .seconds(300)])
        let jittered = RetryPolicy(jitter: 0.2)
        XCTAssertEqual(jittered.delay(afterAttempt: 1, random: 0), .seconds(8))
        XCTAssertEqual(jittered.delay(afterAttempt: 1, random: 0.999_999).secondsDouble, 12, accuracy: 0.001)
        XCTAssertEqual(policy.decide(attempt: 3, maxAttempts: 3, retryable: true), .dead)
        XCTAssertEqual(policy.decide(attempt: 1, maxAttempts: 3, retryable: false), .review)
    }
}

final class DispatchPlannerTests: XCTestCase {
    private func plannerWithOpenQueue(_ sandbox: Sandbox) throws -> (Database, DispatchPlanner) {
        let db = try makeDatabase(sandbox)
        try ControlStore(db: db).update(paused: false, maintenanceMode: false, autoDispatch: true, by: "test", reason: "test", action: "resume")
        let profile = AgentProfile(name: "rpc", argv: ["/bin/true"], mode: .rpc, maxInstances: 4)
        return (db, DispatchPlanner(db: db, policy: DispatchPolicy(), catalog: ProfileCatalog(profiles: [profile], source: "test")))
    }

    func testClaim_checksThePlanAgainstWhatChangedSinceTheSnapshot() throws {
        let sandbox = Sandbox()
        let (db, planner) = try plannerWithOpenQueue(sandbox)
        let store = TaskStore(db: db)
        let planned = try store.submit(IntakeRequest(prompt: "x", lane: "a")).task.id
        let plan = try planner.planClaims()
        XCTAssertEqual(plan.candidates.map(\.task.id), [planned])
        // Between the snapshot and the write lock, another claimer takes lane a (limit 1).
        let other = try store.submit(IntakeRequest(prompt: "y", lane: "a", priority: 9)).task.id
        XCTAssertTrue(try store.apply(.claim(profile: "rpc"), to: other, attempt: 0, source: "other scheduler").didApply)
        XCTAssertTrue(try planner.claim(plan, source: "test").claimed.isEmpty, "lane a is busy now: the plan must not overfill it")
        XCTAssertEqual(try store.task(id: planned)?.status, .queued)

        // A pause between the plan and the claim stops it, and the report says so.
        try store.apply(.dispatch(agentID: 1), to: other, attempt: 1, source: "test")
        try store.apply(.succeed(TaskResult(summary: "ok")), to: other, attempt: 1, source: "test")
        let second = try planner.planClaims()
        XCTAssertEqual(second.candidates.map(\.task.id), [planned])
        try ControlStore(db: db).update(paused: true, by: "operator", reason: "maintenance window", action: "pause")
        let report = try planner.claim(second, source: "test")
        XCTAssertTrue(report.claimed.isEmpty)
        XCTAssertEqual(report.assessment?.globalBlockers, [.queuePaused])
        XCTAssertEqual(try store.task(id: planned)?.status, .queued)
    }

    func testClaim_aTaskCanceledSinceThePlan_isNotClaimedNorParked() throws {
        let sandbox = Sandbox()
        let (db, planner) = try plannerWithOpenQueue(sandbox)
        let store = TaskStore(db: db)
        let canceled = try store.submit(IntakeRequest(prompt: "x", lane: "a")).task.id
        let unservable = try store.submit(IntakeRequest(prompt: "y", lane: "b", capabilities: ["gpu"])).task.id
        let plan = try planner.planClaims()
        XCTAssertEqual(plan.candidates.map(\.task.id), [canceled])
        XCTAssertEqual(plan.assessment.held.map(\.task.id), [unservable])
        _ = try store.requestCancel(id: canceled, reason: "operator", source: "test")
        _ = try store.requestCancel(id: unservable, reason: "operator", source: "test")
        XCTAssertTrue(try planner.claim(plan, source: "test").claimed.isEmpty)
        XCTAssertEqual(try store.task(id: canceled)?.status, .canceled)
        XCTAssertFalse(try store.events(task: unservable).contains { $0.kind == "parked" },
                       "a task that left the queue since the plan is not parked")
        XCTAssertNil(try store.task(id: unservable)?.blockedReason)
    }

    func testClaimReady_aBusyLaneAtTheHeadOfTheQueue_doesNotHideWorkBehindIt() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        try ControlStore(db: db).update(paused: false, maintenanceMode: false, autoDispatch: true, by: "test", reason: "test", action: "resume")
        let profile = AgentProfile(name: "rpc", argv: ["/bin/true"], mode: .rpc, maxInstances: 4)
        let planner = DispatchPlanner(db: db, policy: DispatchPolicy(), catalog: ProfileCatalog(profiles: [profile], source: "test"))
        let store = TaskStore(db: db)
        let first = try store.submit(IntakeRequest(prompt: "a", lane: "a")).task.id
        XCTAssertEqual(try planner.claimReady(source: "test").claimed.map(\.task.id), [first])
        // Lane a (limit 1) is busy; a long run of its tasks, more urgent, sits before lane b's.
        try db.write {
            for i in 0..<300 { _ = try store.submit(IntakeRequest(prompt: "a\(i)", lane: "a", priority: 5)) }
        }
        let other = try store.submit(IntakeRequest(prompt: "b", lane: "b")).task.id
        XCTAssertEqual(try planner.claimReady(source: "test").claimed.map(\.task.id), [other])
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM tasks WHERE lane = 'a' AND status = 'claimed'"), 1,
                       "lane a keeps its limit of one active task")
    }
}

extension TaskChange {
    /// The event kind a change writes (the test's own copy, so a renamed kind fails here).
    var eventKindForTests: String {
        switch self {
        case .succeed: return "succeeded"
        case .fail: return "failed"
        case .requestReview: return "needs_review"
        default: return "?"
        }
    }
}
