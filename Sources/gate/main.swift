import Foundation
import Shared

// switchyard-gate: the operators' HTTP door (API, dashboard, metrics).
let runtime = DaemonRuntime.bootstrap(component: "gate")
do {
    runtime.run(try GateService())
} catch {
    runtime.log.error("cannot start: \(error)")
    exit(ExitCode.failure)
}
