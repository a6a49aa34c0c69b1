import Foundation
import Glibc
import Shared
import XCTest

/// The supervisor in all-in-one mode, with the real component executables.
final class ComponentSupervisionTests: XCTestCase {
    private func componentRow(_ db: Database, _ name: String) throws -> (pid: Int32, incarnation: Int64, state: String, restarts: Int)? {
        try db.queryOne("SELECT pid, incarnation, state, restarts FROM components WHERE name = ?1", name) {
            (Int32($0.int64(0)), $0.int64(1), $0.string(2), $0.int(3))
        }
    }

    private func startSupervisor(_ sandbox: Sandbox, _ extra: [String: String] = [:], arguments: [String] = []) throws -> (ChildProcess, Database) {
        let supervisor = try sandbox.start("switchyard-supervisor", arguments, environment: sandbox.environment(extra))
        var db: Database?
        XCTAssertTrue(waitUntil(.seconds(20)) {
            if db == nil, FileManager.default.fileExists(atPath: sandbox.databasePath) { db = try? Database(path: sandbox.databasePath) }
            return (try? db?.scalarInt("SELECT count(*) FROM components WHERE state = 'ready'")) == 4
        }, "all components ready: \(sandbox.read("switchyard-supervisor.err"))")
        return (supervisor, try XCTUnwrap(db))
    }

    private func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        // A zombie is not alive: look at the state letter in /proc/PID/stat.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    func testKill9OfEachComponent_restartsItWithANewIncarnation() throws {
        let sandbox = Sandbox()
        let (supervisor, db) = try startSupervisor(sandbox)
        for name in ["gate", "scheduler", "poller"] {
            let before = try XCTUnwrap(componentRow(db, name))
            XCTAssertEqual(kill(before.pid, SIGKILL), 0)
            XCTAssertTrue(try waitUntil(.seconds(10)) {
                guard let row = try self.componentRow(db, name) else { return false }
                return row.incarnation == before.incarnation + 1 && row.state == "ready"
            }, "\(name) restarted: \(sandbox.read("switchyard-supervisor.err"))")
            let after = try XCTUnwrap(componentRow(db, name))
            XCTAssertNotEqual(after.pid, before.pid)
            XCTAssertEqual(after.restarts, before.restarts + 1)
            XCTAssertTrue(isAlive(after.pid))
        }
        XCTAssertTrue(supervisor.signal(SIGTERM))
        XCTAssertEqual(supervisor.wait(timeout: .seconds(30)), .exited(0))
    }

    func testSIGSTOPOfAComponent_isKilledByTheWatchdogAndRestarted() throws {
        let sandbox = Sandbox()
        let (supervisor, db) = try startSupervisor(sandbox, ["SWITCHYARD_COMPONENT_WATCHDOG_MS": "600"])
        let before = try XCTUnwrap(componentRow(db, "scheduler"))
        XCTAssertEqual(kill(before.pid, SIGSTOP), 0)
        XCTAssertTrue(try waitUntil(.seconds(15)) {
            (try self.componentRow(db, "scheduler")).map { $0.incarnation > before.incarnation && $0.state == "ready" } ?? false
        }, sandbox.read("switchyard-supervisor.err"))
        XCTAssertTrue(waitUntil(.seconds(5)) { !self.isAlive(before.pid) }, "the stopped process is gone, not left behind")
        XCTAssertTrue(sandbox.read("switchyard-supervisor.err").contains("watchdog timeout"))
        supervisor.signal(SIGTERM)
        XCTAssertEqual(supervisor.wait(timeout: .seconds(30)), .exited(0))
    }

    func testComponentThatExitsAtOnce_backsOffThenHitsTheStartLimit() throws {
        let sandbox = Sandbox()
        // A stand-in poller that records each start and dies at once.
        let bin = sandbox.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for name in ["gate", "scheduler"] {
            try FileManager.default.createSymbolicLink(atPath: bin + "/switchyard-\(name)", withDestinationPath: TestBinaries.path("switchyard-\(name)"))
        }
        let starts = sandbox.path + "/starts"
        try "#!/bin/sh\ndate +%s%N >> \(starts)\nexit 3\n".write(toFile: bin + "/switchyard-poller", atomically: true, encoding: .utf8)
        chmod(bin + "/switchyard-poller", 0o755)
        let supervisor = try sandbox.start("switchyard-supervisor", environment: sandbox.environment([
            "SWITCHYARD_BIN_DIR": bin, "SWITCHYARD_RESTART_DELAY_MS": "100", "SWITCHYARD_START_LIMIT_BURST": "4",
        ]))
        var db: Database?
        XCTAssertTrue(waitUntil(.seconds(30)) {
            if db == nil, FileManager.default.fileExists(atPath: sandbox.databasePath) { db = try? Database(path: sandbox.databasePath) }
            return (try? db?.scalarString("SELECT state FROM components WHERE name = 'poller'")) == "failed"
        }, sandbox.read("switchyard-supervisor.err"))
        let times = sandbox.read("starts").split(separator: "\n").compactMap { Int64($0) }
        XCTAssertEqual(times.count, 5, "first start plus 4 restarts, then the start limit holds")
        let gaps = zip(times.dropFirst(), times).map { Double($0 - $1) / 1e6 }  // ms
        // Restarts: at once, then 100 ms, 200 ms, 400 ms (plus process start time).
        XCTAssertLessThan(gaps[0], 90, "first restart is immediate: \(gaps)")
        XCTAssertGreaterThanOrEqual(gaps[1], 95, "\(gaps)")
        XCTAssertGreaterThanOrEqual(gaps[2], 195, "\(gaps)")
        XCTAssertGreaterThanOrEqual(gaps[3], 395, "\(gaps)")
        XCTAssertTrue(sandbox.read("switchyard-supervisor.err").contains("poller failed"))
        // The other components are unaffected.
        XCTAssertEqual(try db?.scalarString("SELECT state FROM components WHERE name = 'scheduler'"), "ready")
        supervisor.signal(SIGTERM)
        XCTAssertEqual(supervisor.wait(timeout: .seconds(30)), .exited(0))
    }

    func testSIGTERM_stopsComponentsInReverseOrder_andLeavesNoProcess() throws {
        let sandbox = Sandbox()
        let (supervisor, db) = try startSupervisor(sandbox)
        let pids = try ["gate", "scheduler", "poller"].map { try XCTUnwrap(componentRow(db, $0)).pid }
        supervisor.signal(SIGTERM)
        XCTAssertEqual(supervisor.wait(timeout: .seconds(30)), .exited(0))
        for pid in pids { XCTAssertFalse(isAlive(pid), "component \(pid) is gone") }
        let log = sandbox.read("switchyard-supervisor.err")
        let order = ["stopping poller", "stopping scheduler", "stopping gate"].map { log.range(of: $0)?.lowerBound }
        XCTAssertFalse(order.contains(nil), log)
        XCTAssertTrue(order[0]! < order[1]! && order[1]! < order[2]!, "reverse start order")
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM components WHERE state = 'stopped'"), 4)
    }

    func testStoppedComponentOfAKilledSupervisor_isKilledByTheNextOne() throws {
        let sandbox = Sandbox()
        let (supervisor, db) = try startSupervisor(sandbox)
        let frozen = try XCTUnwrap(componentRow(db, "scheduler")).pid
        // A stopped component ignores its death signal; had it frozen inside a write transaction,
        // it would hold the database's write lock for as long as it lives.
        XCTAssertEqual(kill(frozen, SIGSTOP), 0)
        XCTAssertEqual(kill(supervisor.pid, SIGKILL), 0)
        _ = supervisor.wait(timeout: .seconds(10))
        XCTAssertTrue(isAlive(frozen), "a stopped process cannot act on its death signal")
        let next = try sandbox.start("switchyard-supervisor", logName: "supervisor2")
        XCTAssertTrue(waitUntil(.seconds(20)) { !self.isAlive(frozen) }, "the leftover is killed: \(sandbox.read("supervisor2.err"))")
        XCTAssertTrue(try waitUntil(.seconds(20)) {
            (try self.componentRow(db, "scheduler")).map { $0.state == "ready" && $0.pid != frozen } ?? false
        })
        XCTAssertTrue(sandbox.read("supervisor2.err").contains("left over by an earlier supervisor"))
        next.signal(SIGTERM)
        XCTAssertEqual(next.wait(timeout: .seconds(30)), .exited(0))
    }

    func testComponentsOption_selectsASubset() throws {
        let sandbox = Sandbox()
        let supervisor = try sandbox.start("switchyard-supervisor", ["--components", "scheduler"])
        var db: Database?
        XCTAssertTrue(waitUntil(.seconds(20)) {
            if db == nil, FileManager.default.fileExists(atPath: sandbox.databasePath) { db = try? Database(path: sandbox.databasePath) }
            return (try? db?.scalarString("SELECT state FROM components WHERE name = 'scheduler'")) == "ready"
        })
        XCTAssertNil(try db?.scalarString("SELECT state FROM components WHERE name = 'gate'"))
        supervisor.signal(SIGTERM)
        XCTAssertEqual(supervisor.wait(timeout: .seconds(30)), .exited(0))
        let bad = try sandbox.start("switchyard-supervisor", ["--components", "gate,cron"], logName: "bad")
        XCTAssertEqual(bad.wait(timeout: .seconds(20)), .exited(78))
        XCTAssertTrue(sandbox.read("bad.err").contains("unknown component 'cron'"))
    }
}
