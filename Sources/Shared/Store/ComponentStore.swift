/// A daemon's row in `components`: what the gate shows about gate, scheduler, poller and supervisor.
public struct ComponentRecord: Sendable, Equatable {
    public var name: String
    public var pid: Int32?
    public var incarnation: Int64
    public var state: String
    public var supervisedBy: String?
    public var startedAt: Microseconds?
    public var readyAt: Microseconds?
    public var lastWatchdogAt: Microseconds?
    public var restarts: Int
    public var statusText: String
    public var updatedAt: Microseconds
}

public struct ComponentStore {
    public let db: Database
    public init(db: Database) { self.db = db }

    /// Records a (re)start of `name` by process `pid`; returns the new incarnation number.
    public func registerStart(name: String, pid: Int32, supervisedBy: String?,
                              at now: Microseconds = WallClock.now()) throws -> Int64 {
        try db.write {
            try db.run("""
                INSERT INTO components (name, pid, incarnation, state, supervised_by, started_at, updated_at)
                VALUES (?1, ?2, 1, 'starting', ?3, ?4, ?4)
                ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, incarnation = incarnation + 1, state = 'starting',
                    supervised_by = excluded.supervised_by, started_at = excluded.started_at, ready_at = NULL,
                    status_text = '', updated_at = excluded.updated_at
                """, name, pid, supervisedBy, now)
            return try db.scalarInt("SELECT incarnation FROM components WHERE name = ?1", name) ?? 1
        }
    }

    /// Updates state and status text, fenced on the incarnation so a late write from an old
    /// process cannot overwrite its successor's row.
    public func update(name: String, incarnation: Int64, state: String? = nil, statusText: String? = nil,
                       watchdog: Bool = false, at now: Microseconds = WallClock.now()) throws {
        try db.run("""
            UPDATE components SET state = coalesce(?3, state), status_text = coalesce(?4, status_text),
                ready_at = CASE WHEN ?3 = 'ready' AND ready_at IS NULL THEN ?5 ELSE ready_at END,
                last_watchdog_at = CASE WHEN ?6 THEN ?5 ELSE last_watchdog_at END, updated_at = ?5
            WHERE name = ?1 AND incarnation = ?2
            """, name, incarnation, state, statusText, now, watchdog)
    }

    /// Marks a component failed (given up on by its supervisor), creating the row if the component
    /// never got far enough to register itself.
    public func markFailed(name: String, reason: String, at now: Microseconds = WallClock.now()) throws {
        try db.run("""
            INSERT INTO components (name, state, status_text, updated_at) VALUES (?1, 'failed', ?2, ?3)
            ON CONFLICT (name) DO UPDATE SET state = 'failed', status_text = excluded.status_text, updated_at = excluded.updated_at
            """, name, "failed: \(reason)", now)
    }

    public func recordRestart(name: String, at now: Microseconds = WallClock.now()) throws {
        try db.run("""
            INSERT INTO components (name, restarts, updated_at) VALUES (?1, 1, ?2)
            ON CONFLICT (name) DO UPDATE SET restarts = restarts + 1, updated_at = excluded.updated_at
            """, name, now)
    }

    public func all() throws -> [ComponentRecord] {
        try db.query("""
            SELECT name, pid, incarnation, state, supervised_by, started_at, ready_at, last_watchdog_at, restarts,
                status_text, updated_at FROM components ORDER BY name
            """) { row in
            ComponentRecord(name: row.string(0), pid: row.optionalInt64(1).map { Int32($0) }, incarnation: row.int64(2),
                            state: row.string(3), supervisedBy: row.optionalString(4), startedAt: row.optionalInt64(5),
                            readyAt: row.optionalInt64(6), lastWatchdogAt: row.optionalInt64(7), restarts: row.int(8),
                            statusText: row.string(9), updatedAt: row.int64(10))
        }
    }
}
