import CLinux
import Foundation
import Glibc
import Shared

/// The process that stays up: supervises the components (all-in-one mode) and owns the agents.
final class SupervisorService: DaemonService {
    private let componentSettings: ComponentSettings
    private var components: ComponentSupervisor!
    private var agents: AgentSupervisor!
    private var wake: WakeChannel?
    private var lockFD: Int32 = -1
    private var commandFailures = 0

    init(componentSettings: ComponentSettings) {
        self.componentSettings = componentSettings
    }

    func start(_ runtime: DaemonRuntime) throws {
        try takeLock(runtime)
        // Components stop one by one; give the whole stop room for each, plus the agents' grace.
        runtime.shutdownGrace = componentSettings.stopTimeout * (componentSettings.names.count + 1) + .seconds(15)
        let catalog = try ProfileCatalog.load(configuration: runtime.configuration, binaryDirectory: componentSettings.binaryDirectory)
        runtime.log.info("agent profiles: \(catalog.profiles.map(\.name).joined(separator: ", ")) (from \(catalog.source))")
        agents = AgentSupervisor(runtime: runtime, catalog: catalog)
        components = ComponentSupervisor(settings: componentSettings, runtime: runtime)
        agents.trackedComponentPids = { [unowned self] in Set(self.components.components.compactMap { $0.child?.pid }) }
        try agents.start()
        try components.start()

        // Commands: a wake hint from whoever enqueued one (low latency), and a sweep as backstop.
        let wake = try WakeChannel(runDirectory: runtime.configuration.runDirectory, name: "supervisor")
        self.wake = wake
        runtime.loop.watch(fd: wake.fd) { [unowned self] _ in
            wake.drain()
            self.processCommands(runtime)
        }
        runtime.loop.schedule(after: .zero, repeating: .seconds(1)) { [unowned self] in self.processCommands(runtime) }
    }

    /// One supervisor per database: two would both execute every command.
    private func takeLock(_ runtime: DaemonRuntime) throws {
        let path = runtime.configuration.databasePath + ".supervisor.lock"
        lockFD = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw SystemError(call: "open(\(path))", errno: errno) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            throw ConfigurationError(variable: "SWITCHYARD_DB", reason: "another switchyard-supervisor already runs on \(runtime.configuration.databasePath) (lock \(path))")
        }
    }

    private func processCommands(_ runtime: DaemonRuntime) {
        if runtime.step("agent commands", { try agents.processCommands() }) {
            commandFailures = 0
        } else {
            commandFailures += 1
        }
    }

    var statusText: String {
        let agentText = "\(agents?.liveCount ?? 0) agents"
        return componentSettings.names.isEmpty ? "agents only, \(agentText)" : "\(components.summary); \(agentText)"
    }

    var isHealthy: Bool { commandFailures < 20 }

    func beginShutdown() {
        components.beginShutdown()
        agents.beginShutdown()
    }

    var isDrained: Bool { components.allSettled && agents.isDrained }
}
