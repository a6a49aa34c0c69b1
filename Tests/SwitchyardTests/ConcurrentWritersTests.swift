import Foundation
import Shared
import XCTest

/// Several OS processes writing one WAL database at once, as gate, scheduler, poller and
/// supervisor do in production.
final class ConcurrentWritersTests: XCTestCase {
    func testFourProcesses_writingForSeconds_surfaceNoBusyAndLoseNothing() throws {
        let sandbox = Sandbox()
        _ = try makeDatabase(sandbox)
        let workers = 4
        var children: [ChildProcess] = []
        for worker in 1...workers {
            children.append(try sandbox.start("switchyard-testkit", ["write-load", sandbox.databasePath, String(worker), "3"],
                                              logName: "writer\(worker)"))
        }
        var reported = 0
        for (index, child) in children.enumerated() {
            let worker = index + 1
            XCTAssertEqual(child.wait(timeout: .seconds(60)), .exited(0), sandbox.read("writer\(worker).err"))
            let line = sandbox.read("writer\(worker).out").trimmingCharacters(in: .whitespacesAndNewlines)
            let result = try JSON.parse(line)
            XCTAssertEqual(result["busy_errors"]?.int64Value, 0, "no SQLITE_BUSY may surface")
            XCTAssertEqual(result["other_errors"]?.int64Value, 0)
            let written = Int(result["written"]?.int64Value ?? 0)
            XCTAssertGreaterThan(written, 10, "worker \(worker) made progress")
            reported += written
        }
        let db = try Database(path: sandbox.databasePath)
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM tasks"), Int64(reported), "every reported write is there")
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM tasks WHERE status = 'succeeded'"), Int64(reported))
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM task_events"), Int64(reported * 4),
                       "submitted, claimed, dispatched, succeeded for every task")
        for worker in 1...workers {
            XCTAssertGreaterThan(try db.scalarInt("SELECT count(*) FROM tasks WHERE lane = ?1", "w\(worker)") ?? 0, 0)
        }
    }
}
