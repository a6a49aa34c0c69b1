import Foundation

/// One forward-only schema step. Applied in its own BEGIN IMMEDIATE transaction together with the
/// `PRAGMA user_version` bump, so a crash leaves the database at version N or N+1, never between.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
}

public struct SchemaError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

public enum Migrator {
    /// Every migration, in order. Never edit a released one: add a new step.
    public static let migrations: [Migration] = [Schema.v1, Schema.v2]

    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    public static func currentVersion(of db: Database) throws -> Int {
        Int(try db.scalarInt("PRAGMA user_version") ?? 0)
    }

    /// Refuses a database written by a newer Switchyard: running old code over a newer schema
    /// would silently misread or corrupt it.
    public static func checkNotNewer(_ db: Database) throws {
        let version = try currentVersion(of: db)
        if version > latestVersion {
            throw SchemaError(message: "database \(db.path) has schema version \(version), but this build of Switchyard understands at most \(latestVersion); upgrade Switchyard (never downgrade over a migrated database)")
        }
    }

    /// Applies every missing migration up to `target` (default: all). Safe to call from several
    /// processes at once: the version is re-read under the write lock.
    /// Returns the migrations this call applied.
    @discardableResult
    public static func migrate(_ db: Database, upTo target: Int? = nil) throws -> [Migration] {
        try checkNotNewer(db)
        let goal = target ?? latestVersion
        var applied: [Migration] = []
        for migration in migrations where migration.version <= goal {
            let didApply = try db.write { () -> Bool in
                let version = try currentVersion(of: db)
                guard version < migration.version else { return false }
                guard version == migration.version - 1 else {
                    throw SchemaError(message: "database \(db.path) is at schema version \(version), cannot apply migration \(migration.version) (\(migration.name))")
                }
                try db.execute(migration.sql)
                try db.execute("PRAGMA user_version=\(migration.version)")
                return true
            }
            if didApply { applied.append(migration) }
        }
        return applied
    }
}
