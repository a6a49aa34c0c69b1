/// Where a task is in its life. The raw values are the strings stored in tasks.status and shown
/// in the API.
public enum TaskStatus: String, Sendable, CaseIterable, Codable, Comparable {
    case queued
    case claimed
    case dispatched
    case running
    case succeeded
    case failed
    case canceled
    case dead
    case needsReview = "needs_review"

    /// No automatic step leaves these; only an operator's retry does (except succeeded: final).
    public var isTerminal: Bool { self == .succeeded || self == .canceled || self == .dead }
    /// Holds a lane slot and counts against concurrency limits.
    public var isActive: Bool { self == .claimed || self == .dispatched || self == .running }

    public static func < (a: TaskStatus, b: TaskStatus) -> Bool { a.rawValue < b.rawValue }

    public static let activeSQLList = "'claimed','dispatched','running'"
}

/// The only edges a task may take. Every status change in every daemon is checked against this
/// table by `TaskStore.apply` (one function, fenced on the attempt).
public enum TaskStateMachine {
    public static let edges: [TaskStatus: Set<TaskStatus>] = [
        .queued: [.claimed, .canceled],
        .claimed: [.dispatched, .failed, .canceled],
        // A fast agent can report its result before Switchyard has seen any other event.
        .dispatched: [.running, .succeeded, .failed, .needsReview, .canceled],
        .running: [.succeeded, .failed, .needsReview, .canceled],
        // A failed attempt is resolved at once by the retry policy, in the same transaction.
        .failed: [.queued, .dead, .needsReview],
        // Operator decisions.
        .needsReview: [.queued, .succeeded, .canceled],
        .dead: [.queued],
        .canceled: [.queued],
        .succeeded: [],
    ]

    public static func allows(from: TaskStatus, to: TaskStatus) -> Bool {
        edges[from]?.contains(to) ?? false
    }
}
