import CSQLite
import Foundation

/// How durable a commit is. FULL is the default: an accepted task must survive power loss.
/// (https://www.sqlite.org/pragma.html#pragma_synchronous: in WAL mode NORMAL may lose the last
/// transactions on power failure, FULL syncs the WAL on every commit.)
public enum SynchronousMode: String, Sendable, CaseIterable {
    case full = "FULL"
    case normal = "NORMAL"
}

public struct DatabaseOptions: Sendable {
    public var synchronous: SynchronousMode = .full
    /// How long a writer waits for the write lock before SQLITE_BUSY surfaces.
    public var busyTimeoutMilliseconds: Int32 = 15_000
    public var readOnly = false
    /// Time every statement (SWITCHYARD_SQL_PROFILE): `statementProfile` reports the totals.
    public var profileStatements = false
    public init(synchronous: SynchronousMode = .full, busyTimeoutMilliseconds: Int32 = 15_000, readOnly: Bool = false,
                profileStatements: Bool = false) {
        self.synchronous = synchronous
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.readOnly = readOnly
        self.profileStatements = profileStatements
    }
}

/// Where a connection's write transactions spent their time: waiting for the write lock, running
/// the body, and committing (the WAL sync). Totals since the connection opened.
public struct WriteStatistics: Sendable, Equatable {
    public var transactions = 0
    public var lockWaitNanoseconds: UInt64 = 0
    public var bodyNanoseconds: UInt64 = 0
    public var commitNanoseconds: UInt64 = 0

    public init() {}

    /// Log fields, in milliseconds.
    public var fields: Logger.Fields {
        ["DB_WRITE_TRANSACTIONS": String(transactions),
         "DB_LOCK_WAIT_MS": String(lockWaitNanoseconds / 1_000_000),
         "DB_WRITE_BODY_MS": String(bodyNanoseconds / 1_000_000),
         "DB_COMMIT_MS": String(commitNanoseconds / 1_000_000)]
    }
}

/// One SQLite connection. Not Sendable: it is owned by one thread (each daemon's event loop).
public final class Database {
    let handle: OpaquePointer
    public let path: String
    private var statementCache: [String: Statement] = [:]
    private var transactionDepth = 0
    private var afterCommitActions: [() -> Void] = []
    public private(set) var writeStatistics = WriteStatistics()
    private let profiling: Bool

    /// Process-wide SQLite settings, applied once before the first connection opens.
    private static let configureSQLite: Void = {
        // SQLITE_MISUSE only if SQLite was already initialized; the statistics then stay on.
        _ = csqlite_disable_memory_statistics()
    }()

    public init(path: String, options: DatabaseOptions = DatabaseOptions()) throws {
        Database.configureSQLite
        var db: OpaquePointer?
        // NOMUTEX: each connection is confined to one thread, so SQLite's per-connection mutex is waste.
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= options.readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(extendedCode: rc, message: "\(message) (database \(path))")
        }
        self.handle = db
        self.path = path
        self.profiling = options.profileStatements
        sqlite3_extended_result_codes(db, 1)
        Database.installBusyHandler(db, timeoutMilliseconds: options.busyTimeoutMilliseconds)
        do {
            try configure(options)
        } catch {
            statementCache.removeAll()
            sqlite3_close_v2(db)
            throw error
        }
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// A busy handler with fine steps. sqlite3_busy_timeout() sleeps 1, 2, 5, 10 ... up to 100 ms
    /// between tries (sqlite3.c, sqliteDefaultBusyCallback): a writer that just missed the lock then
    /// sleeps far longer than a commit takes (about 70 us with synchronous=FULL here), which is
    /// unfair between processes and ruins dispatch latency. This one backs off from 20 us to 1 ms and
    /// gives up after about `timeoutMilliseconds` (https://www.sqlite.org/c3ref/busy_handler.html).
    static func installBusyHandler(_ db: OpaquePointer, timeoutMilliseconds: Int32) {
        let handler: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32 = { context, count in
            let limitMilliseconds = Int(bitPattern: context)
            // Sleeps are 20, 40, 80, ... 640 us, then 1 ms each: about `count` ms after 7 tries.
            let slept = count < 7 ? 0 : Int(count) - 6
            if slept > limitMilliseconds { return 0 }
            let micros = count < 6 ? UInt32(20) << UInt32(count) : 1000
            usleep(micros)
            return 1
        }
        sqlite3_busy_handler(db, handler, UnsafeMutableRawPointer(bitPattern: Int(timeoutMilliseconds)))
    }

    private func configure(_ options: DatabaseOptions) throws {
        if !options.readOnly {
            // journal_mode answers the mode actually in force; anything but "wal" (a read-only
            // medium, a VFS without shared memory) would break the readers-never-block design.
            let mode = try switchToWAL(deadline: MonotonicInstant.now().adding(.milliseconds(Int64(options.busyTimeoutMilliseconds))))
            guard mode?.lowercased() == "wal" else {
                throw SQLiteError(extendedCode: SQLITE_ERROR,
                                  message: "journal_mode=WAL was refused (got \(mode ?? "nothing")); Switchyard needs WAL",
                                  sql: "PRAGMA journal_mode=WAL")
            }
        }
        try execute("PRAGMA synchronous=\(options.synchronous.rawValue)")
        try execute("PRAGMA foreign_keys=ON")
        // Keep temporary b-trees in memory and the WAL from growing without bound between checkpoints.
        try execute("PRAGMA temp_store=MEMORY")
        try execute("PRAGMA journal_size_limit=67108864")
    }

    /// PRAGMA journal_mode=WAL on a new database needs every other connection out of the file, and
    /// SQLite answers SQLITE_BUSY at once instead of calling the busy handler: several daemons
    /// starting together on a fresh database race here. Retried until the deadline.
    private func switchToWAL(deadline: MonotonicInstant) throws -> String? {
        while true {
            do {
                return try scalarString("PRAGMA journal_mode=WAL")
            } catch let error as SQLiteError where error.isBusy && MonotonicInstant.now() < deadline {
                usleep(2_000)
            }
        }
    }

    func error(code: Int32, sql: String?) -> SQLiteError {
        let extended = sqlite3_extended_errcode(handle)
        let primaryMatches = (extended & 0xff) == (code & 0xff)
        return SQLiteError(extendedCode: primaryMatches ? extended : code,
                           message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    // MARK: Statements

    /// A cached prepared statement for `sql`.
    func cachedStatement(_ sql: String) throws -> Statement {
        if let statement = statementCache[sql] { return statement }
        let statement = try Statement(database: self, sql: sql)
        statementCache[sql] = statement
        return statement
    }

    /// Runs one or more statements with no arguments and no results (DDL, pragmas).
    public func execute(_ sql: String) throws {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(code: rc, sql: sql) }
    }

    /// Runs one statement with arguments, ignoring rows. Returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ arguments: SQLBindable...) throws -> Int {
        try run(sql, arguments: arguments)
    }

    @discardableResult
    public func run(_ sql: String, arguments: [SQLBindable]) throws -> Int {
        let statement = try cachedStatement(sql)
        let started = profiling ? MonotonicInstant.now() : nil
        try statement.bind(arguments)
        defer {
            statement.reset()
            if let started { statement.record(since: started) }
        }
        while try statement.step() {}
        return Int(sqlite3_changes64(handle))
    }

    /// Runs a query and maps every row.
    public func query<T>(_ sql: String, _ arguments: SQLBindable..., map: (Row) throws -> T) throws -> [T] {
        try query(sql, arguments: arguments, map: map)
    }

    public func query<T>(_ sql: String, arguments: [SQLBindable], map: (Row) throws -> T) throws -> [T] {
        let statement = try cachedStatement(sql)
        let started = profiling ? MonotonicInstant.now() : nil
        try statement.bind(arguments)
        defer {
            statement.reset()
            if let started { statement.record(since: started) }
        }
        var rows: [T] = []
        while try statement.step() {
            rows.append(try map(Row(statement: statement.handle)))
        }
        return rows
    }

    /// Runs a query and maps the first row, if any.
    public func queryOne<T>(_ sql: String, _ arguments: SQLBindable..., map: (Row) throws -> T) throws -> T? {
        try queryOne(sql, arguments: arguments, map: map)
    }

    public func queryOne<T>(_ sql: String, arguments: [SQLBindable], map: (Row) throws -> T) throws -> T? {
        let statement = try cachedStatement(sql)
        let started = profiling ? MonotonicInstant.now() : nil
        try statement.bind(arguments)
        defer {
            statement.reset()
            if let started { statement.record(since: started) }
        }
        guard try statement.step() else { return nil }
        return try map(Row(statement: statement.handle))
    }

    public func scalarInt(_ sql: String, _ arguments: SQLBindable...) throws -> Int64? {
        try queryOne(sql, arguments: arguments) { $0.optionalInt64(0) } ?? nil
    }

    public func scalarString(_ sql: String, _ arguments: SQLBindable...) throws -> String? {
        try queryOne(sql, arguments: arguments) { $0.optionalString(0) } ?? nil
    }

    /// Pages this connection has written to the WAL since it opened
    /// (SQLITE_DBSTATUS_CACHE_WRITE, https://www.sqlite.org/c3ref/c_dbstatus_options.html).
    public var pagesWritten: Int {
        var current: Int32 = 0
        var highwater: Int32 = 0
        sqlite3_db_status(handle, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater, 0)
        return Int(current)
    }

    /// With `profileStatements`: each cached statement's calls and total time (binding, stepping
    /// and the caller's row mapping), the most expensive first.
    public var statementProfile: [(sql: String, calls: Int, nanoseconds: UInt64)] {
        statementCache.values.filter { $0.calls > 0 }.map { ($0.sql, $0.calls, $0.nanoseconds) }
            .sorted { $0.nanoseconds > $1.nanoseconds }
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    // MARK: Transactions

    /// Runs `body` in a write transaction opened with BEGIN IMMEDIATE.
    ///
    /// "If a write transaction is started with BEGIN DEFERRED and a read is done first, then the
    /// attempt to upgrade to a write lock may fail with SQLITE_BUSY, and the busy handler is not
    /// invoked" (https://www.sqlite.org/lang_transaction.html, isolation.html). BEGIN IMMEDIATE takes
    /// the write lock up front, where the busy timeout applies. Nested calls join the outer transaction.
    public func write<T>(_ body: () throws -> T) throws -> T {
        if transactionDepth > 0 {
            transactionDepth += 1
            defer { transactionDepth -= 1 }
            return try body()
        }
        let requested = MonotonicInstant.now()
        try execute("BEGIN IMMEDIATE")
        let locked = MonotonicInstant.now()
        transactionDepth = 1
        defer { transactionDepth = 0 }
        do {
            let result = try body()
            let committing = MonotonicInstant.now()
            try execute("COMMIT")
            let committed = MonotonicInstant.now()
            writeStatistics.transactions += 1
            writeStatistics.lockWaitNanoseconds += locked.nanoseconds - requested.nanoseconds
            writeStatistics.bodyNanoseconds += committing.nanoseconds - locked.nanoseconds
            writeStatistics.commitNanoseconds += committed.nanoseconds - committing.nanoseconds
            runAfterCommitActions()
            return result
        } catch {
            if !sqlite3_get_autocommit(handle).isTrue { try? execute("ROLLBACK") }
            afterCommitActions.removeAll()
            throw error
        }
    }

    /// Runs `action` once the current transaction commits (at once outside a transaction;
    /// never if it rolls back). For wake hints: a hint sent before the commit would wake a
    /// reader that cannot see the new rows yet.
    public func afterCommit(_ action: @escaping () -> Void) {
        if transactionDepth == 0 { action() } else { afterCommitActions.append(action) }
    }

    private func runAfterCommitActions() {
        let actions = afterCommitActions
        afterCommitActions.removeAll()
        for action in actions { action() }
    }

    /// Runs `body` in a read transaction, so every query inside sees one snapshot.
    public func read<T>(_ body: () throws -> T) throws -> T {
        if transactionDepth > 0 { return try body() }
        try execute("BEGIN DEFERRED")
        transactionDepth = 1
        defer { transactionDepth = 0 }
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if !sqlite3_get_autocommit(handle).isTrue { try? execute("ROLLBACK") }
            throw error
        }
    }

    public var isInTransaction: Bool { transactionDepth > 0 }

    /// Runs `body`, interrupting its SQLite work once `timeout` has passed: the statement in
    /// progress fails with SQLITE_INTERRUPT (https://www.sqlite.org/c3ref/progress_handler.html,
    /// checked every 1000 virtual machine instructions). Bounds a handler's time on a slow query.
    public func withTimeout<T>(_ timeout: Duration, _ body: () throws -> T) rethrows -> T {
        let deadline = DeadlineBox(MonotonicInstant.now().adding(timeout))
        let context = Unmanaged.passRetained(deadline)
        defer {
            sqlite3_progress_handler(handle, 0, nil, nil)
            context.release()
        }
        sqlite3_progress_handler(handle, 1000, { raw in
            guard let raw else { return 0 }
            let box = Unmanaged<DeadlineBox>.fromOpaque(raw).takeUnretainedValue()
            return MonotonicInstant.now() >= box.deadline ? 1 : 0
        }, context.toOpaque())
        return try body()
    }

    /// Copies the live database into a new file (https://www.sqlite.org/lang_vacuum.html#vacuuminto):
    /// a consistent online backup that readers and writers of the WAL database do not block.
    public func backup(to destination: String) throws {
        try run("VACUUM INTO ?1", destination)
    }
}

@available(*, unavailable)
extension Database: Sendable {}

private final class DeadlineBox {
    let deadline: MonotonicInstant
    init(_ deadline: MonotonicInstant) { self.deadline = deadline }
}

extension SQLiteError {
    /// The statement was interrupted (a handler deadline passed).
    public var isInterrupt: Bool { code == SQLITE_INTERRUPT }
}

extension Int32 {
    fileprivate var isTrue: Bool { self != 0 }
}
