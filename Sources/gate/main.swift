import Shared

// switchyard-gate: the operators' HTTP door (API, dashboard, metrics).
let runtime = DaemonRuntime.bootstrap(component: "gate")
runtime.run(GateService())
