import CLinux
import Glibc

/// A single-threaded event loop over poll(2): file descriptors and timers.
///
/// Why not `async` services as in swift-service-lifecycle: every daemon here is a small state
/// machine around one SQLite connection that must stay on one thread, plus a few fds (signalfd, a
/// wake socket, later the HTTP listener and agent pipes). One thread and poll(2) keep that
/// confinement obvious, add no executor hops to the dispatch path, and make the watchdog honest: the
/// WATCHDOG=1 timer runs on the same thread as the work, so a wedged step stops the pings.
public final class EventLoop {
    public typealias Handle = Int

    private struct Watch {
        var fd: Int32
        var events: Int16
        var handler: (Int16) -> Void
    }

    private struct Timer {
        var deadline: MonotonicInstant
        var interval: Duration?
        var body: () -> Void
    }

    private var watches: [Handle: Watch] = [:]
    private var timers: [Handle: Timer] = [:]
    private var nextHandle: Handle = 1
    private var stopped = false

    public init() {}

    @discardableResult
    public func watch(fd: Int32, events: Int16 = Int16(POLLIN), handler: @escaping (Int16) -> Void) -> Handle {
        let handle = nextHandle
        nextHandle += 1
        watches[handle] = Watch(fd: fd, events: events, handler: handler)
        return handle
    }

    public func setEvents(_ handle: Handle, _ events: Int16) {
        watches[handle]?.events = events
    }

    public func unwatch(_ handle: Handle) { watches[handle] = nil }

    /// Runs `body` once after `delay`, then every `interval` if given.
    @discardableResult
    public func schedule(after delay: Duration, repeating interval: Duration? = nil, _ body: @escaping () -> Void) -> Handle {
        let handle = nextHandle
        nextHandle += 1
        timers[handle] = Timer(deadline: MonotonicInstant.now().adding(delay), interval: interval, body: body)
        return handle
    }

    /// Moves a timer's next deadline (for example to run a sweep now rather than later).
    public func reschedule(_ handle: Handle, after delay: Duration) {
        timers[handle]?.deadline = MonotonicInstant.now().adding(delay)
    }

    public func cancel(_ handle: Handle) { timers[handle] = nil }

    public func stop() { stopped = true }
    public var isStopped: Bool { stopped }

    /// Runs until `stop()`.
    public func run() {
        stopped = false
        while !stopped { runOnce(maximumWait: nil) }
    }

    /// One poll and the handlers and timers that are due.
    public func runOnce(maximumWait: Duration?) {
        let now = MonotonicInstant.now()
        var timeout: Int32 = -1
        if let next = timers.values.map(\.deadline).min() {
            let wait = next > now ? next.duration(since: now) : .zero
            // Round up so a timer never spins on a 0 ms poll just before its deadline.
            timeout = Int32(min((wait.nanosecondsClamped + 999_999) / 1_000_000, UInt64(Int32.max)))
        }
        if let maximumWait {
            let cap = Int32(maximumWait.millisecondsClamped)
            timeout = timeout < 0 ? cap : min(timeout, cap)
        }
        let entries = watches.sorted { $0.key < $1.key }
        var fds = entries.map { pollfd(fd: $0.value.fd, events: $0.value.events, revents: 0) }
        let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeout) }
        if ready < 0 && errno != EINTR {
            fatalError("poll failed: errno \(errno)")  // EFAULT/EINVAL: a programming error.
        }
        if ready > 0 {
            for (index, entry) in entries.enumerated() where fds[index].revents != 0 {
                // A handler may have removed this watch (or others) in the meantime.
                guard watches[entry.key] != nil else { continue }
                entry.value.handler(fds[index].revents)
            }
        }
        fireDueTimers()
    }

    private func fireDueTimers() {
        let now = MonotonicInstant.now()
        let due = timers.filter { $0.value.deadline <= now }.sorted { $0.value.deadline < $1.value.deadline }
        for (handle, timer) in due {
            guard timers[handle] != nil else { continue }
            if let interval = timer.interval {
                timers[handle]?.deadline = now.adding(interval)
            } else {
                timers[handle] = nil
            }
            timer.body()
        }
    }
}

@available(*, unavailable)
extension EventLoop: Sendable {}
