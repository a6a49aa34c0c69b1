import CLinux
import Foundation
import Glibc

/// What a daemon (gate, scheduler, poller, supervisor) plugs into the shared runtime.
public protocol DaemonService: AnyObject {
    /// Registers fds and timers on the runtime's loop; the database is open and migrated.
    /// Throwing fails the start (the process exits non-zero before READY=1).
    func start(_ runtime: DaemonRuntime) throws
    /// A short human summary for STATUS= and the components table.
    var statusText: String { get }
    /// True while the service's work makes progress (for example its last database step
    /// succeeded). While false, WATCHDOG=1 is withheld, so systemd or the supervisor restarts us.
    var isHealthy: Bool { get }
    /// Graceful shutdown: stop taking new work; finish the step in progress.
    func beginShutdown()
    /// True once nothing is left to finish after `beginShutdown()`.
    var isDrained: Bool { get }
}

extension DaemonService {
    public var isHealthy: Bool { true }
    public func beginShutdown() {}
    public var isDrained: Bool { true }
}

/// Process exit codes (sysexits.h): systemd units list 65 and 78 in RestartPreventExitStatus=, so
/// a bad configuration or a too-new database is reported once instead of restarted in a loop.
public enum ExitCode {
    public static let success: Int32 = 0
    public static let failure: Int32 = 1
    public static let dataError: Int32 = 65
    public static let configError: Int32 = 78
}

/// The start-up, readiness, watchdog and shutdown sequence every Switchyard daemon shares.
public final class DaemonRuntime {
    public let component: String
    public let configuration: Configuration
    public let log: Logger
    public let db: Database
    public let loop = EventLoop()
    public let notifier = ServiceNotifier()
    public let wakeSender: WakeSender
    public private(set) var incarnation: Int64 = 0
    public private(set) var isShuttingDown = false

    /// How long a graceful stop may take before the loop ends anyway.
    public var shutdownGrace: Duration = .seconds(10)
    /// How often the components row is refreshed (independent of the watchdog cadence, which may
    /// be much shorter, to keep idle writes rare).
    public var heartbeatInterval: Duration = .seconds(5)

    private var signals: SignalSource?
    /// Extra signal handlers (the supervisor reaps adopted orphans on SIGCHLD).
    public var signalHandlers: [Int32: () -> Void] = [:]
    private var lastHeartbeat = MonotonicInstant(nanoseconds: 0)
    private var lastStatus = ""

    /// Prepares the process (signals), loads the configuration, opens and migrates the database.
    /// On failure prints one clear line and exits with a sysexits code.
    public static func bootstrap(component: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> DaemonRuntime {
        SignalSource.prepareProcess()
        dieWithSupervisor(environment)
        let configuration: Configuration
        do {
            configuration = try Configuration.load(environment: environment)
        } catch {
            Logger(component: component, target: .auto).error("\(error)")
            exit(ExitCode.configError)
        }
        let log = Logger(component: component, target: configuration.logTarget, level: configuration.logLevel)
        do {
            return try DaemonRuntime(component: component, configuration: configuration, log: log)
        } catch let error as SchemaError {
            log.error("cannot start: \(error)")
            exit(ExitCode.dataError)
        } catch let error as ConfigurationError {
            log.error("cannot start: \(error)")
            exit(ExitCode.configError)
        } catch {
            log.error("cannot start: \(error)")
            exit(ExitCode.failure)
        }
    }

    /// A component launched by switchyard-supervisor stops when the supervisor dies (SIGTERM
    /// through PR_SET_PDEATHSIG, prctl(2)), so a restarted supervisor never finds a second copy
    /// of the scheduler or poller still running. Under systemd the variable is absent.
    static func dieWithSupervisor(_ environment: [String: String]) {
        guard let raw = environment["SWITCHYARD_SUPERVISOR_PID"], let supervisor = pid_t(raw) else { return }
        _ = clinux_set_pdeathsig(SIGTERM)
        // The supervisor may have died between our spawn and the prctl: then no signal will come.
        if getppid() != supervisor { exit(ExitCode.success) }
    }

    init(component: String, configuration: Configuration, log: Logger) throws {
        self.component = component
        self.configuration = configuration
        self.log = log
        try DaemonRuntime.makeDirectory(configuration.stateDirectory, variable: "SWITCHYARD_STATE_DIR")
        try DaemonRuntime.makeDirectory((configuration.databasePath as NSString).deletingLastPathComponent, variable: "SWITCHYARD_DB")
        try DaemonRuntime.makeDirectory(configuration.runDirectory, variable: "SWITCHYARD_RUN_DIR")
        db = try Database(path: configuration.databasePath, options: configuration.databaseOptions)
        let applied = try Migrator.migrate(db)
        for migration in applied {
            log.notice("applied schema migration \(migration.version) (\(migration.name))", ["SCHEMA_VERSION": String(migration.version)])
        }
        try DaemonRuntime.applyCreationDefaults(db: db, mode: configuration.mode, log: log)
        wakeSender = WakeSender(runDirectory: configuration.runDirectory)
    }

    static func makeDirectory(_ path: String, variable: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o750])
        } catch {
            throw ConfigurationError(variable: variable, reason: "cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    /// A production database starts paused in maintenance mode (the migration's defaults). The
    /// embedded default is for trying Switchyard on one machine: the first daemon to open a new
    /// embedded database turns on automatic and live dispatch and unpauses it. Only once, when the
    /// database is new, so an operator's later pause is never undone by a restart.
    static func applyCreationDefaults(db: Database, mode: DeploymentMode, log: Logger) throws {
        try db.write {
            let meta = MetaStore(db: db)
            guard try meta.setIfAbsent("created_mode", mode.rawValue) else { return }
            try meta.setIfAbsent("created_at", Timestamp.iso8601(WallClock.now()))
            if mode == .embedded {
                try ControlStore(db: db).update(paused: false, maintenanceMode: false, autoDispatch: true,
                                                liveDispatchEnabled: true, by: "switchyard", reason: "embedded default",
                                                action: "bootstrap_embedded")
                log.notice("new embedded database: dispatch is unpaused and automatic")
            } else {
                log.notice("new production database: paused, in maintenance mode; resume it when ready")
            }
        }
    }

    /// Starts the service, announces READY=1, runs the loop until a graceful stop completes, then
    /// exits the process with status 0.
    public func run(_ service: DaemonService) -> Never {
        do {
            let signals = try SignalSource()
            self.signals = signals
            loop.watch(fd: signals.fd) { [unowned self] _ in
                for signal in signals.drain() { self.handleSignal(signal, service: service) }
            }
            incarnation = try ComponentStore(db: db).registerStart(
                name: component, pid: getpid(), supervisedBy: notifier.isSupervised ? "notify" : nil)
            try service.start(self)
        } catch {
            log.error("cannot start: \(error)")
            // Configuration problems (settings, profiles, tokens) exit 78: a restart cannot fix them.
            exit(error is ConfigurationError || error is ProfileError ? ExitCode.configError : ExitCode.failure)
        }
        lastStatus = service.statusText
        try? ComponentStore(db: db).update(name: component, incarnation: incarnation, state: "ready", statusText: lastStatus)
        notifier.ready(status: lastStatus)
        log.notice("ready", ["INCARNATION": String(incarnation), "PID": String(getpid())])

        // The watchdog runs on the loop thread, so pings stop when the loop wedges. Without a
        // watchdog the same timer keeps the components row fresh.
        let tick = notifier.watchdogInterval.map { min($0, heartbeatInterval) } ?? heartbeatInterval
        loop.schedule(after: .zero, repeating: tick) { [unowned self] in self.watchdogTick(service) }
        loop.run()

        notifier.stopping(status: "stopped")
        try? ComponentStore(db: db).update(name: component, incarnation: incarnation, state: "stopped", statusText: "stopped")
        log.notice("stopped", db.writeStatistics.fields + ["DB_PAGES_WRITTEN": String(db.pagesWritten)])
        for entry in db.statementProfile.prefix(25) {
            log.notice("sql profile", ["SQL_CALLS": String(entry.calls), "SQL_TOTAL_US": String(entry.nanoseconds / 1_000),
                                       "SQL_MEAN_US": String(entry.nanoseconds / 1_000 / UInt64(entry.calls)),
                                       "SQL": entry.sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")])
        }
        exit(ExitCode.success)
    }

    private func watchdogTick(_ service: DaemonService) {
        guard service.isHealthy else {
            log.warning("unhealthy: withholding WATCHDOG=1", ["STATUS": service.statusText])
            return
        }
        notifier.watchdog()
        let status = service.statusText
        let changed = status != lastStatus
        if changed {
            notifier.status(status)
            lastStatus = status
        }
        let now = MonotonicInstant.now()
        if changed || now.duration(since: lastHeartbeat) >= heartbeatInterval {
            lastHeartbeat = now
            do {
                try ComponentStore(db: db).update(name: component, incarnation: incarnation,
                                                  statusText: status, watchdog: true)
            } catch {
                log.warning("cannot record heartbeat: \(error)")
            }
        }
    }

    private func handleSignal(_ signal: Int32, service: DaemonService) {
        if let handler = signalHandlers[signal] {
            handler()
            return
        }
        if signal == SIGCHLD { return }
        if signal == SIGHUP {
            log.info("SIGHUP ignored: restart the component to reload its configuration")
            return
        }
        if isShuttingDown {
            log.warning("second termination signal: stopping now")
            loop.stop()
            return
        }
        isShuttingDown = true
        log.notice("graceful stop requested", ["SIGNAL": String(signal)])
        notifier.stopping(status: "stopping: finishing the current step")
        try? ComponentStore(db: db).update(name: component, incarnation: incarnation, state: "stopping", statusText: "stopping")
        service.beginShutdown()
        let deadline = MonotonicInstant.now().adding(shutdownGrace)
        // Check for drain right away and then briefly until the grace runs out.
        loop.schedule(after: .zero, repeating: .milliseconds(20)) { [unowned self] in
            if service.isDrained || MonotonicInstant.now() >= deadline {
                if !service.isDrained { self.log.warning("graceful stop timed out; stopping with work unfinished") }
                self.loop.stop()
            }
        }
    }

    /// Runs a unit of work and reports its failure as a log line (the next tick retries).
    /// Returns false when it failed.
    @discardableResult
    public func step(_ what: String, _ body: () throws -> Void) -> Bool {
        do {
            try body()
            return true
        } catch {
            log.error("\(what) failed: \(error)")
            return false
        }
    }
}

@available(*, unavailable)
extension DaemonRuntime: Sendable {}
