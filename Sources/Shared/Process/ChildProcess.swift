import CLinux
import Glibc

/// How a child's standard stream is connected.
public enum StandardStream: Sendable, Equatable {
    case inherit
    case null
    /// A new pipe; the parent's end is available on the `ChildProcess`.
    case pipe
    /// An existing descriptor of the parent, dup'ed onto the stream.
    case descriptor(Int32)
}

public struct SpawnRequest: Sendable {
    public var executable: String
    /// argv, without argv[0] (the executable path is used as argv[0]).
    public var arguments: [String]
    /// The child's entire environment: nothing of the parent's leaks in unless put here.
    public var environment: [String: String]
    public var workingDirectory: String?
    public var stdin: StandardStream = .null
    public var stdout: StandardStream = .inherit
    public var stderr: StandardStream = .inherit
    /// setsid(2) in the child: pid = pgid = sid, so the whole tree can be signalled as a group and
    /// a terminal's signals do not reach it.
    public var newSession = true

    public init(executable: String, arguments: [String] = [], environment: [String: String] = [:],
                workingDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }
}

public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }

    public var isSuccess: Bool { self == .exited(0) }
}

/// Resource usage of a reaped child (getrusage(2) fields that matter to an operator).
public struct ResourceUsage: Sendable, Equatable {
    public var userSeconds: Double
    public var systemSeconds: Double
    public var maxRSSKiB: Int

    public var json: JSON {
        ["user_seconds": .double(userSeconds), "system_seconds": .double(systemSeconds), "max_rss_kib": .int(Int64(maxRSSKiB))]
    }
}

/// A child started with posix_spawn: clean signal mask, default dispositions, its own session,
/// only the requested descriptors inherited (close-from 3), a pidfd held from the start.
///
/// Not Foundation.Process: on Linux it leaks the calling thread's blocked signals and its own
/// descriptors into children, and signals the pid only (../shared/notes/swift-on-linux.md).
public final class ChildProcess {
    public let pid: pid_t
    /// A pidfd (pidfd_open(2)): readable when the child exits; signals through it cannot hit a
    /// recycled pid.
    public let pidfd: Int32
    public private(set) var stdinFD: Int32?
    public private(set) var stdoutFD: Int32?
    public private(set) var stderrFD: Int32?
    public private(set) var exitStatus: ExitStatus?
    public private(set) var resourceUsage: ResourceUsage?

    private init(pid: pid_t, pidfd: Int32, stdin: Int32?, stdout: Int32?, stderr: Int32?) {
        self.pid = pid
        self.pidfd = pidfd
        self.stdinFD = stdin
        self.stdoutFD = stdout
        self.stderrFD = stderr
    }

    deinit {
        for fd in [stdinFD, stdoutFD, stderrFD, pidfd >= 0 ? pidfd : nil] { if let fd { close(fd) } }
    }

    public static func spawn(_ request: SpawnRequest) throws -> ChildProcess {
        let path = try resolve(request.executable, environment: request.environment)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var parentEnds: [Int32?] = [nil, nil, nil]
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        func cleanupParentEnds() { for case let fd? in parentEnds { close(fd) } }

        for (target, stream) in [(Int32(0), request.stdin), (1, request.stdout), (2, request.stderr)] {
            switch stream {
            case .inherit:
                break
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .descriptor(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .pipe:
                var fds: [Int32] = [-1, -1]
                guard clinux_pipe2(&fds, O_CLOEXEC) == 0 else {
                    let saved = errno
                    cleanupParentEnds()
                    throw SystemError(call: "pipe2", errno: saved)
                }
                let (childEnd, parentEnd) = target == 0 ? (fds[0], fds[1]) : (fds[1], fds[0])
                childEnds.append(childEnd)
                parentEnds[Int(target)] = parentEnd
                // dup2 clears FD_CLOEXEC on the target, so only the stream survives exec.
                posix_spawn_file_actions_adddup2(&actions, childEnd, target)
            }
        }
        clinux_spawn_addclosefrom(&actions, 3)
        if let directory = request.workingDirectory {
            clinux_spawn_addchdir(&actions, directory)
        }

        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if request.newSession { flags |= clinux_spawn_setsid_flag() }
        posix_spawnattr_setflags(&attributes, flags)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        // Every signal to its default disposition: we ignore SIGPIPE, a child must not inherit that.
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        sigdelset(&allSignals, SIGKILL)
        sigdelset(&allSignals, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)

        let argv = ([path] + request.arguments).map { strdup($0) } + [nil]
        let envp = request.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            cleanupParentEnds()
            throw SystemError(call: "posix_spawn(\(path))", errno: rc)
        }
        let pidfd = clinux_pidfd_open(pid, 0)
        if pidfd >= 0 { _ = clinux_set_cloexec(pidfd) }
        for case let fd? in parentEnds { _ = clinux_set_nonblocking(fd) }
        return ChildProcess(pid: pid, pidfd: pidfd, stdin: parentEnds[0], stdout: parentEnds[1], stderr: parentEnds[2])
    }

    /// Finds `executable` in the child's PATH (or the parent's) when it has no slash.
    static func resolve(_ executable: String, environment: [String: String]) throws -> String {
        if executable.contains("/") {
            guard access(executable, X_OK) == 0 else { throw SystemError(call: "access(\(executable))", errno: errno) }
            return executable
        }
        let searchPath = environment["PATH"] ?? String(cString: getenv("PATH") ?? strdup("/usr/local/bin:/usr/bin:/bin"))
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(executable)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw SystemError(call: "lookup of \(executable) in PATH", errno: ENOENT)
    }

    // MARK: Signals

    /// Signals the process itself, through the pidfd so a recycled pid can never be hit.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        guard exitStatus == nil else { return false }
        if pidfd >= 0 { return clinux_pidfd_send_signal(pidfd, signal) == 0 }
        return kill(pid, signal) == 0
    }

    /// Signals the child's process group (its session, when spawned with `newSession`).
    /// Safe while the child is unreaped: its pid, and so the group id, cannot be reused yet.
    @discardableResult
    public func signalGroup(_ signal: Int32) -> Bool {
        kill(-pid, signal) == 0
    }

    // MARK: Waiting

    /// Reaps the child if it has exited. Never blocks.
    @discardableResult
    public func reapIfExited() -> ExitStatus? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let rc = wait4(pid, &status, WNOHANG, &usage)
            if rc == pid {
                let result: ExitStatus = clinux_wifsignaled(status) != 0
                    ? .signaled(clinux_wtermsig(status)) : .exited(clinux_wexitstatus(status))
                exitStatus = result
                resourceUsage = ResourceUsage(
                    userSeconds: Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
                    systemSeconds: Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6,
                    maxRSSKiB: Int(usage.ru_maxrss))
                return result
            }
            if rc < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// Waits until the child exits or `timeout` passes. Returns nil on timeout.
    public func wait(timeout: Duration? = nil) -> ExitStatus? {
        let deadline = timeout.map { MonotonicInstant.now().adding($0) }
        while true {
            if let status = reapIfExited() { return status }
            var wait: Int32 = -1
            if let deadline {
                let now = MonotonicInstant.now()
                if now >= deadline { return nil }
                wait = Int32(max(1, deadline.duration(since: now).millisecondsClamped))
            }
            if pidfd >= 0 {
                var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&entry, 1, wait)
            } else {
                usleep(1000)
            }
        }
    }

    /// The stop ladder: SIGTERM to the group, wait `grace`, SIGKILL to the group, wait. Always
    /// ends (SIGKILL cannot be caught).
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) -> ExitStatus {
        if let status = reapIfExited() { return status }
        signalGroup(SIGTERM)
        signal(SIGTERM)
        if let status = wait(timeout: grace) { return status }
        signalGroup(SIGKILL)
        signal(SIGKILL)
        return wait(timeout: nil)!
    }

    // MARK: Streams

    /// Closes the parent's end of stdin: the child reads EOF.
    public func closeStdin() {
        if let fd = stdinFD { close(fd); stdinFD = nil }
    }

    public func closeStdout() {
        if let fd = stdoutFD { close(fd); stdoutFD = nil }
    }

    public func closeStderr() {
        if let fd = stderrFD { close(fd); stderrFD = nil }
    }
}

@available(*, unavailable)
extension ChildProcess: Sendable {}
