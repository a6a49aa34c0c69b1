import CSQLite

/// An error from SQLite. Carries the extended result code and the SQL text, never bound values
/// (they may hold prompts or secrets).
public struct SQLiteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The extended result code (https://www.sqlite.org/rescode.html).
    public let extendedCode: Int32
    public let message: String
    public let sql: String?

    public init(extendedCode: Int32, message: String, sql: String? = nil) {
        self.extendedCode = extendedCode
        self.message = message
        self.sql = sql
    }

    /// The primary result code: the low 8 bits of the extended code.
    public var code: Int32 { extendedCode & 0xff }
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    public var isConstraint: Bool { code == SQLITE_CONSTRAINT }

    public var description: String {
        var text = "SQLite error \(extendedCode) (\(String(cString: sqlite3_errstr(extendedCode)))): \(message)"
        if let sql { text += " — in: \(sql.prefix(200))" }
        return text
    }
}
