import Shared

// switchyard-scheduler: decides when a queued task may run and on which agent profile.
let runtime = DaemonRuntime.bootstrap(component: "scheduler")
runtime.run(SchedulerService())
