import Shared

/// The process that stays up: supervises the components (all-in-one mode) and owns the agents.
final class SupervisorService: DaemonService {
    private let componentSettings: ComponentSettings
    private var components: ComponentSupervisor!

    init(componentSettings: ComponentSettings) {
        self.componentSettings = componentSettings
    }

    func start(_ runtime: DaemonRuntime) throws {
        // Components stop one by one; give the whole stop room for each plus agents.
        runtime.shutdownGrace = componentSettings.stopTimeout * (componentSettings.names.count + 1) + .seconds(5)
        components = ComponentSupervisor(settings: componentSettings, runtime: runtime)
        try components.start()
    }

    var statusText: String {
        componentSettings.names.isEmpty ? "agents only" : components.summary
    }

    func beginShutdown() { components.beginShutdown() }
    var isDrained: Bool { components.allSettled }
}
