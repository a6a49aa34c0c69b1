/// The operator's switches (one row of `control`).
public struct ControlFlags: Sendable, Equatable {
    public var paused: Bool
    public var maintenanceMode: Bool
    public var autoDispatch: Bool
    public var liveDispatchEnabled: Bool
    public var updatedBy: String
    public var reason: String
    public var updatedAt: Microseconds

    public var json: JSON {
        ["paused": .bool(paused), "maintenance_mode": .bool(maintenanceMode), "auto_dispatch": .bool(autoDispatch),
         "live_dispatch_enabled": .bool(liveDispatchEnabled), "updated_by": .string(updatedBy),
         "reason": .string(reason), "updated_at": Timestamp.iso8601(updatedAt)]
    }
}

public struct ControlStore {
    public let db: Database
    public init(db: Database) { self.db = db }

    public func flags() throws -> ControlFlags {
        guard let flags = try db.queryOne("""
            SELECT paused, maintenance_mode, auto_dispatch, live_dispatch_enabled, updated_by, reason, updated_at
            FROM control WHERE id = 1
            """, map: { row in
                ControlFlags(paused: row.bool(0), maintenanceMode: row.bool(1), autoDispatch: row.bool(2),
                             liveDispatchEnabled: row.bool(3), updatedBy: row.string(4), reason: row.string(5),
                             updatedAt: row.int64(6))
            })
        else { throw SchemaError(message: "the control row is missing from \(db.path); the database is damaged") }
        return flags
    }

    /// Changes the given switches (nil leaves one as it is) and records who did it and why in
    /// the audit log, in one transaction.
    @discardableResult
    public func update(paused: Bool? = nil, maintenanceMode: Bool? = nil, autoDispatch: Bool? = nil,
                       liveDispatchEnabled: Bool? = nil, by actor: String, tokenIdentity: String? = nil,
                       reason: String, action: String, at now: Microseconds = WallClock.now()) throws -> ControlFlags {
        try db.write {
            let before = try flags()
            try db.run("""
                UPDATE control SET paused = coalesce(?1, paused), maintenance_mode = coalesce(?2, maintenance_mode),
                    auto_dispatch = coalesce(?3, auto_dispatch), live_dispatch_enabled = coalesce(?4, live_dispatch_enabled),
                    updated_by = ?5, reason = ?6, updated_at = ?7
                WHERE id = 1
                """, paused, maintenanceMode, autoDispatch, liveDispatchEnabled, actor, reason, now)
            let after = try flags()
            try AuditLog(db: db).record(actor: actor, tokenIdentity: tokenIdentity, action: action, at: now,
                                        detail: ["before": before.json, "after": after.json, "reason": .string(reason)])
            return after
        }
    }
}

/// Who did what, append-only.
public struct AuditLog {
    public let db: Database
    public init(db: Database) { self.db = db }

    @discardableResult
    public func record(actor: String, tokenIdentity: String? = nil, action: String, taskID: Int64? = nil,
                       at now: Microseconds = WallClock.now(), detail: [String: JSON] = [:]) throws -> Int64 {
        try db.run("""
            INSERT INTO audit_events (at, actor, token_identity, action, task_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            """, now, actor, tokenIdentity, action, taskID, JSON.object(detail).serialized())
        return db.lastInsertRowID
    }
}

/// Where a daemon resumes after a restart.
public struct CursorStore {
    public let db: Database
    public init(db: Database) { self.db = db }

    public func position(_ name: String) throws -> Int64 {
        try db.scalarInt("SELECT position FROM cursors WHERE name = ?1", name) ?? 0
    }

    /// Moves a cursor; call inside the transaction that consumed up to `position`, so the work and
    /// the cursor commit together (seeing an item twice is then impossible, not merely harmless).
    public func advance(_ name: String, to position: Int64, at now: Microseconds = WallClock.now()) throws {
        try db.run("""
            INSERT INTO cursors (name, position, updated_at) VALUES (?1, ?2, ?3)
            ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position), updated_at = excluded.updated_at
            """, name, position, now)
    }
}

/// Database-level facts: how and when it was created.
public struct MetaStore {
    public let db: Database
    public init(db: Database) { self.db = db }

    public func value(_ key: String) throws -> String? {
        try db.scalarString("SELECT value FROM meta WHERE key = ?1", key)
    }

    /// Sets `key` only if it has no value yet. Returns true when this call set it.
    @discardableResult
    public func setIfAbsent(_ key: String, _ value: String) throws -> Bool {
        try db.run("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING", key, value) == 1
    }
}
