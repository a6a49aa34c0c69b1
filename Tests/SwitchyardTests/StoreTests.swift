import Foundation
import Shared
import XCTest

final class StoreTests: XCTestCase {
    func testOpen_configuresWALFullSyncForeignKeys() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        XCTAssertEqual(try db.scalarString("PRAGMA journal_mode"), "wal")
        XCTAssertEqual(try db.scalarInt("PRAGMA synchronous"), 2, "FULL is the default")
        XCTAssertEqual(try db.scalarInt("PRAGMA foreign_keys"), 1)
        let normal = try Database(path: sandbox.databasePath, options: DatabaseOptions(synchronous: .normal))
        XCTAssertEqual(try normal.scalarInt("PRAGMA synchronous"), 1)
    }

    func testStatementProfile_countsOnlyWhenEnabled() throws {
        let sandbox = Sandbox()
        let plain = try makeDatabase(sandbox)
        _ = try plain.scalarInt("SELECT count(*) FROM tasks")
        XCTAssertTrue(plain.statementProfile.isEmpty, "profiling is off by default")

        let profiled = try Database(path: sandbox.databasePath, options: DatabaseOptions(profileStatements: true))
        for _ in 0..<3 { _ = try profiled.scalarInt("SELECT count(*) FROM tasks") }
        try profiled.write { try profiled.run("UPDATE control SET reason = ?1 WHERE id = 1", "profiled") }
        let profile = profiled.statementProfile
        XCTAssertEqual(profile.first { $0.sql == "SELECT count(*) FROM tasks" }?.calls, 3)
        XCTAssertEqual(profile.first { $0.sql.hasPrefix("UPDATE control") }?.calls, 1)
        XCTAssertTrue(profile.allSatisfy { $0.nanoseconds > 0 })
    }

    func testAgentHandOverAndRelease_areFencedOnTheTaskTheAgentHad() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        let agents = AgentStore(db: db)
        let id = try agents.createAgent(profile: AgentProfile(name: "rpc", argv: ["/bin/true"], mode: .rpc))
        try agents.setState(agentID: id, .busy, taskID: 1, attempt: 1)
        XCTAssertFalse(try agents.handOver(agentID: id, from: 1, attempt: 2, to: 5, attempt: 1), "another attempt: refused")
        XCTAssertTrue(try agents.handOver(agentID: id, from: 1, attempt: 1, to: 5, attempt: 1))
        XCTAssertFalse(try agents.release(agentID: id, from: 1, attempt: 1), "the agent has moved on to task 5")
        XCTAssertTrue(try agents.release(agentID: id, from: 5, attempt: 1))
        XCTAssertEqual(try db.scalarString("SELECT state FROM agents WHERE id = ?1", id), "idle")
        XCTAssertNil(try db.scalarInt("SELECT task_id FROM agents WHERE id = ?1", id))
        XCTAssertFalse(try agents.handOver(agentID: id, from: 5, attempt: 1, to: 6, attempt: 1), "an idle agent is not handed over")
    }

    func testPagesWritten_countsWhatCommitsWrote() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        let before = db.pagesWritten
        _ = try db.scalarInt("SELECT count(*) FROM tasks")
        XCTAssertEqual(db.pagesWritten, before, "a read writes nothing")
        try db.write { try db.run("UPDATE control SET reason = ?1 WHERE id = 1", "counted") }
        XCTAssertGreaterThan(db.pagesWritten, before)
    }

    func testMigrate_fromEmpty_reachesLatestAndIsIdempotent() throws {
        let sandbox = Sandbox()
        try FileManager.default.createDirectory(atPath: sandbox.path + "/state", withIntermediateDirectories: true)
        let db = try Database(path: sandbox.databasePath)
        XCTAssertEqual(try Migrator.currentVersion(of: db), 0)
        let applied = try Migrator.migrate(db)
        XCTAssertEqual(applied.map(\.version), Migrator.migrations.map(\.version))
        XCTAssertEqual(try Migrator.currentVersion(of: db), Migrator.latestVersion)
        XCTAssertEqual(try Migrator.migrate(db).count, 0, "a second run applies nothing")
        // A new database is safe: paused, in maintenance, no automatic or live dispatch.
        let flags = try ControlStore(db: db).flags()
        XCTAssertTrue(flags.paused)
        XCTAssertTrue(flags.maintenanceMode)
        XCTAssertFalse(flags.autoDispatch)
        XCTAssertFalse(flags.liveDispatchEnabled)
    }

    func testMigrate_fromEveryEarlierVersion_keepsData() throws {
        for start in 0..<Migrator.latestVersion {
            let sandbox = Sandbox()
            try FileManager.default.createDirectory(atPath: sandbox.path + "/state", withIntermediateDirectories: true)
            let db = try Database(path: sandbox.databasePath)
            try Migrator.migrate(db, upTo: start)
            XCTAssertEqual(try Migrator.currentVersion(of: db), start)
            if start >= 1 {
                try db.run("INSERT INTO tasks (title, prompt, created_at, updated_at, requested_by) VALUES ('t', 'p', 1, 1, 'x')")
            }
            try Migrator.migrate(db)
            XCTAssertEqual(try Migrator.currentVersion(of: db), Migrator.latestVersion, "from version \(start)")
            if start >= 1 { XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM tasks"), 1) }
        }
    }

    func testMigrate_refusesNewerDatabase() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        try db.execute("PRAGMA user_version=\(Migrator.latestVersion + 1)")
        XCTAssertThrowsError(try Migrator.migrate(db)) { error in
            XCTAssertTrue("\(error)".contains("understands at most \(Migrator.latestVersion)"), "\(error)")
        }
    }

    func testDaemon_refusesNewerDatabase_withClearMessageAndExit65() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        try db.execute("PRAGMA user_version=99")
        let child = try sandbox.start("switchyard-scheduler")
        XCTAssertEqual(child.wait(timeout: .seconds(20)), .exited(65))
        XCTAssertTrue(sandbox.read("switchyard-scheduler.err").contains("schema version 99"), sandbox.read("switchyard-scheduler.err"))
    }

    func testError_carriesCodeAndSQL_neverBoundValues() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        let secret = "sk-very-secret-value"
        do {
            // NOT NULL violation on title; the prompt argument holds the "secret".
            try db.run("INSERT INTO tasks (title, prompt, created_at, updated_at, requested_by) VALUES (NULL, ?1, 1, 1, 'x')", secret)
            XCTFail("insert should fail")
        } catch let error as SQLiteError {
            XCTAssertTrue(error.isConstraint)
            XCTAssertEqual(error.extendedCode, 1299, "SQLITE_CONSTRAINT_NOTNULL: extended codes are on")
            XCTAssertTrue(error.description.contains("INSERT INTO tasks"))
            XCTAssertFalse(error.description.contains(secret))
        }
    }

    func testWrite_rollsBackEverythingOnError() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        struct Boom: Error {}
        XCTAssertThrowsError(try db.write {
            try db.run("INSERT INTO tasks (title, prompt, created_at, updated_at, requested_by) VALUES ('t', 'p', 1, 1, 'x')")
            throw Boom()
        })
        XCTAssertEqual(try db.scalarInt("SELECT count(*) FROM tasks"), 0)
        XCTAssertFalse(db.isInTransaction)
    }

    func testTaskEvents_areAppendOnly() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        let store = TaskStore(db: db)
        let task = try store.submit(IntakeRequest(prompt: "hello")).task
        XCTAssertThrowsError(try db.run("UPDATE task_events SET kind = 'x' WHERE task_id = ?1", task.id))
        XCTAssertThrowsError(try db.run("DELETE FROM task_events WHERE task_id = ?1", task.id))
        XCTAssertEqual(try store.events(task: task.id).map(\.kind), ["submitted"])
    }

    func testStrictTables_refuseWrongTypes() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        XCTAssertThrowsError(try db.run("INSERT INTO tasks (title, prompt, priority, created_at, updated_at, requested_by) VALUES ('t', 'p', 'high', 1, 1, 'x')"))
    }

    func testBackup_copiesALiveDatabase() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        _ = try TaskStore(db: db).submit(IntakeRequest(prompt: "keep me"))
        try db.backup(to: sandbox.path + "/backup.db")
        let copy = try Database(path: sandbox.path + "/backup.db")
        XCTAssertEqual(try copy.scalarString("SELECT prompt FROM tasks"), "keep me")
        XCTAssertEqual(try Migrator.currentVersion(of: copy), Migrator.latestVersion)
    }
}

final class CountersTests: XCTestCase {
    func testTaskCountsAndDailySpend_followEveryChange() throws {
        let sandbox = Sandbox()
        let db = try makeDatabase(sandbox)
        let store = TaskStore(db: db)
        func counts() throws -> [String: Int] {
            Dictionary(uniqueKeysWithValues: try db.query("SELECT status, n FROM task_counts WHERE n != 0") { ($0.string(0), $0.int(1)) })
        }
        let a = try store.submit(IntakeRequest(prompt: "a")).task.id
        _ = try store.submit(IntakeRequest(prompt: "b")).task.id
        XCTAssertEqual(try counts(), ["queued": 2])
        try store.apply(.claim(profile: "p"), to: a, attempt: 0, source: "t")
        try store.apply(.dispatch(agentID: 1), to: a, attempt: 1, source: "t")
        try store.apply(.succeed(TaskResult(costUSD: 1.5)), to: a, attempt: 1, source: "t")
        XCTAssertEqual(try counts(), ["queued": 1, "succeeded": 1])
        let truth = Dictionary(uniqueKeysWithValues: try db.query("SELECT status, count(*) FROM tasks GROUP BY status") { ($0.string(0), $0.int(1)) })
        XCTAssertEqual(try counts(), truth)
        let planner = DispatchPlanner(db: db, policy: DispatchPolicy(), catalog: ProfileCatalog(profiles: [], source: ""))
        XCTAssertEqual(try planner.spentToday(now: WallClock.now()), 1.5, accuracy: 1e-9)
    }

    func testMigrationV2_turnsTheCumulativeHistogramIntoBuckets_andADispatchCountsOnce() throws {
        let sandbox = Sandbox()
        try FileManager.default.createDirectory(atPath: sandbox.path + "/state", withIntermediateDirectories: true)
        let db = try Database(path: sandbox.databasePath)
        try Migrator.migrate(db, upTo: 1)
        // Version 1 kept cumulative counts: 2 dispatches within 1 ms, 3 within 2 ms, 5 within 1 s.
        try db.run("UPDATE dispatch_latency SET count = CASE WHEN le < 0.002 THEN 2 WHEN le < 1 THEN 3 ELSE 5 END")
        try Migrator.migrate(db)
        let buckets = Dictionary(uniqueKeysWithValues: try db.query("SELECT le, count FROM dispatch_latency_buckets") { ($0.double(0), $0.int64(1)) })
        XCTAssertEqual(buckets[0.001], 2)
        XCTAssertEqual(buckets[0.002], 1)
        XCTAssertEqual(buckets[1], 2)
        XCTAssertEqual(buckets.values.reduce(0, +), 5, "the per-bucket counts add up to the old total")
        // A dispatch 3 ms after the task became due lands in the 5 ms bucket only.
        let store = TaskStore(db: db)
        let id = try store.submit(IntakeRequest(prompt: "p")).task.id
        let created = try XCTUnwrap(db.scalarInt("SELECT created_at FROM tasks WHERE id = ?1", id))
        try store.apply(.claim(profile: "p"), to: id, attempt: 0, source: "t", at: created + 1_000)
        try store.apply(.dispatch(agentID: 1), to: id, attempt: 1, source: "t", at: created + 3_000)
        XCTAssertEqual(try db.scalarInt("SELECT count FROM dispatch_latency_buckets WHERE le = 0.005"), 1)
        XCTAssertEqual(try db.scalarInt("SELECT sum(count) FROM dispatch_latency_buckets"), 6)
        XCTAssertEqual(try db.scalarInt("SELECT count FROM dispatch_latency_totals"), 1)
    }

    func testOpen_manyConnectionsOnAFreshDatabaseAtOnce_allGetWAL() throws {
        // Several daemons starting together on a new file all switch it to WAL; two connections
        // that each hold a shared lock while asking for the exclusive one get SQLITE_BUSY at once
        // (no busy handler). Seen in the benchmark as a supervisor that could not start.
        for round in 0..<10 {
            let sandbox = Sandbox()
            try FileManager.default.createDirectory(atPath: sandbox.path + "/state", withIntermediateDirectories: true)
            let path = sandbox.databasePath
            let failures = LockedBox<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do {
                    let db = try Database(path: path)
                    if try db.scalarString("PRAGMA journal_mode") != "wal" { failures.mutate { $0.append("not wal") } }
                } catch {
                    failures.mutate { $0.append("\(error)") }
                }
            }
            XCTAssertEqual(failures.value, [], "round \(round)")
        }
    }
}

