import CLinux
import Foundation
import Glibc
import Shared
import XCTest

/// A sd_notify receiver, as systemd (or the supervisor) is: a unix datagram socket with
/// SO_PASSCRED, so the sender's pid comes from the kernel, not from the message.
final class NotifyReceiver {
    let fd: Int32
    let path: String
    struct Message { let pid: pid_t; let text: String; let at: MonotonicInstant }

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, clinux_unix_bind(fd, path) == 0, clinux_enable_passcred(fd) == 0 else {
            throw SystemError(call: "notify socket", errno: errno)
        }
    }

    deinit { close(fd); unlink(path) }

    /// Waits up to `timeout` for the next datagram.
    func receive(timeout: Duration) -> Message? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout.millisecondsClamped)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var pid: pid_t = 0
        var uid: uid_t = 0
        let n = buffer.withUnsafeMutableBytes { clinux_recv_with_credentials(fd, $0.baseAddress, $0.count, &pid, &uid) }
        guard n >= 0 else { return nil }
        return Message(pid: pid, text: String(decoding: buffer[0..<Int(n)], as: UTF8.self), at: .now())
    }

    /// Collects messages until one contains `needle` or `timeout` passes.
    func waitFor(_ needle: String, timeout: Duration, into log: inout [Message]) -> Message? {
        let deadline = MonotonicInstant.now().adding(timeout)
        while MonotonicInstant.now() < deadline {
            guard let message = receive(timeout: deadline.duration(since: .now())) else { continue }
            log.append(message)
            if message.text.split(separator: "\n").contains(Substring(needle)) { return message }
        }
        return nil
    }
}

final class NotifyTests: XCTestCase {
    /// Every daemon speaks the protocol the same way; run each.
    func testEachDaemon_notifiesReadyWatchdogAndStopping() throws {
        for binary in ["switchyard-scheduler", "switchyard-poller", "switchyard-gate", "switchyard-supervisor"] {
            try checkNotifyProtocol(binary)
        }
    }

    private func checkNotifyProtocol(_ binary: String) throws {
        let sandbox = Sandbox()
        let receiver = try NotifyReceiver(path: sandbox.path + "/notify.sock")
        // 400 ms watchdog: WATCHDOG=1 is due every 200 ms (half, as sd_watchdog_enabled(3) advises).
        let child = try sandbox.start(binary, environment: sandbox.environment([
            "NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "400000",
        ]))
        var log: [NotifyReceiver.Message] = []
        let ready = receiver.waitFor("READY=1", timeout: .seconds(20), into: &log)
        XCTAssertNotNil(ready, "\(binary): READY=1; got \(log.map(\.text)); stderr: \(sandbox.read("\(binary).err"))")
        XCTAssertEqual(ready?.pid, child.pid, "\(binary): the kernel says READY came from the daemon itself")
        XCTAssertTrue(ready?.text.contains("STATUS=") ?? false, "\(binary): READY carries a STATUS")

        // The database was opened and migrated before READY.
        let db = try Database(path: sandbox.databasePath)
        XCTAssertEqual(try Migrator.currentVersion(of: db), Migrator.latestVersion)

        var pings: [MonotonicInstant] = []
        while pings.count < 6, let message = receiver.waitFor("WATCHDOG=1", timeout: .seconds(2), into: &log) {
            pings.append(message.at)
        }
        XCTAssertEqual(pings.count, 6, "\(binary): WATCHDOG=1 keeps coming")
        let gaps = zip(pings.dropFirst(), pings).map { $0.duration(since: $1) }
        // Cadence: about every 200 ms; never slower than the 400 ms the watchdog allows.
        for gap in gaps {
            XCTAssertLessThan(gap, .milliseconds(400), "\(binary): a watchdog gap of \(gap) would trip systemd")
            XCTAssertGreaterThan(gap, .milliseconds(100), "\(binary): pings at half the interval, not in a spin")
        }

        XCTAssertTrue(child.signal(SIGTERM))
        XCTAssertNotNil(receiver.waitFor("STOPPING=1", timeout: .seconds(10), into: &log), "\(binary): STOPPING=1")
        XCTAssertEqual(child.wait(timeout: .seconds(10)), .exited(0), "\(binary): graceful stop exits 0")
        let state = try db.scalarString("SELECT state FROM components WHERE name = ?1", String(binary.dropFirst("switchyard-".count)))
        XCTAssertEqual(state, "stopped")
    }

    func testNoNotifySocket_daemonStillRunsAndStops() throws {
        let sandbox = Sandbox()
        let child = try sandbox.start("switchyard-poller")
        XCTAssertTrue(waitUntil(.seconds(20)) { sandbox.read("switchyard-poller.err").contains("ready") })
        child.signal(SIGINT)
        XCTAssertEqual(child.wait(timeout: .seconds(10)), .exited(0))
    }
}
