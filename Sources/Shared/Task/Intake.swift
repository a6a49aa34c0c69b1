/// A task submission, validated. Built from the gate's JSON body or directly by tests and tools.
public struct IntakeRequest: Sendable, Equatable {
    public var title: String
    public var prompt: String
    public var lane: String
    public var priority: Int
    public var capabilities: [String]
    public var profile: String?
    public var maxAttempts: Int
    public var notBefore: Microseconds
    public var budgetUSD: Double?
    public var requestedBy: String
    public var idempotencyKey: String?

    public init(title: String? = nil, prompt: String, lane: String = "default", priority: Int = 0,
                capabilities: [String] = [], profile: String? = nil, maxAttempts: Int = 3,
                notBefore: Microseconds = 0, budgetUSD: Double? = nil, requestedBy: String = "operator",
                idempotencyKey: String? = nil) {
        self.title = title ?? IntakeRequest.defaultTitle(for: prompt)
        self.prompt = prompt
        self.lane = lane
        self.priority = priority
        self.capabilities = capabilities
        self.profile = profile
        self.maxAttempts = maxAttempts
        self.notBefore = notBefore
        self.budgetUSD = budgetUSD
        self.requestedBy = requestedBy
        self.idempotencyKey = idempotencyKey
    }

    static func defaultTitle(for prompt: String) -> String {
        let firstLine = prompt.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: true).first ?? ""
        let trimmed = firstLine.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? "untitled task" : String(trimmed.prefix(120))
    }

    public static let knownFields: Set<String> = [
        "title", "prompt", "lane", "priority", "capabilities", "profile", "max_attempts", "not_before",
        "budget_usd", "requested_by", "idempotency_key",
    ]

    /// Reads a JSON object. Unknown fields are refused by name (a typo such as "priorty" must not
    /// silently become a default).
    public init(json: JSON) throws(IntakeError) {
        guard let object = json.objectValue else { throw .invalid(field: "body", reason: "must be a JSON object") }
        for key in object.keys.sorted() where !Self.knownFields.contains(key) {
            throw .invalid(field: key, reason: "unknown field")
        }
        func string(_ key: String) throws(IntakeError) -> String? {
            guard let value = object[key], !value.isNull else { return nil }
            guard let s = value.stringValue else { throw .invalid(field: key, reason: "must be a string") }
            return s
        }
        func integer(_ key: String) throws(IntakeError) -> Int? {
            guard let value = object[key], !value.isNull else { return nil }
            guard let i = value.int64Value, let small = Int(exactly: i) else { throw .invalid(field: key, reason: "must be an integer") }
            return small
        }
        guard let prompt = try string("prompt") else { throw .invalid(field: "prompt", reason: "is required") }
        var capabilities: [String] = []
        if let value = object["capabilities"], !value.isNull {
            guard let items = value.arrayValue else { throw .invalid(field: "capabilities", reason: "must be an array of strings") }
            for item in items {
                guard let s = item.stringValue else { throw .invalid(field: "capabilities", reason: "must be an array of strings") }
                capabilities.append(s)
            }
        }
        var budget: Double?
        if let value = object["budget_usd"], !value.isNull {
            guard let d = value.doubleValue else { throw .invalid(field: "budget_usd", reason: "must be a number") }
            budget = d
        }
        var notBefore: Microseconds = 0
        if let value = object["not_before"], !value.isNull {
            if let text = value.stringValue {
                guard let parsed = Timestamp.parseISO8601(text) else {
                    throw .invalid(field: "not_before", reason: "must be an RFC 3339 time such as 2026-01-02T03:04:05Z")
                }
                notBefore = parsed
            } else {
                throw .invalid(field: "not_before", reason: "must be an RFC 3339 time string")
            }
        }
        self.init(title: try string("title"), prompt: prompt, lane: try string("lane") ?? "default",
                  priority: try integer("priority") ?? 0, capabilities: capabilities, profile: try string("profile"),
                  maxAttempts: try integer("max_attempts") ?? 3, notBefore: notBefore, budgetUSD: budget,
                  requestedBy: try string("requested_by") ?? "operator", idempotencyKey: try string("idempotency_key"))
    }

    public static let maxPromptBytes = 256 * 1024

    /// Checks every field; the error names the first bad one.
    public func validate() throws(IntakeError) {
        if title.isEmpty || title.utf8.count > 200 { throw .invalid(field: "title", reason: "must be 1 to 200 bytes") }
        if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw .invalid(field: "prompt", reason: "must not be empty") }
        if prompt.utf8.count > Self.maxPromptBytes { throw .invalid(field: "prompt", reason: "must be at most \(Self.maxPromptBytes) bytes") }
        if !Names.isValid(lane) { throw .invalid(field: "lane", reason: Names.rule) }
        if !(-1000...1000).contains(priority) { throw .invalid(field: "priority", reason: "must be between -1000 and 1000") }
        if capabilities.count > 32 { throw .invalid(field: "capabilities", reason: "at most 32 entries") }
        for capability in capabilities where !Names.isValid(capability) {
            throw .invalid(field: "capabilities", reason: "'\(capability.prefix(64))': \(Names.rule)")
        }
        if let profile, !Names.isValid(profile) { throw .invalid(field: "profile", reason: Names.rule) }
        if !(1...50).contains(maxAttempts) { throw .invalid(field: "max_attempts", reason: "must be between 1 and 50") }
        if let budgetUSD, !(budgetUSD.isFinite && budgetUSD >= 0 && budgetUSD <= 1_000_000) {
            throw .invalid(field: "budget_usd", reason: "must be a number from 0 to 1000000")
        }
        if requestedBy.isEmpty || requestedBy.utf8.count > 128 || requestedBy.contains(where: \.isNewline) {
            throw .invalid(field: "requested_by", reason: "must be 1 to 128 bytes on one line")
        }
        if let key = idempotencyKey {
            if key.isEmpty || key.utf8.count > 200 || key.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7f }) {
                throw .invalid(field: "idempotency_key", reason: "must be 1 to 200 printable characters without spaces")
            }
        }
    }

    /// A fingerprint of everything the task would do, so a replayed idempotency key can be told
    /// from a different request under the same key.
    public var requestHash: String {
        let canonical: JSON = [
            "title": .string(title), "prompt": .string(prompt), "lane": .string(lane), "priority": .int(Int64(priority)),
            "capabilities": JSON(capabilities.sorted()), "profile": JSON(profile), "max_attempts": .int(Int64(maxAttempts)),
            "not_before": .int(notBefore), "budget_usd": JSON(budgetUSD), "requested_by": .string(requestedBy),
        ]
        return SHA256.hexDigest(canonical.serialized())
    }
}

public enum IntakeError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    /// The idempotency key was used before for a different request.
    case conflict(idempotencyKey: String, existingTaskID: Int64)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): return "\(field): \(reason)"
        case .conflict(let key, let id): return "idempotency_key '\(key)' was already used for task \(id) with a different request"
        }
    }
}

public enum IntakeOutcome: Sendable, Equatable {
    case created(TaskRecord)
    /// Same key, same request: the original task, unchanged.
    case replayed(TaskRecord)

    public var task: TaskRecord {
        switch self {
        case .created(let t), .replayed(let t): return t
        }
    }
}

/// Names of lanes, capabilities and profiles: short, printable, safe in paths and journal fields.
public enum Names {
    public static let rule = "must be 1 to 64 characters of a-z, A-Z, 0-9, '.', '_', ':' or '-'"
    public static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64 else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
                || c == 0x2e || c == 0x5f || c == 0x3a || c == 0x2d
        }
    }
}

extension TaskStore {
    /// Accepts a task: validates, de-duplicates by idempotency key, and commits. When this returns,
    /// the row is durable to the degree of the connection's synchronous setting (FULL by default:
    /// the WAL is synced before COMMIT returns).
    public func submit(_ request: IntakeRequest, at now: Microseconds = WallClock.now()) throws -> IntakeOutcome {
        try request.validate()
        let hash = request.requestHash
        return try db.write {
            if let key = request.idempotencyKey,
               let existing = try db.queryOne("SELECT \(TaskRecord.columns) FROM tasks WHERE idempotency_key = ?1", key,
                                              map: TaskRecord.decode) {
                guard existing.requestHash == hash else {
                    throw IntakeError.conflict(idempotencyKey: key, existingTaskID: existing.id)
                }
                return .replayed(existing)
            }
            try db.run("""
                INSERT INTO tasks (title, prompt, lane, priority, capabilities, profile, status, max_attempts, not_before,
                    created_at, updated_at, idempotency_key, request_hash, requested_by, budget_usd)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13)
                """, request.title, request.prompt, request.lane, request.priority,
                JSON(request.capabilities).serialized(), request.profile, request.maxAttempts, request.notBefore,
                now, request.idempotencyKey, hash, request.requestedBy, request.budgetUSD)
            let id = db.lastInsertRowID
            try appendEvent(task: id, attempt: 0, kind: "submitted", source: "intake", at: now,
                            payload: ["requested_by": .string(request.requestedBy), "lane": .string(request.lane)])
            guard let task = try task(id: id) else { throw SchemaError(message: "task \(id) vanished after insert") }
            return .created(task)
        }
    }
}
