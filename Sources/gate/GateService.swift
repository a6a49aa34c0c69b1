import Foundation
import Glibc
import Shared

/// The operators' door: the HTTP server, authentication and the routes. All on the event loop
/// thread with the gate's own database connection; preflight checks of other hosts run on a
/// background thread and come back through a mailbox.
final class GateService: DaemonService {
    private(set) var runtime: DaemonRuntime!
    private(set) var server: HTTPServer!
    private(set) var auth: Authenticator!
    private(set) var router = Router()
    private(set) var catalog: ProfileCatalog!
    private(set) var planner: DispatchPlanner!
    let startedAt = WallClock.now()
    var limits = HTTPLimits()
    let mailbox: LoopMailbox<(token: Int, response: HTTPResponse)>
    /// Requests served since start, by route and status (for /metrics).
    var requestCounts: [String: Int] = [:]
    private var failures = 0

    init() throws { mailbox = try LoopMailbox() }

    func start(_ runtime: DaemonRuntime) throws {
        self.runtime = runtime
        limits = runtime.configuration.httpLimits
        let tokens = try ControlTokens.load(runtime.configuration)
        if let path = tokens.generatedPath {
            runtime.log.notice("control token (embedded default) is in \(path)")
            FileHandle.standardError.write(Data("switchyard-gate: control token is in \(path)\n".utf8))
        }
        auth = Authenticator(tokens: tokens)
        catalog = try ProfileCatalog.load(configuration: runtime.configuration, binaryDirectory: BinaryLocation.directory)
        planner = DispatchPlanner(db: runtime.db, policy: runtime.configuration.dispatchPolicy, catalog: catalog)
        registerRoutes()
        server = HTTPServer(limits: limits, loop: runtime.loop, log: runtime.log) { [unowned self] request, info in
            self.handle(request, info)
        }
        let address = try ListenAddress.parse(runtime.configuration.gateListen)
        try server.listen(on: address)
        mailbox.attach(to: runtime.loop) { [unowned self] item in self.server.complete(token: item.token, with: item.response) }
        // The bound address (useful with port 0) for scripts and tests.
        try? (server.boundAddress + "\n").write(toFile: runtime.configuration.runDirectory + "/gate.address", atomically: true, encoding: .utf8)
        runtime.log.notice("listening on http://\(server.boundAddress) (dashboard: http://\(server.boundAddress)/dashboard)")
    }

    var statusText: String { "listening on \(server?.boundAddress ?? "?"), \(server?.connectionCount ?? 0) connections" }
    var isHealthy: Bool { failures < 50 }
    func beginShutdown() { server.stopListening() }

    private func registerRoutes() {
        registerStatusRoutes(&router)
        registerControlRoutes(&router)
        registerTaskRoutes(&router)
        registerDashboardRoutes(&router)
        registerBackupRoute(&router)
        router.add("GET", "/openapi.json", .open, "The OpenAPI 3 document of this server") { [unowned self] _ in
            .now(.json(200, self.openAPIDocument()))
        }
    }

    // MARK: Dispatching requests

    func handle(_ request: HTTPRequest, _ info: HTTPConnectionInfo) -> HTTPReply {
        let reply = route(request, info)
        if case .now(let response) = reply { count(request, response.status) }
        return reply
    }

    private func route(_ request: HTTPRequest, _ info: HTTPConnectionInfo) -> HTTPReply {
        switch router.match(method: request.method, path: request.path) {
        case .notFound:
            return .now(.error(404, "no route for \(request.path.prefix(200))"))
        case .wrongMethod(let allowed):
            var response = HTTPResponse.error(405, "method \(request.method) not allowed here")
            response.headers.append(("allow", allowed.joined(separator: ", ")))
            return .now(response)
        case .found(let route, let parameters):
            let principal = auth.authenticate(request)
            switch route.access {
            case .open:
                break
            case .read, .mutate:
                guard let principal else {
                    if request.header("accept")?.contains("text/html") == true && request.path.hasPrefix("/dashboard") {
                        return .now(HTTPResponse(status: 303, headers: [("location", "/dashboard/login")]))
                    }
                    var response = HTTPResponse.error(401, "a bearer token is required")
                    response.headers.append(("www-authenticate", "Bearer realm=\"switchyard\""))
                    return .now(response)
                }
                if route.access == .mutate {
                    guard principal.role == .control else { return .now(.error(403, "the read-only token cannot change anything")) }
                    if principal.viaSession && !Authenticator.originMatches(request) {
                        return .now(.error(403, "cross-origin request refused (Origin must match Host)"))
                    }
                }
            }
            let context = RequestContext(request: request, parameters: parameters, principal: principal, connection: info, now: WallClock.now())
            do {
                let reply = try runtime.db.withTimeout(limits.handlerTimeout) { try route.handler(context) }
                failures = 0
                return reply
            } catch let error as APIError {
                return .now(.error(error.status, error.message, code: error.code, field: error.field))
            } catch let error as IntakeError {
                switch error {
                case .invalid(let field, let reason): return .now(.error(400, reason, code: "invalid_field", field: field))
                case .conflict: return .now(.error(409, error.description, code: "idempotency_conflict", field: "idempotency_key"))
                }
            } catch let error as SQLiteError where error.isInterrupt || error.isBusy {
                runtime.log.warning("\(request.method) \(route.pattern) gave up: \(error)")
                var response = HTTPResponse.error(503, "the database is busy; try again")
                response.headers.append(("retry-after", "1"))
                return .now(response)
            } catch {
                failures += 1
                runtime.log.error("\(request.method) \(route.pattern) failed: \(error)")
                return .now(.error(500, "internal error; see the gate's journal"))
            }
        }
    }

    private func count(_ request: HTTPRequest, _ status: Int) {
        let pattern: String
        if case .found(let route, _) = router.match(method: request.method, path: request.path) { pattern = route.pattern } else { pattern = "other" }
        requestCounts["\(pattern)|\(status)", default: 0] += 1
    }

    /// Runs blocking work (preflight) on a background thread; its response arrives later.
    func deferred(_ work: @escaping @Sendable () -> HTTPResponse) -> HTTPReply {
        let token = server.makeToken()
        let mailbox = self.mailbox
        DispatchQueue.global().async { mailbox.post((token: token, response: work())) }
        return .later(token: token)
    }

    func nudge(_ name: String) { runtime.wakeSender.nudge(name) }
}
