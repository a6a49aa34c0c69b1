import Foundation
import Shared
import XCTest

/// Random sequences of changes, including ones from stale attempts, against the real store:
/// whatever happens, the task only ever takes edges of the state machine, a stale attempt never
/// changes it, and the attempt number only grows through claims.
final class StateMachinePropertyTests: XCTestCase {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state
        }
    }

    func testRandomChangeSequences_fencingAndEdgesAlwaysHold() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox, options: DatabaseOptions(synchronous: .normal))
        let store = TaskStore(db: db, retryPolicy: RetryPolicy(baseDelay: .zero, maxDelay: .zero, jitter: 0))
        var random = Generator(state: 0x5151)
        let changes: [(Int) -> TaskChange] = [
            { _ in .claim(profile: "p") }, { _ in .dispatch(agentID: 1) }, { _ in .start },
            { _ in .succeed(TaskResult(summary: "ok", costUSD: 0.01)) },
            { _ in .fail(error: "e", retryable: true, result: nil) }, { _ in .fail(error: "e", retryable: false, result: nil) },
            { _ in .requestReview(reason: "q", result: nil) }, { _ in .cancel(reason: "c") }, { _ in .retry(reason: "r") },
            { _ in .accept(reason: "a") },
        ]
        var applied = 0, refusedStale = 0, forbidden = 0
        for round in 0..<150 {
            let id = try store.submit(IntakeRequest(prompt: "round \(round)", maxAttempts: Int.random(in: 1...4, using: &random))).task.id
            for _ in 0..<40 {
                let before = try XCTUnwrap(store.task(id: id))
                // Mostly the current attempt; sometimes an older or newer one (late or confused reporters).
                let skew = Int.random(in: 0..<10, using: &random) < 7 ? 0 : Int.random(in: -2...1, using: &random)
                let attempt = max(0, before.attempt + skew)
                let change = changes[Int.random(in: 0..<changes.count, using: &random)](attempt)
                let outcome = try store.apply(change, to: id, attempt: attempt, source: "property")
                let after = try XCTUnwrap(store.task(id: id))
                switch outcome {
                case .applied:
                    applied += 1
                    XCTAssertEqual(attempt, before.attempt, "only the current attempt changes a task")
                    XCTAssertNotEqual(after.status, .failed, "failed never persists")
                    if case .claim = change {
                        XCTAssertEqual(after.attempt, before.attempt + 1)
                    } else {
                        XCTAssertEqual(after.attempt, before.attempt, "only a claim moves the attempt")
                    }
                    XCTAssertTrue(TaskStateMachine.allows(from: before.status, to: change.target) , "\(before.status) -> \(change)")
                case .staleAttempt(let current, let status):
                    refusedStale += 1
                    XCTAssertNotEqual(attempt, before.attempt)
                    XCTAssertEqual(current, before.attempt)
                    XCTAssertEqual(status, before.status)
                    XCTAssertEqual(after.status, before.status, "a stale report changes nothing")
                    XCTAssertEqual(after.costUSD, before.costUSD)
                case .forbidden:
                    forbidden += 1
                    XCTAssertEqual(after.status, before.status)
                    XCTAssertEqual(after.attempt, before.attempt)
                case .notFound:
                    XCTFail("task vanished")
                }
                XCTAssertLessThanOrEqual(after.attempt, max(after.maxAttempts, before.attempt + 1))
            }
        }
        // The counters kept by triggers agree with the table after all of it.
        let counted = Dictionary(uniqueKeysWithValues: try db.query("SELECT status, n FROM task_counts WHERE n > 0") { ($0.string(0), $0.int(1)) })
        let actual = Dictionary(uniqueKeysWithValues: try db.query("SELECT status, count(*) FROM tasks GROUP BY status") { ($0.string(0), $0.int(1)) })
        XCTAssertEqual(counted, actual)
        XCTAssertGreaterThan(applied, 500)
        XCTAssertGreaterThan(refusedStale, 100)
        XCTAssertGreaterThan(forbidden, 500)
    }
}
