import CLinux
import Foundation
import Glibc
import Shared

/// Settings for supervising gate, scheduler and poller in all-in-one mode.
struct ComponentSettings {
    var names: [String]
    var binaryDirectory: String
    /// WATCHDOG_USEC given to each component; a component silent for this long is aborted.
    var watchdogTimeout: Duration = .seconds(10)
    /// No READY=1 within this long after a start: aborted and restarted.
    var startTimeout: Duration = .seconds(30)
    /// After SIGABRT (watchdog, start timeout), SIGKILL follows after this grace.
    var abortGrace: Duration = .seconds(2)
    /// Graceful stop: SIGTERM, then SIGKILL after this.
    var stopTimeout: Duration = .seconds(10)
    var restartPolicy = RestartPolicy()
}

/// One supervised component and where it is in its life.
final class SupervisedComponent {
    enum State {
        /// Waiting to (re)start at `until` (restart backoff; `now` for the first start).
        case waiting(until: MonotonicInstant)
        case starting(ChildProcess, since: MonotonicInstant)
        case running(ChildProcess, since: MonotonicInstant, lastPing: MonotonicInstant)
        /// SIGABRT sent (watchdog or start timeout); SIGKILL at `killAt`.
        case aborting(ChildProcess, since: MonotonicInstant, killAt: MonotonicInstant)
        /// SIGTERM sent by us (graceful stop); SIGKILL at `killAt`.
        case stopping(ChildProcess, killAt: MonotonicInstant)
        case stopped
        case failed(reason: String)
    }

    let name: String
    var state: State = .waiting(until: .now())
    var history = RestartPolicy.History()
    var restarts = 0
    var statusText = ""
    var exitWatch: EventLoop.Handle?

    init(name: String) { self.name = name }

    var child: ChildProcess? {
        switch state {
        case .starting(let c, _), .running(let c, _, _), .aborting(let c, _, _), .stopping(let c, _): return c
        case .waiting, .stopped, .failed: return nil
        }
    }

    var isSettled: Bool {
        switch state {
        case .stopped, .failed: return true
        default: return false
        }
    }

    var stateName: String {
        switch state {
        case .waiting: return "waiting"
        case .starting: return "starting"
        case .running: return "running"
        case .aborting: return "aborting"
        case .stopping: return "stopping"
        case .stopped: return "stopped"
        case .failed: return "failed"
        }
    }
}

/// Launches gate, scheduler and poller, tracks READY / STATUS / WATCHDOG from each through its
/// own notify socket (as systemd does), and restarts what dies with RestartPolicy.
final class ComponentSupervisor {
    let settings: ComponentSettings
    let runtime: DaemonRuntime
    private(set) var components: [SupervisedComponent]
    private var listener: NotifyListener?
    private var shuttingDown = false
    private var log: Logger { runtime.log }

    init(settings: ComponentSettings, runtime: DaemonRuntime) {
        self.settings = settings
        self.runtime = runtime
        self.components = settings.names.map(SupervisedComponent.init)
    }

    func start() throws {
        guard !components.isEmpty else { return }
        killLeftoversOfEarlierSupervisor()
        for component in components {
            let path = binaryPath(component.name)
            guard access(path, X_OK) == 0 else {
                throw ConfigurationError(variable: "SWITCHYARD_BIN_DIR", reason: "no executable \(path)")
            }
        }
        let listener = try NotifyListener(path: runtime.configuration.runDirectory + "/supervisor.notify")
        self.listener = listener
        runtime.loop.watch(fd: listener.fd) { [unowned self] _ in
            for message in listener.drain() { self.handle(message) }
        }
        // Deadlines (watchdog, start timeout, backoff, kill after grace) are checked on a short tick.
        let tick = min(settings.watchdogTimeout / 4, .milliseconds(100))
        runtime.loop.schedule(after: .zero, repeating: tick) { [unowned self] in self.checkDeadlines() }
    }

    func binaryPath(_ name: String) -> String { settings.binaryDirectory + "/switchyard-" + name }

    /// Components launched by an earlier supervisor of this database normally stop with it
    /// (PR_SET_PDEATHSIG). One that was stopped (SIGSTOP) when it died cannot: the signal waits,
    /// and if it froze inside a write transaction it holds the database's write lock for ever.
    /// Such leftovers are killed before anything starts: SIGKILL works on stopped processes. A
    /// process is only taken for a leftover if it is one of our components (its command), was
    /// launched by a supervisor, and uses this same state folder and database.
    private func killLeftoversOfEarlierSupervisor() {
        let env = runtime.configuration.environment
        for entry in ProcessTable.all() where entry.pid != getpid() && entry.ppid != getpid() {
            guard let comm = try? String(contentsOfFile: "/proc/\(entry.pid)/comm", encoding: .utf8),
                  components.contains(where: { comm.hasPrefix("switchyard-" + $0.name.prefix(4)) }),
                  ProcessTable.environmentValue(entry.pid, "SWITCHYARD_SUPERVISOR_PID") != nil,
                  ProcessTable.environmentValue(entry.pid, "SWITCHYARD_STATE_DIR") == env["SWITCHYARD_STATE_DIR"],
                  ProcessTable.environmentValue(entry.pid, "SWITCHYARD_DB") == env["SWITCHYARD_DB"] else { continue }
            log.warning("killing a component left over by an earlier supervisor", ["CHILD_PID": String(entry.pid),
                                                                                 "STATE": String(entry.state)])
            ProcessTable.signal(entry.pid, startTime: entry.startTime, SIGKILL)
        }
    }

    var summary: String {
        components.map { "\($0.name) \($0.stateName)" }.joined(separator: ", ")
    }

    var allSettled: Bool { components.allSatisfy(\.isSettled) }

    // MARK: Launch

    private func launch(_ component: SupervisedComponent) {
        var environment = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "MAINPID"] {
            environment[key] = nil
        }
        environment["NOTIFY_SOCKET"] = listener?.path
        // No WATCHDOG_PID: posix_spawn cannot know the pid beforehand, and without it
        // sd_watchdog_enabled(3) accepts WATCHDOG_USEC for the process that reads it.
        environment["WATCHDOG_USEC"] = String(settings.watchdogTimeout.nanosecondsClamped / 1000)
        // A Swift binary that catches SIGABRT prints a backtrace and can hang instead of dying.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        environment["SWITCHYARD_SUPERVISOR_PID"] = String(getpid())
        var request = SpawnRequest(executable: binaryPath(component.name), environment: environment)
        request.stdin = .null
        request.stdout = .inherit
        request.stderr = .inherit
        let now = MonotonicInstant.now()
        do {
            let child = try ChildProcess.spawn(request)
            component.state = .starting(child, since: now)
            component.exitWatch = runtime.loop.watch(fd: child.pidfd) { [unowned self] _ in self.childExited(component) }
            log.info("started \(component.name)", ["COMPONENT_NAME": component.name, "CHILD_PID": String(child.pid)])
        } catch {
            log.error("cannot start \(component.name): \(error)", ["COMPONENT_NAME": component.name])
            fail(component, runTime: .zero, why: "spawn failed: \(error)")
        }
    }

    // MARK: Notifications

    private func handle(_ message: NotifyListener.Message) {
        // NotifyAccess=main: only the component's main process speaks for it.
        guard let component = components.first(where: { $0.child?.pid == message.pid }) else { return }
        let now = MonotonicInstant.now()
        if let status = message.value("STATUS") { component.statusText = status }
        if message.value("READY") == "1", case .starting(let child, let since) = component.state {
            component.state = .running(child, since: since, lastPing: now)
            log.info("\(component.name) is ready", ["COMPONENT_NAME": component.name,
                                                    "STARTUP_MS": String(now.duration(since: since).millisecondsClamped)])
        }
        if message.value("WATCHDOG") == "1", case .running(let child, let since, _) = component.state {
            component.state = .running(child, since: since, lastPing: now)
        }
        if message.value("WATCHDOG") == "trigger" {
            abort(component, why: "asked for a watchdog restart")
        }
    }

    // MARK: Deadlines

    private func checkDeadlines() {
        let now = MonotonicInstant.now()
        for component in components {
            switch component.state {
            case .waiting(let until) where until <= now && !shuttingDown:
                launch(component)
            case .starting(_, let since) where now.duration(since: since) > settings.startTimeout:
                abort(component, why: "no READY=1 within \(settings.startTimeout.short)")
            case .running(_, _, let lastPing) where now.duration(since: lastPing) > settings.watchdogTimeout:
                abort(component, why: "watchdog timeout: no WATCHDOG=1 for \(now.duration(since: lastPing).short)")
            case .aborting(let child, _, let killAt) where now >= killAt,
                 .stopping(let child, let killAt) where now >= killAt:
                log.warning("\(component.name) did not exit in time: SIGKILL", ["COMPONENT_NAME": component.name])
                child.signalGroup(SIGKILL)
                child.signal(SIGKILL)
            default:
                break
            }
        }
    }

    private func abort(_ component: SupervisedComponent, why: String) {
        guard let child = component.child else { return }
        if case .aborting = component.state { return }
        log.error("\(component.name): \(why); sending SIGABRT", ["COMPONENT_NAME": component.name])
        let now = MonotonicInstant.now()
        let since: MonotonicInstant
        switch component.state {
        case .starting(_, let s), .running(_, let s, _): since = s
        default: since = now
        }
        component.state = .aborting(child, since: since, killAt: now.adding(settings.abortGrace))
        child.signal(SIGABRT)
    }

    // MARK: Exits

    private func childExited(_ component: SupervisedComponent) {
        guard let child = component.child, let status = child.reapIfExited() else { return }
        if let watch = component.exitWatch { runtime.loop.unwatch(watch) }
        component.exitWatch = nil
        // The component's own process group may hold stragglers; they go with it.
        child.signalGroup(SIGKILL)
        let now = MonotonicInstant.now()
        switch component.state {
        case .stopping:
            component.state = .stopped
            log.info("\(component.name) stopped (\(status))", ["COMPONENT_NAME": component.name])
            stopNext()
            return
        case .starting(_, let since), .running(_, let since, _), .aborting(_, let since, _):
            let runTime = now.duration(since: since)
            log.error("\(component.name) \(status) after \(runTime.short)", ["COMPONENT_NAME": component.name, "EXIT": "\(status)"])
            if shuttingDown {
                component.state = .stopped
                stopNext()
            } else if status == .exited(ExitCode.configError) || status == .exited(ExitCode.dataError) {
                // RestartPreventExitStatus=65 78: restarting cannot fix a bad configuration or database.
                fail(component, runTime: runTime, why: "exited with \(status): configuration or database error, not restarted")
            } else {
                fail(component, runTime: runTime, why: "\(status)")
            }
        default:
            break
        }
    }

    private func fail(_ component: SupervisedComponent, runTime: Duration, why: String) {
        let now = MonotonicInstant.now()
        let decision: RestartPolicy.Decision = why.contains("not restarted")
            ? .giveUp(reason: why)
            : settings.restartPolicy.recordFailure(&component.history, now: now, runTime: runTime)
        switch decision {
        case .restart(let delay):
            component.restarts += 1
            component.state = .waiting(until: now.adding(delay))
            runtime.step("record restart of \(component.name)") {
                try ComponentStore(db: runtime.db).recordRestart(name: component.name)
            }
            log.notice("restarting \(component.name) in \(delay.short)", ["COMPONENT_NAME": component.name,
                                                                    "RESTARTS": String(component.restarts)])
            if delay == .zero { launch(component) }
        case .giveUp(let reason):
            component.state = .failed(reason: reason)
            log.error("\(component.name) failed: \(reason); not restarting (restart the supervisor after fixing it)",
                      ["COMPONENT_NAME": component.name])
            runtime.step("record failure of \(component.name)") {
                try ComponentStore(db: runtime.db).markFailed(name: component.name, reason: reason)
            }
        }
    }

    // MARK: Graceful stop

    /// Stops components in reverse start order, one at a time: SIGTERM, then SIGKILL after
    /// `stopTimeout`.
    func beginShutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        for component in components {
            if case .waiting = component.state { component.state = .stopped }
        }
        stopNext()
    }

    private func stopNext() {
        guard shuttingDown else { return }
        if components.contains(where: { if case .stopping = $0.state { return true }; return false }) { return }
        guard let next = components.reversed().first(where: { $0.child != nil }) else { return }
        guard let child = next.child else { return }
        log.info("stopping \(next.name)", ["COMPONENT_NAME": next.name])
        next.state = .stopping(child, killAt: MonotonicInstant.now().adding(settings.stopTimeout))
        child.signal(SIGTERM)
    }
}
