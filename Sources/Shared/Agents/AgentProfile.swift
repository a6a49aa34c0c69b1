import Foundation

/// How an agent program is run and understood. Operators define profiles in a JSON file
/// (SWITCHYARD_PROFILES); the embedded default has built-in demo profiles.
public struct AgentProfile: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Long-lived; one prompt line per task on stdin (as `zot rpc`).
        case rpc
        /// One process per task; the prompt on stdin or as an argument.
        case oneshot
    }

    public enum OutputFormat: String, Sendable, CaseIterable {
        /// Switchyard's own JSONL (the demo agent speaks it).
        case switchyard
        /// zot rpc events.
        case zot
        /// Claude Code `--output-format stream-json`.
        case claude
        /// Codex `exec --json`.
        case codex
        /// Plain text; the exit status decides.
        case plain
    }

    public enum PromptDelivery: String, Sendable {
        case stdin
        /// `{prompt}` in argv is replaced by the task's prompt.
        case argument
    }

    /// USD per million tokens, for formats that report tokens but no cost (Codex).
    public struct Prices: Sendable, Equatable {
        public var input: Double
        public var cachedInput: Double
        public var output: Double

        public init(input: Double, cachedInput: Double, output: Double) {
            self.input = input
            self.cachedInput = cachedInput
            self.output = output
        }

        public func cost(_ usage: TokenUsage) -> Double {
            // Codex reports input_tokens including the cached ones.
            let uncached = max(0, usage.input - usage.cacheRead)
            return (Double(uncached) * input + Double(usage.cacheRead) * cachedInput + Double(usage.output) * output) / 1_000_000
        }
    }

    public var name: String
    public var argv: [String]
    public var mode: Mode
    public var format: OutputFormat
    public var capabilities: [String]
    public var maxInstances: Int
    public var taskTimeout: Duration
    public var stallTimeout: Duration
    public var prices: Prices?
    public var environment: [String: String]
    /// Names of the supervisor's environment variables an agent may inherit (API keys, say).
    public var inheritEnvironment: [String]
    /// `{lane}`, `{profile}`, `{task_id}` and `{state_dir}` are replaced.
    public var workingDirectory: String?
    public var promptDelivery: PromptDelivery
    public var maxLineBytes: Int
    public var maxLinesPerSecond: Int
    public var stopGrace: Duration

    public init(name: String, argv: [String], mode: Mode = .oneshot, format: OutputFormat = .switchyard,
                capabilities: [String] = [], maxInstances: Int = 1, taskTimeout: Duration = .seconds(3600),
                stallTimeout: Duration = .seconds(600), prices: Prices? = nil, environment: [String: String] = [:],
                inheritEnvironment: [String] = [], workingDirectory: String? = nil, promptDelivery: PromptDelivery = .stdin,
                maxLineBytes: Int = 1 << 20, maxLinesPerSecond: Int = 50_000, stopGrace: Duration = .seconds(10)) {
        self.name = name
        self.argv = argv
        self.mode = mode
        self.format = format
        self.capabilities = capabilities
        self.maxInstances = maxInstances
        self.taskTimeout = taskTimeout
        self.stallTimeout = stallTimeout
        self.prices = prices
        self.environment = environment
        self.inheritEnvironment = inheritEnvironment
        self.workingDirectory = workingDirectory
        self.promptDelivery = promptDelivery
        self.maxLineBytes = maxLineBytes
        self.maxLinesPerSecond = maxLinesPerSecond
        self.stopGrace = stopGrace
    }

    /// Variables every agent may see from the supervisor's environment; nothing else leaks.
    public static let baseEnvironmentAllowlist = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "TMPDIR"]

    /// The agent's whole environment: the allowlist, the profile's own variables, and the
    /// identity markers (SWITCHYARD_AGENT_ID also lets the supervisor find escaped descendants).
    public func childEnvironment(from parent: [String: String], agentID: Int64, taskID: Int64?, attempt: Int?) -> [String: String] {
        var env: [String: String] = [:]
        for key in Self.baseEnvironmentAllowlist + inheritEnvironment {
            if let value = parent[key] { env[key] = value }
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        env.merge(environment) { $1 }
        env["SWITCHYARD_AGENT_ID"] = String(agentID)
        env["SWITCHYARD_PROFILE"] = name
        if let taskID { env["SWITCHYARD_TASK_ID"] = String(taskID) }
        if let attempt { env["SWITCHYARD_ATTEMPT"] = String(attempt) }
        return env
    }

    public func expandedWorkingDirectory(lane: String?, taskID: Int64?, stateDirectory: String) -> String? {
        guard var path = workingDirectory else { return nil }
        path = path.replacingOccurrences(of: "{lane}", with: lane ?? "default")
        path = path.replacingOccurrences(of: "{profile}", with: name)
        path = path.replacingOccurrences(of: "{task_id}", with: taskID.map(String.init) ?? "none")
        path = path.replacingOccurrences(of: "{state_dir}", with: stateDirectory)
        return path
    }

    /// argv for one task (oneshot with the prompt as an argument).
    public func arguments(prompt: String?) -> [String] {
        guard promptDelivery == .argument, let prompt else { return argv }
        return argv.map { $0.replacingOccurrences(of: "{prompt}", with: prompt) }
    }
}

public struct ProfileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let profile: String?
    public let field: String?
    public let reason: String
    public var description: String {
        var text = file
        if let profile { text += ": profile '\(profile)'" }
        if let field { text += ": \(field)" }
        return text + ": " + reason
    }
}

/// Every profile the operator defined, by name.
public struct ProfileCatalog: Sendable {
    public let profiles: [AgentProfile]
    public let source: String

    public init(profiles: [AgentProfile], source: String) {
        self.profiles = profiles
        self.source = source
    }

    public subscript(name: String) -> AgentProfile? { profiles.first { $0.name == name } }

    /// The profiles the configuration names: SWITCHYARD_PROFILES, or the built-in demo profiles in
    /// the embedded default, or none (a production host without profiles parks every task).
    public static func load(configuration: Configuration, binaryDirectory: String) throws -> ProfileCatalog {
        if let path = configuration.profilesPath {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ProfileError(file: path, profile: nil, field: nil, reason: "cannot read: \(error.localizedDescription)")
            }
            return try parse(text, file: path)
        }
        if configuration.mode == .embedded {
            return ProfileCatalog(profiles: demoProfiles(binaryDirectory: binaryDirectory), source: "built-in demo profiles")
        }
        return ProfileCatalog(profiles: [], source: "none (set SWITCHYARD_PROFILES)")
    }

    public static func demoProfiles(binaryDirectory: String) -> [AgentProfile] {
        let agent = binaryDirectory + "/switchyard-demo-agent"
        return [
            AgentProfile(name: "demo-rpc", argv: [agent, "rpc"], mode: .rpc, format: .switchyard,
                         capabilities: ["demo", "code", "docs"], maxInstances: 4, stallTimeout: .seconds(60)),
            AgentProfile(name: "demo-oneshot", argv: [agent, "oneshot"], mode: .oneshot, format: .switchyard,
                         capabilities: ["demo", "shell"], maxInstances: 4, stallTimeout: .seconds(60)),
        ]
    }

    static let knownFields: Set<String> = [
        "name", "argv", "mode", "format", "capabilities", "max_instances", "task_timeout_s", "stall_timeout_s",
        "prices", "env", "inherit_env", "working_directory", "prompt_via", "max_line_bytes", "max_lines_per_second",
        "stop_grace_s",
    ]

    /// Parses `{"profiles": [...]}`. Errors name the file, the profile and the field.
    public static func parse(_ text: String, file: String) throws -> ProfileCatalog {
        let root: JSON
        do {
            root = try JSON.parse(text)
        } catch {
            throw ProfileError(file: file, profile: nil, field: nil, reason: "\(error)")
        }
        guard let list = root["profiles"]?.arrayValue else {
            throw ProfileError(file: file, profile: nil, field: "profiles", reason: "must be an array of profile objects")
        }
        var profiles: [AgentProfile] = []
        for (index, item) in list.enumerated() {
            let profile = try parseProfile(item, index: index, file: file)
            if profiles.contains(where: { $0.name == profile.name }) {
                throw ProfileError(file: file, profile: profile.name, field: "name", reason: "defined twice")
            }
            profiles.append(profile)
        }
        return ProfileCatalog(profiles: profiles, source: file)
    }

    static func parseProfile(_ item: JSON, index: Int, file: String) throws -> AgentProfile {
        guard let object = item.objectValue else {
            throw ProfileError(file: file, profile: "#\(index + 1)", field: nil, reason: "must be an object")
        }
        let label = object["name"]?.stringValue ?? "#\(index + 1)"
        func error(_ field: String, _ reason: String) -> ProfileError {
            ProfileError(file: file, profile: label, field: field, reason: reason)
        }
        for key in object.keys.sorted() where !knownFields.contains(key) {
            throw error(key, "unknown field")
        }
        guard let name = object["name"]?.stringValue, Names.isValid(name) else { throw error("name", Names.rule) }
        guard let argv = object["argv"]?.arrayValue?.compactMap(\.stringValue), !argv.isEmpty,
              argv.count == object["argv"]?.arrayValue?.count, !argv[0].isEmpty else {
            throw error("argv", "must be a non-empty array of strings")
        }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ fallback: T) throws -> T where T.RawValue == String {
            guard let value = object[key] else { return fallback }
            guard let text = value.stringValue, let parsed = T(rawValue: text) else {
                throw error(key, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return parsed
        }
        func number(_ key: String, _ fallback: Double, _ range: ClosedRange<Double>) throws -> Double {
            guard let value = object[key] else { return fallback }
            guard let d = value.doubleValue, range.contains(d) else {
                throw error(key, "must be a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return d
        }
        func strings(_ key: String) throws -> [String] {
            guard let value = object[key] else { return [] }
            guard let items = value.arrayValue, let list = Optional(items.compactMap(\.stringValue)), list.count == items.count else {
                throw error(key, "must be an array of strings")
            }
            return list
        }
        let mode: AgentProfile.Mode = try choice("mode", .oneshot)
        let format: AgentProfile.OutputFormat = try choice("format", .switchyard)
        let capabilities = try strings("capabilities")
        for capability in capabilities where !Names.isValid(capability) { throw error("capabilities", "'\(capability)': \(Names.rule)") }
        var environment: [String: String] = [:]
        if let env = object["env"] {
            guard let members = env.objectValue else { throw error("env", "must be an object of strings") }
            for (key, value) in members {
                guard let text = value.stringValue else { throw error("env.\(key)", "must be a string") }
                environment[key] = text
            }
        }
        var prices: AgentProfile.Prices?
        if let value = object["prices"] {
            guard let p = value.objectValue else { throw error("prices", "must be an object") }
            func price(_ key: String) throws -> Double {
                guard let d = p[key]?.doubleValue, d >= 0, d.isFinite else {
                    throw error("prices.\(key)", "must be a non-negative number (USD per million tokens)")
                }
                return d
            }
            for key in p.keys where !["input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok"].contains(key) {
                throw error("prices.\(key)", "unknown field")
            }
            prices = AgentProfile.Prices(input: try price("input_usd_per_mtok"), cachedInput: try price("cached_input_usd_per_mtok"),
                                         output: try price("output_usd_per_mtok"))
        }
        if format == .codex && prices == nil {
            throw error("prices", "is required for format codex, which reports tokens but no cost")
        }
        if mode == .rpc && !(format == .switchyard || format == .zot) {
            throw error("mode", "rpc works with format switchyard or zot (one prompt line per task on stdin); use oneshot for \(format.rawValue)")
        }
        let delivery: AgentProfile.PromptDelivery
        switch object["prompt_via"]?.stringValue ?? "stdin" {
        case "stdin": delivery = .stdin
        case "argument": delivery = .argument
        default: throw error("prompt_via", "must be stdin or argument")
        }
        if delivery == .argument {
            guard mode == .oneshot else { throw error("prompt_via", "argument works only with mode oneshot") }
            guard argv.contains(where: { $0.contains("{prompt}") }) else { throw error("argv", "must contain {prompt} when prompt_via is argument") }
        }
        var working: String?
        if let value = object["working_directory"] {
            guard let text = value.stringValue, text.hasPrefix("/") || text.hasPrefix("{state_dir}") else {
                throw error("working_directory", "must be an absolute path (placeholders {lane}, {profile}, {task_id}, {state_dir})")
            }
            working = text
        }
        return AgentProfile(
            name: name, argv: argv, mode: mode, format: format, capabilities: capabilities,
            maxInstances: Int(try number("max_instances", 1, 1...1000)),
            taskTimeout: .seconds(try number("task_timeout_s", 3600, 1...604_800)),
            stallTimeout: .seconds(try number("stall_timeout_s", 600, 1...604_800)),
            prices: prices, environment: environment, inheritEnvironment: try strings("inherit_env"),
            workingDirectory: working, promptDelivery: delivery,
            maxLineBytes: Int(try number("max_line_bytes", Double(1 << 20), 1024...Double(64 << 20))),
            maxLinesPerSecond: Int(try number("max_lines_per_second", 50_000, 1...10_000_000)),
            stopGrace: .milliseconds(Int64(try number("stop_grace_s", 10, 0...600) * 1000)))
    }
}
