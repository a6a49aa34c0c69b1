import CSystemd
import Glibc

/// sd_notify(3) for a component: READY=1, STATUS=, WATCHDOG=1, STOPPING=1. The same calls work
/// under systemd and under switchyard-supervisor, which provides NOTIFY_SOCKET and WATCHDOG_USEC
/// the way systemd does. With no NOTIFY_SOCKET, sd_notify returns 0 and does nothing.
public struct ServiceNotifier: Sendable {
    /// The interval at which WATCHDOG=1 must be sent: half of WATCHDOG_USEC (sd_watchdog_enabled(3)
    /// recommends half), or nil when no watchdog is armed for this process.
    public let watchdogInterval: Duration?

    public init() {
        var usec: UInt64 = 0
        // sd_watchdog_enabled checks WATCHDOG_PID against getpid(), so a child that inherited the
        // variables does not ping on its parent's behalf.
        if sd_watchdog_enabled(0, &usec) > 0, usec > 0 {
            watchdogInterval = .microseconds(Int64(usec / 2))
        } else {
            watchdogInterval = nil
        }
    }

    public var isSupervised: Bool { getenv("NOTIFY_SOCKET") != nil }

    public func ready(status: String) { send("READY=1\nSTATUS=\(Self.clean(status))\nMAINPID=\(getpid())") }
    public func status(_ text: String) { send("STATUS=\(Self.clean(text))") }
    public func watchdog() { send("WATCHDOG=1") }
    public func stopping(status: String = "stopping") { send("STOPPING=1\nSTATUS=\(Self.clean(status))") }

    private func send(_ message: String) {
        _ = sd_notify(0, message)
    }

    /// STATUS= is one line.
    static func clean(_ text: String) -> String {
        String(text.prefix(200)).replacingOccurrences(of: "\n", with: " ")
    }
}
