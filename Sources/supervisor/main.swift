import Shared

// switchyard-supervisor: launches and restarts the other components; owns the agent processes.
let runtime = DaemonRuntime.bootstrap(component: "supervisor")
runtime.run(SupervisorService())
