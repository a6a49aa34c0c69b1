import Foundation
import Shared

// switchyard-supervisor: launches and restarts the other components; owns the agent processes.
//   switchyard-supervisor                         all-in-one: gate, scheduler, poller and agents
//   switchyard-supervisor --components a,b        only the named components, and agents
//   switchyard-supervisor --agents-only           agents only (production: systemd runs the rest)
let runtime = DaemonRuntime.bootstrap(component: "supervisor")
let settings: ComponentSettings
do {
    settings = try SupervisorOptions.parse(arguments: Array(CommandLine.arguments.dropFirst()),
                                          configuration: runtime.configuration)
} catch {
    runtime.log.error("\(error)")
    exit(ExitCode.configError)
}
runtime.run(SupervisorService(componentSettings: settings))
