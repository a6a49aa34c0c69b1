import CSQLite

/// A prepared statement. Owns its sqlite3_stmt and finalizes it in deinit. Not Sendable: it lives
/// on the thread of its connection.
public final class Statement {
    let handle: OpaquePointer
    public let sql: String
    private unowned let database: Database
    /// Calls and time spent, counted only when the connection profiles statements.
    private(set) var calls = 0
    private(set) var nanoseconds: UInt64 = 0

    init(database: Database, sql: String) throws {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(database.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw database.error(code: rc, sql: sql)
        }
        self.handle = stmt
        self.sql = sql
        self.database = database
    }

    deinit { sqlite3_finalize(handle) }

    /// Clears old bindings and binds `values` to ?1...?N.
    func bind(_ values: [SQLBindable]) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard expected == values.count else {
            throw SQLiteError(extendedCode: SQLITE_RANGE,
                              message: "statement takes \(expected) arguments, \(values.count) given", sql: sql)
        }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value.sqlValue {
            case .null: rc = sqlite3_bind_null(handle, index)
            case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
            case .real(let v): rc = sqlite3_bind_double(handle, index, v)
            // Explicit byte length: agent output may hold NUL bytes, and -1 would stop at the first.
            case .text(let v): rc = sqlite3_bind_text(handle, index, v, Int32(v.utf8.count), csqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes { raw in
                    sqlite3_bind_blob(handle, index, raw.baseAddress, Int32(raw.count), csqlite_transient())
                }
            }
            guard rc == SQLITE_OK else { throw database.error(code: rc, sql: sql) }
        }
    }

    /// Steps once. Returns true when a row is available.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = database.error(code: rc, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    func reset() { sqlite3_reset(handle) }

    func record(since started: MonotonicInstant) {
        calls += 1
        nanoseconds += MonotonicInstant.now().nanoseconds - started.nanoseconds
    }
}

@available(*, unavailable)
extension Statement: Sendable {}

/// A row of a result set, valid only inside the closure that receives it.
public struct Row {
    let statement: OpaquePointer

    public var columnCount: Int { Int(sqlite3_column_count(statement)) }

    public func isNull(_ index: Int) -> Bool {
        sqlite3_column_type(statement, Int32(index)) == SQLITE_NULL
    }
    public func int64(_ index: Int) -> Int64 { sqlite3_column_int64(statement, Int32(index)) }
    public func int(_ index: Int) -> Int { Int(sqlite3_column_int64(statement, Int32(index))) }
    public func bool(_ index: Int) -> Bool { sqlite3_column_int64(statement, Int32(index)) != 0 }
    public func double(_ index: Int) -> Double { sqlite3_column_double(statement, Int32(index)) }
    public func optionalInt64(_ index: Int) -> Int64? { isNull(index) ? nil : int64(index) }
    public func optionalInt(_ index: Int) -> Int? { isNull(index) ? nil : int(index) }
    public func optionalDouble(_ index: Int) -> Double? { isNull(index) ? nil : double(index) }
    public func string(_ index: Int) -> String {
        guard let text = sqlite3_column_text(statement, Int32(index)) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, Int32(index)))
        return text.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
    }
    public func optionalString(_ index: Int) -> String? { isNull(index) ? nil : string(index) }
    public func blob(_ index: Int) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, Int32(index)))
        guard count > 0, let raw = sqlite3_column_blob(statement, Int32(index)) else { return [] }
        return Array(UnsafeRawBufferPointer(start: raw, count: count))
    }
}
