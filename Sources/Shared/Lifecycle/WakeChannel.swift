import CLinux
import Glibc

/// Stateless wake-up hints between daemons: a unix datagram socket per listener in the run
/// directory. A hint carries no data; the database is the truth, so a lost hint (full buffer,
/// listener restarting) only delays work until the listener's fallback sweep.
public final class WakeChannel {
    public let fd: Int32
    public let path: String

    public static func path(runDirectory: String, name: String) -> String { "\(runDirectory)/\(name).wake" }

    /// Binds the listener's socket, replacing a stale one left by a killed predecessor.
    public init(runDirectory: String, name: String) throws {
        path = WakeChannel.path(runDirectory: runDirectory, name: name)
        fd = try bindDatagramSocket(path)
    }

    deinit {
        close(fd)
    }

    /// Reads and discards every pending hint; returns how many there were.
    @discardableResult
    public func drain() -> Int {
        var buffer = [UInt8](repeating: 0, count: 64)
        var count = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n >= 0 { count += 1; continue }
            if errno == EINTR { continue }
            return count
        }
    }
}

/// Sends wake hints. One socket per sender, reused; never blocks.
public final class WakeSender {
    private let fd: Int32
    private let runDirectory: String

    public init(runDirectory: String) {
        self.runDirectory = runDirectory
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Nudges `name` (for example "scheduler"). Errors are ignored on purpose: no listener, a full
    /// queue or a restarting daemon all mean the same thing, and the fallback sweep covers them.
    public func nudge(_ name: String) {
        guard fd >= 0 else { return }
        var byte: UInt8 = 1
        _ = clinux_unix_sendto(fd, WakeChannel.path(runDirectory: runDirectory, name: name), &byte, 1, Int32(MSG_DONTWAIT))
    }
}

/// A non-blocking unix datagram socket bound to `path`, replacing a stale socket file left by a
/// killed predecessor.
func bindDatagramSocket(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemError(call: "socket(AF_UNIX, SOCK_DGRAM)", errno: errno) }
    unlink(path)
    guard clinux_unix_bind(fd, path) == 0 else {
        let saved = errno
        close(fd)
        throw SystemError(call: "bind(\(path))", errno: saved)
    }
    return fd
}
