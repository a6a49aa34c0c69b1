import Foundation
import Shared

/// Command line and environment of the supervisor, validated into ComponentSettings.
enum SupervisorOptions {
    static let allComponents = ["gate", "scheduler", "poller"]

    static func parse(arguments: [String], configuration: Configuration) throws -> ComponentSettings {
        let env = configuration.environment
        var names = allComponents
        if let list = env["SWITCHYARD_COMPONENTS"], !list.isEmpty {
            names = try componentList(list, source: "SWITCHYARD_COMPONENTS")
        }
        var index = 0
        while index < arguments.count {
            switch arguments[index] {
            case "--agents-only":
                names = []
            case "--components":
                index += 1
                guard index < arguments.count else {
                    throw ConfigurationError(variable: "--components", reason: "needs a list such as gate,scheduler")
                }
                names = try componentList(arguments[index], source: "--components")
            default:
                throw ConfigurationError(variable: arguments[index], reason: "unknown argument (use --components LIST or --agents-only)")
            }
            index += 1
        }
        var settings = ComponentSettings(names: names, binaryDirectory: env["SWITCHYARD_BIN_DIR"] ?? BinaryLocation.directory)
        func duration(_ name: String, _ current: Duration, range: ClosedRange<Int>) throws -> Duration {
            guard let raw = env[name], !raw.isEmpty else { return current }
            guard let value = Int(raw), range.contains(value) else {
                throw ConfigurationError(variable: name, reason: "expected milliseconds between \(range.lowerBound) and \(range.upperBound), got '\(raw)'")
            }
            return .milliseconds(value)
        }
        settings.watchdogTimeout = try duration("SWITCHYARD_COMPONENT_WATCHDOG_MS", settings.watchdogTimeout, range: 200...600_000)
        settings.startTimeout = try duration("SWITCHYARD_COMPONENT_START_TIMEOUT_MS", settings.startTimeout, range: 100...600_000)
        settings.stopTimeout = try duration("SWITCHYARD_COMPONENT_STOP_TIMEOUT_MS", settings.stopTimeout, range: 100...600_000)
        settings.restartPolicy.firstDelay = try duration("SWITCHYARD_RESTART_DELAY_MS", settings.restartPolicy.firstDelay, range: 0...600_000)
        settings.restartPolicy.maxDelay = try duration("SWITCHYARD_RESTART_MAX_DELAY_MS", settings.restartPolicy.maxDelay, range: 0...3_600_000)
        settings.restartPolicy.stablePeriod = try duration("SWITCHYARD_RESTART_STABLE_MS", settings.restartPolicy.stablePeriod, range: 0...86_400_000)
        settings.restartPolicy.startLimitInterval = try duration("SWITCHYARD_START_LIMIT_INTERVAL_MS", settings.restartPolicy.startLimitInterval, range: 1...86_400_000)
        if let raw = env["SWITCHYARD_START_LIMIT_BURST"], !raw.isEmpty {
            guard let burst = Int(raw), (1...100_000).contains(burst) else {
                throw ConfigurationError(variable: "SWITCHYARD_START_LIMIT_BURST", reason: "expected 1 to 100000, got '\(raw)'")
            }
            settings.restartPolicy.startLimitBurst = burst
        }
        return settings
    }

    static func componentList(_ text: String, source: String) throws -> [String] {
        if text == "none" { return [] }
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for name in names where !allComponents.contains(name) {
            throw ConfigurationError(variable: source, reason: "unknown component '\(name)' (known: \(allComponents.joined(separator: ", ")), or none)")
        }
        // Always in start order, whatever order they were named in.
        return allComponents.filter(names.contains)
    }
}
