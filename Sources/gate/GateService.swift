import Shared

/// The HTTP server arrives in step 4; the gate already opens, migrates and reports its state.
final class GateService: DaemonService {
    func start(_ runtime: DaemonRuntime) throws {}
    var statusText: String { "listening on nothing yet" }
}
