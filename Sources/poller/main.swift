import Shared

// switchyard-poller: dispatches claimed tasks to agents and turns agent output into task state.
let runtime = DaemonRuntime.bootstrap(component: "poller")
runtime.run(PollerService())
