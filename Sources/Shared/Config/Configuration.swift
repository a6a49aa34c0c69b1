import Foundation

/// Where Switchyard runs: the embedded default (a local state folder, demo agent, unpaused) or
/// production (systemd units, a database that starts paused in maintenance mode).
public enum DeploymentMode: String, Sendable {
    case embedded
    case production
}

public enum LogTarget: String, Sendable {
    case auto
    case journal
    case stderr
}

public enum LogLevel: String, Sendable, Comparable, CaseIterable {
    case debug, info, notice, warning, error

    /// syslog(3) priorities, as journald's PRIORITY field takes them.
    public var syslogPriority: Int {
        switch self {
        case .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        }
    }

    private var rank: Int { 7 - syslogPriority }
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rank < b.rank }
}

public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let variable: String
    public let reason: String
    public var description: String { "configuration: \(variable): \(reason)" }

    public init(variable: String, reason: String) {
        self.variable = variable
        self.reason = reason
    }
}

/// Every setting, read from the environment (and optionally an EnvironmentFile= style file) and
/// validated at start. An error names the variable and what is wrong with it.
public struct Configuration: Sendable {
    public var mode: DeploymentMode
    public var stateDirectory: String
    public var databasePath: String
    public var runDirectory: String
    public var gateListen: String
    public var profilesPath: String?
    public var synchronous: SynchronousMode
    public var busyTimeoutMilliseconds: Int32
    /// Time every SQL statement and log the most expensive ones at stop (a diagnostic).
    public var profileStatements: Bool
    public var logTarget: LogTarget
    public var logLevel: LogLevel
    public var retryPolicy: RetryPolicy
    public var dispatchPolicy: DispatchPolicy
    public var httpLimits: HTTPLimits
    /// The variables the configuration was read from (after the env file was merged).
    public var environment: [String: String]

    /// Every variable Switchyard knows. Any other SWITCHYARD_* variable is refused, so a typo is an
    /// error at start rather than a silently ignored setting.
    public static let knownVariables: Set<String> = [
        "SWITCHYARD_MODE", "SWITCHYARD_ENV_FILE", "SWITCHYARD_STATE_DIR", "SWITCHYARD_DB", "SWITCHYARD_RUN_DIR",
        "SWITCHYARD_GATE_LISTEN", "SWITCHYARD_CONTROL_TOKEN", "SWITCHYARD_CONTROL_TOKEN_FILE",
        "SWITCHYARD_READONLY_TOKEN", "SWITCHYARD_READONLY_TOKEN_FILE", "SWITCHYARD_PROFILES",
        "SWITCHYARD_SYNCHRONOUS", "SWITCHYARD_BUSY_TIMEOUT_MS", "SWITCHYARD_SQL_PROFILE", "SWITCHYARD_LOG", "SWITCHYARD_LOG_LEVEL",
        "SWITCHYARD_RETRY_BASE_MS", "SWITCHYARD_RETRY_MAX_MS", "SWITCHYARD_COMPONENTS",
        "SWITCHYARD_TESTKIT_FAULT", "SWITCHYARD_BIN_DIR", "SWITCHYARD_COMPONENT_WATCHDOG_MS",
        "SWITCHYARD_COMPONENT_START_TIMEOUT_MS", "SWITCHYARD_COMPONENT_STOP_TIMEOUT_MS", "SWITCHYARD_RESTART_DELAY_MS",
        "SWITCHYARD_RESTART_MAX_DELAY_MS", "SWITCHYARD_RESTART_STABLE_MS", "SWITCHYARD_START_LIMIT_INTERVAL_MS",
        "SWITCHYARD_START_LIMIT_BURST", "SWITCHYARD_LANE_LIMIT", "SWITCHYARD_MAX_ACTIVE", "SWITCHYARD_DAILY_BUDGET_USD",
        "SWITCHYARD_MIN_CAPABILITY_SCORE", "SWITCHYARD_CLAIM_TIMEOUT_MS", "SWITCHYARD_SUPERVISOR_PID",
        "SWITCHYARD_HTTP_MAX_CONNECTIONS", "SWITCHYARD_HTTP_HEADER_TIMEOUT_MS", "SWITCHYARD_HTTP_IDLE_TIMEOUT_MS",
        "SWITCHYARD_HTTP_HANDLER_TIMEOUT_MS", "SWITCHYARD_HTTP_MAX_BODY_BYTES", "SWITCHYARD_HTTP_MAX_HEADER_BYTES",
    ]

    /// Loads from `environment` (the process environment by default). If SWITCHYARD_ENV_FILE
    /// names a file, its values fill in what the environment does not set: the environment wins,
    /// so `SWITCHYARD_LOG=stderr switchyard-gate` overrides the file for one run.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        var env = environment
        if let file = nonEmpty(env["SWITCHYARD_ENV_FILE"]) {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ConfigurationError(variable: "SWITCHYARD_ENV_FILE", reason: "cannot read \(file): \(error.localizedDescription)")
            }
            do {
                for (key, value) in try EnvironmentFile.parse(text) where env[key] == nil {
                    env[key] = value
                }
            } catch {
                throw ConfigurationError(variable: "SWITCHYARD_ENV_FILE", reason: "\(file): \(error)")
            }
        }
        for key in env.keys.sorted() where key.hasPrefix("SWITCHYARD_") && !knownVariables.contains(key) {
            throw ConfigurationError(variable: key, reason: "unknown variable (known: \(knownVariables.sorted().joined(separator: ", ")))")
        }
        return try Configuration(validating: env)
    }

    init(validating env: [String: String]) throws {
        environment = env
        mode = try Self.choice(env, "SWITCHYARD_MODE", default: .embedded)
        let state = nonEmpty(env["SWITCHYARD_STATE_DIR"]) ?? ".switchyard"
        stateDirectory = Self.absolute(state)
        databasePath = Self.absolute(nonEmpty(env["SWITCHYARD_DB"]) ?? stateDirectory + "/switchyard.db")
        runDirectory = Self.absolute(nonEmpty(env["SWITCHYARD_RUN_DIR"]) ?? stateDirectory + "/run")
        gateListen = nonEmpty(env["SWITCHYARD_GATE_LISTEN"]) ?? "127.0.0.1:8787"
        guard (try? ListenAddress.parse(gateListen)) != nil else {
            throw ConfigurationError(variable: "SWITCHYARD_GATE_LISTEN",
                                     reason: "expected HOST:PORT or [IPv6]:PORT with a numeric address, got '\(gateListen)'")
        }
        profilesPath = nonEmpty(env["SWITCHYARD_PROFILES"]).map(Self.absolute)
        let sync = (nonEmpty(env["SWITCHYARD_SYNCHRONOUS"]) ?? "FULL").uppercased()
        guard let syncMode = SynchronousMode(rawValue: sync) else {
            throw ConfigurationError(variable: "SWITCHYARD_SYNCHRONOUS", reason: "expected FULL or NORMAL, got '\(sync)'")
        }
        synchronous = syncMode
        busyTimeoutMilliseconds = Int32(try Self.integer(env, "SWITCHYARD_BUSY_TIMEOUT_MS", default: 15_000, range: 100...600_000))
        profileStatements = try Self.integer(env, "SWITCHYARD_SQL_PROFILE", default: 0, range: 0...1) == 1
        logTarget = try Self.choice(env, "SWITCHYARD_LOG", default: .auto)
        logLevel = try Self.choice(env, "SWITCHYARD_LOG_LEVEL", default: .info)
        let base = try Self.integer(env, "SWITCHYARD_RETRY_BASE_MS", default: 10_000, range: 1...3_600_000)
        let cap = try Self.integer(env, "SWITCHYARD_RETRY_MAX_MS", default: 300_000, range: 1...86_400_000)
        guard cap >= base else {
            throw ConfigurationError(variable: "SWITCHYARD_RETRY_MAX_MS", reason: "must be at least SWITCHYARD_RETRY_BASE_MS (\(base))")
        }
        retryPolicy = RetryPolicy(baseDelay: .milliseconds(base), maxDelay: .milliseconds(cap))
        var dispatch = DispatchPolicy()
        dispatch.defaultLaneLimit = try Self.integer(env, "SWITCHYARD_LANE_LIMIT", default: 1, range: 1...10_000)
        dispatch.maxActive = try Self.integer(env, "SWITCHYARD_MAX_ACTIVE", default: 8, range: 1...100_000)
        dispatch.claimTimeout = .milliseconds(try Self.integer(env, "SWITCHYARD_CLAIM_TIMEOUT_MS", default: 120_000, range: 100...86_400_000))
        if let raw = nonEmpty(env["SWITCHYARD_DAILY_BUDGET_USD"]) {
            guard let value = Double(raw), value.isFinite, value >= 0 else {
                throw ConfigurationError(variable: "SWITCHYARD_DAILY_BUDGET_USD", reason: "expected a non-negative number of US dollars, got '\(raw)'")
            }
            dispatch.dailyBudgetUSD = value
        }
        if let raw = nonEmpty(env["SWITCHYARD_MIN_CAPABILITY_SCORE"]) {
            guard let value = Double(raw), value > 0, value <= 1 else {
                throw ConfigurationError(variable: "SWITCHYARD_MIN_CAPABILITY_SCORE", reason: "expected a number in (0, 1], got '\(raw)'")
            }
            dispatch.minCapabilityScore = value
        }
        dispatchPolicy = dispatch
        var http = HTTPLimits()
        http.maxConnections = try Self.integer(env, "SWITCHYARD_HTTP_MAX_CONNECTIONS", default: http.maxConnections, range: 1...60_000)
        http.headerReadTimeout = .milliseconds(try Self.integer(env, "SWITCHYARD_HTTP_HEADER_TIMEOUT_MS", default: 10_000, range: 100...600_000))
        http.idleTimeout = .milliseconds(try Self.integer(env, "SWITCHYARD_HTTP_IDLE_TIMEOUT_MS", default: 60_000, range: 100...3_600_000))
        http.handlerTimeout = .milliseconds(try Self.integer(env, "SWITCHYARD_HTTP_HANDLER_TIMEOUT_MS", default: 5_000, range: 10...600_000))
        http.bodyBytes = try Self.integer(env, "SWITCHYARD_HTTP_MAX_BODY_BYTES", default: http.bodyBytes, range: 1024...(64 << 20))
        http.headerBytes = try Self.integer(env, "SWITCHYARD_HTTP_MAX_HEADER_BYTES", default: http.headerBytes, range: 1024...(1 << 20))
        httpLimits = http
    }

    public var databaseOptions: DatabaseOptions {
        DatabaseOptions(synchronous: synchronous, busyTimeoutMilliseconds: busyTimeoutMilliseconds,
                        profileStatements: profileStatements)
    }

    static func choice<T: RawRepresentable>(_ env: [String: String], _ name: String, default value: T) throws -> T
    where T.RawValue == String {
        guard let raw = nonEmpty(env[name]) else { return value }
        guard let parsed = T(rawValue: raw.lowercased()) else {
            throw ConfigurationError(variable: name, reason: "unknown value '\(raw)'")
        }
        return parsed
    }

    static func integer(_ env: [String: String], _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw = nonEmpty(env[name]) else { return value }
        guard let parsed = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(variable: name, reason: "expected an integer, got '\(raw)'")
        }
        guard range.contains(parsed) else {
            throw ConfigurationError(variable: name, reason: "must be between \(range.lowerBound) and \(range.upperBound), got \(parsed)")
        }
        return parsed
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }
}

func nonEmpty(_ value: String?) -> String? {
    guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
    return value
}

/// A TCP listen address: `127.0.0.1:8787`, `[::1]:8787`, `0.0.0.0:80`.
public struct ListenAddress: Sendable, Equatable {
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool

    public init(host: String, port: UInt16, isIPv6: Bool) {
        self.host = host
        self.port = port
        self.isIPv6 = isIPv6
    }

    public static func parse(_ text: String) throws -> ListenAddress {
        struct Invalid: Error {}
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw Invalid() }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), !host.isEmpty else { throw Invalid() }
            var buffer = in6_addr()
            guard inet_pton(AF_INET6, host, &buffer) == 1 else { throw Invalid() }
            return ListenAddress(host: host, port: port, isIPv6: true)
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { throw Invalid() }
        let host = String(text[..<colon])
        var buffer = in_addr()
        guard inet_pton(AF_INET, host, &buffer) == 1 else { throw Invalid() }
        return ListenAddress(host: host, port: port, isIPv6: false)
    }
}
