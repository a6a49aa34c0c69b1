/// What one line of agent output means for the task.
public enum AgentEvent: Sendable, Equatable {
    /// A sign of life (moves last_event_at; the first one makes the task running).
    case activity(kind: String)
    /// Usage reported along the way (zot turns, Codex turns): accumulated per attempt.
    case usage(TokenUsage, costUSD: Double?)
    /// The agent's verdict on the task.
    case outcome(AgentOutcome)
    /// Not understood (not JSON where JSON is expected). Kept as evidence; not fatal.
    case unparsed(reason: String)
}

public struct AgentOutcome: Sendable, Equatable {
    public enum Verdict: Sendable, Equatable {
        case succeeded
        case failed(retryable: Bool)
        case needsReview
    }

    public var verdict: Verdict
    public var summary: String?
    public var error: String?
    /// Usage in this event; nil when the format reports it elsewhere (accumulated).
    public var usage: TokenUsage?
    public var costUSD: Double?

    public init(verdict: Verdict, summary: String? = nil, error: String? = nil, usage: TokenUsage? = nil, costUSD: Double? = nil) {
        self.verdict = verdict
        self.summary = summary
        self.error = error
        self.usage = usage
        self.costUSD = costUSD
    }
}

/// Line parsers for each output format (../shared/notes/agent-output-formats.md). Pure functions
/// over one line, so tests replay recorded lines and a fuzzer can feed them anything.
public enum AgentOutputParser {
    public static func parse(_ line: String, format: AgentProfile.OutputFormat) -> AgentEvent {
        parseWithReference(line, format: format).event
    }

    /// The event a line stands for and, where the format carries it, the task and attempt it
    /// names: one JSON parse for both.
    public static func parseWithReference(_ line: String, format: AgentProfile.OutputFormat)
        -> (event: AgentEvent, reference: (taskID: Int64, attempt: Int)?) {
        if format == .plain { return (.activity(kind: "line"), nil) }
        // JSON.parse skips JSON whitespace around the value; the first other byte decides.
        guard let first = line.utf8.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0d && $0 != 0x0a }) else {
            return (.unparsed(reason: "empty line"), nil)
        }
        guard first == UInt8(ascii: "{"), let json = try? JSON.parse(line), json.objectValue != nil else {
            return (.unparsed(reason: "not a JSON object"), nil)
        }
        return (event(json, format: format), reference(json, format: format))
    }

    static func reference(_ json: JSON, format: AgentProfile.OutputFormat) -> (taskID: Int64, attempt: Int)? {
        if format == .switchyard, let task = json["task_id"]?.int64Value, let attempt = json["attempt"]?.int64Value {
            return (task, Int(attempt))
        }
        if format == .zot, let id = json["id"]?.stringValue {
            let parts = id.split(separator: ":")
            if parts.count == 2, let task = Int64(parts[0]), let attempt = Int(parts[1]) { return (task, attempt) }
        }
        return nil
    }

    static func event(_ json: JSON, format: AgentProfile.OutputFormat) -> AgentEvent {
        let type = json["type"]?.stringValue ?? ""
        switch format {
        case .switchyard: return switchyard(json, type: type)
        case .zot: return zot(json, type: type)
        case .claude: return claude(json, type: type)
        case .codex: return codex(json, type: type)
        case .plain: return .activity(kind: "line")
        }
    }

    /// The task and attempt a line names, when the format carries them (Switchyard's own JSONL
    /// has task_id and attempt; zot echoes the request id "TASK:ATTEMPT").
    public static func taskReference(_ line: String, format: AgentProfile.OutputFormat) -> (taskID: Int64, attempt: Int)? {
        parseWithReference(line, format: format).reference
    }

    static func usage(_ json: JSON?, input: String, output: String, cacheRead: String, cacheWrite: String?) -> TokenUsage? {
        guard let json, json.objectValue != nil else { return nil }
        func value(_ key: String?) -> Int64 { key.flatMap { json[$0]?.int64Value }.map { max(0, $0) } ?? 0 }
        return TokenUsage(input: value(input), output: value(output), cacheRead: value(cacheRead), cacheWrite: value(cacheWrite))
    }

    static func cost(_ value: JSON?) -> Double? {
        guard let d = value?.doubleValue, d.isFinite, d >= 0 else { return nil }
        return d
    }

    // Switchyard JSONL: ack, progress, result{status, summary, error, retryable, usage, cost_usd}.
    static func switchyard(_ json: JSON, type: String) -> AgentEvent {
        guard type == "result" else { return .activity(kind: type.isEmpty ? "event" : type) }
        let usage = usage(json["usage"], input: "input_tokens", output: "output_tokens", cacheRead: "cache_read_tokens",
                          cacheWrite: "cache_write_tokens")
        let verdict: AgentOutcome.Verdict
        switch json["status"]?.stringValue {
        case "succeeded": verdict = .succeeded
        case "needs_review": verdict = .needsReview
        case "failed": verdict = .failed(retryable: json["retryable"]?.boolValue ?? true)
        default: return .unparsed(reason: "result without a known status")
        }
        return .outcome(AgentOutcome(verdict: verdict, summary: json["summary"]?.stringValue, error: json["error"]?.stringValue,
                                     usage: usage, costUSD: cost(json["cost_usd"])))
    }

    // zot rpc: response (ack), turn_start, turn_end{usage}, tool events, error, done.
    static func zot(_ json: JSON, type: String) -> AgentEvent {
        let usage = usage(json["usage"], input: "input", output: "output", cacheRead: "cache_read", cacheWrite: "cache_write")
        let cost = cost(json["usage"]?["cost_usd"]) ?? cost(json["cost_usd"])
        switch type {
        case "done":
            return .outcome(AgentOutcome(verdict: .succeeded, summary: json["summary"]?.stringValue ?? json["message"]?.stringValue,
                                         usage: usage, costUSD: cost))
        case "error":
            let message = json["message"]?.stringValue ?? json["error"]?.stringValue ?? "agent reported an error"
            return .outcome(AgentOutcome(verdict: .failed(retryable: true), error: message, usage: usage, costUSD: cost))
        case "turn_end":
            if let usage { return .usage(usage, costUSD: cost) }
            return .activity(kind: type)
        default:
            return .activity(kind: type.isEmpty ? "event" : type)
        }
    }

    // Claude Code stream-json: system/init, assistant, user, result{subtype, is_error, result,
    // total_cost_usd, usage{input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens}}.
    static func claude(_ json: JSON, type: String) -> AgentEvent {
        guard type == "result" else { return .activity(kind: type.isEmpty ? "event" : type) }
        let usage = usage(json["usage"], input: "input_tokens", output: "output_tokens", cacheRead: "cache_read_input_tokens",
                          cacheWrite: "cache_creation_input_tokens")
        // total_cost_usd is the current field; older versions said cost_usd.
        let cost = cost(json["total_cost_usd"]) ?? cost(json["cost_usd"])
        let isError = json["is_error"]?.boolValue ?? false
        let subtype = json["subtype"]?.stringValue ?? ""
        if !isError && subtype == "success" {
            return .outcome(AgentOutcome(verdict: .succeeded, summary: json["result"]?.stringValue, usage: usage, costUSD: cost))
        }
        // error_max_turns and similar: retrying the same prompt hits the same wall.
        let retryable = subtype == "error_during_execution"
        return .outcome(AgentOutcome(verdict: .failed(retryable: retryable), summary: json["result"]?.stringValue,
                                     error: "claude result: \(subtype.isEmpty ? "error" : subtype)", usage: usage, costUSD: cost))
    }

    // Codex exec --json: thread.started, turn.started, item.*, turn.completed{usage}, turn.failed{error}, error.
    // No cost field: the poller prices usage with the profile's table; the outcome comes at exit.
    static func codex(_ json: JSON, type: String) -> AgentEvent {
        switch type {
        case "turn.completed":
            if let usage = usage(json["usage"], input: "input_tokens", output: "output_tokens", cacheRead: "cached_input_tokens",
                                 cacheWrite: nil) {
                return .usage(usage, costUSD: nil)
            }
            return .activity(kind: type)
        case "turn.failed", "error":
            let message = json["error"]?["message"]?.stringValue ?? json["error"]?.stringValue ?? json["message"]?.stringValue
                ?? "codex reported an error"
            return .outcome(AgentOutcome(verdict: .failed(retryable: true), error: message))
        default:
            return .activity(kind: type.isEmpty ? "event" : type)
        }
    }

    /// The agent_message text of a Codex item.completed line, used as the summary.
    public static func codexMessage(_ line: String) -> String? {
        guard let json = try? JSON.parse(line), json["type"]?.stringValue == "item.completed",
              let item = json["item"], item["type"]?.stringValue == "agent_message" else { return nil }
        return item["text"]?.stringValue
    }

    /// The line written to an rpc agent's stdin for a task.
    public static func promptLine(format: AgentProfile.OutputFormat, taskID: Int64, attempt: Int, prompt: String) -> String {
        switch format {
        case .zot:
            return JSON.object(["id": .string("\(taskID):\(attempt)"), "type": "prompt", "message": .string(prompt)]).serialized()
        default:
            return JSON.object(["type": "prompt", "task_id": .int(taskID), "attempt": .int(Int64(attempt)),
                                "prompt": .string(prompt)]).serialized()
        }
    }
}
