import Foundation
import Shared
import XCTest

final class IntakeTests: XCTestCase {
    func testIdempotency_samePayload_returnsTheSameTask() throws {
        let sandbox = Sandbox()
        let store = TaskStore(db: try makeDatabase(sandbox))
        let request = IntakeRequest(prompt: "write docs", lane: "docs", idempotencyKey: "req-1")
        guard case .created(let first) = try store.submit(request) else { return XCTFail("first submit creates") }
        guard case .replayed(let second) = try store.submit(request) else { return XCTFail("replay is recognised") }
        XCTAssertEqual(first.id, second.id)
        XCTAssertEqual(try store.db.scalarInt("SELECT count(*) FROM tasks"), 1)
    }

    func testIdempotency_differentPayload_isAConflict() throws {
        let sandbox = Sandbox()
        let store = TaskStore(db: try makeDatabase(sandbox))
        let first = try store.submit(IntakeRequest(prompt: "write docs", idempotencyKey: "req-1")).task
        XCTAssertThrowsError(try store.submit(IntakeRequest(prompt: "delete docs", idempotencyKey: "req-1"))) { error in
            XCTAssertEqual(error as? IntakeError, .conflict(idempotencyKey: "req-1", existingTaskID: first.id))
        }
        XCTAssertEqual(try store.db.scalarInt("SELECT count(*) FROM tasks"), 1)
    }

    func testValidation_namesTheField() throws {
        let cases: [(IntakeRequest, String)] = [
            (IntakeRequest(prompt: "  "), "prompt"),
            (IntakeRequest(prompt: "p", lane: "no spaces"), "lane"),
            (IntakeRequest(prompt: "p", priority: 5000), "priority"),
            (IntakeRequest(prompt: "p", capabilities: ["ok", "bad/slash"]), "capabilities"),
            (IntakeRequest(prompt: "p", maxAttempts: 0), "max_attempts"),
            (IntakeRequest(prompt: "p", budgetUSD: -1), "budget_usd"),
            (IntakeRequest(prompt: "p", requestedBy: ""), "requested_by"),
            (IntakeRequest(prompt: "p", idempotencyKey: "has space"), "idempotency_key"),
            (IntakeRequest(prompt: String(repeating: "x", count: IntakeRequest.maxPromptBytes + 1)), "prompt"),
        ]
        for (request, field) in cases {
            XCTAssertThrowsError(try request.validate(), field) { error in
                guard case .invalid(let named, _) = error as? IntakeError else { return XCTFail("\(error)") }
                XCTAssertEqual(named, field)
            }
        }
    }

    func testFromJSON_refusesUnknownAndMistypedFields() throws {
        func field(_ body: String) -> String? {
            do {
                _ = try IntakeRequest(json: try JSON.parse(body))
                return nil
            } catch let error as IntakeError {
                if case .invalid(let field, _) = error { return field }
                return "?"
            } catch {
                return "parse"
            }
        }
        XCTAssertEqual(field(#"{"prompt":"p","priorty":3}"#), "priorty")
        XCTAssertEqual(field(#"{"prompt":7}"#), "prompt")
        XCTAssertEqual(field(#"{"title":"t"}"#), "prompt")
        XCTAssertEqual(field(#"{"prompt":"p","capabilities":"code"}"#), "capabilities")
        XCTAssertEqual(field(#"{"prompt":"p","not_before":"tomorrow"}"#), "not_before")
        XCTAssertEqual(field(#"[1,2]"#), "body")
        XCTAssertNil(field(#"{"prompt":"p","lane":"docs","priority":2,"capabilities":["code"],"not_before":"2030-01-02T03:04:05Z","budget_usd":1.5}"#))
        let request = try IntakeRequest(json: try JSON.parse(#"{"prompt":"first line\nsecond","not_before":"2030-01-02T03:04:05.5+01:00"}"#))
        XCTAssertEqual(request.title, "first line")
        XCTAssertEqual(request.notBefore, Timestamp.parseISO8601("2030-01-02T02:04:05.500Z"))
    }
}
