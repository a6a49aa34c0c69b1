import CLinux
import Glibc

/// The receiving end of sd_notify(3), as systemd implements it for its services: a unix datagram
/// socket with SO_PASSCRED, so the sender's pid comes from the kernel's credentials and cannot be
/// forged in the message text.
public final class NotifyListener {
    public let fd: Int32
    public let path: String

    public struct Message: Sendable, Equatable {
        public let pid: pid_t
        /// KEY=VALUE assignments, in order (sd_notify(3): newline-separated).
        public let assignments: [(key: String, value: String)]

        public static func == (a: Message, b: Message) -> Bool {
            a.pid == b.pid && a.assignments.map(\.key) == b.assignments.map(\.key)
                && a.assignments.map(\.value) == b.assignments.map(\.value)
        }

        public func value(_ key: String) -> String? { assignments.last { $0.key == key }?.value }
    }

    public init(path: String) throws {
        self.path = path
        let fd = try bindDatagramSocket(path)
        guard clinux_enable_passcred(fd) == 0 else {
            let saved = errno
            close(fd)
            throw SystemError(call: "setsockopt(SO_PASSCRED)", errno: saved)
        }
        // Enlarge the receive buffer: a burst of WATCHDOG=1 from many children must not be dropped.
        var size: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        self.fd = fd
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Every pending message. Malformed or oversized datagrams are skipped.
    public func drain() -> [Message] {
        var messages: [Message] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var pid: pid_t = 0
            var uid: uid_t = 0
            let n = buffer.withUnsafeMutableBytes { clinux_recv_with_credentials(fd, $0.baseAddress, $0.count, &pid, &uid) }
            if n == -2 { continue }  // truncated: not a message we can trust
            if n < 0 {
                if errno == EINTR { continue }
                return messages
            }
            guard pid > 0 else { continue }  // no credentials: cannot attribute it
            messages.append(Message(pid: pid, assignments: Self.parse(buffer[0..<Int(n)])))
        }
    }

    static func parse(_ bytes: ArraySlice<UInt8>) -> [(key: String, value: String)] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line -> (key: String, value: String)? in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            return (key: String(parts[0]), value: String(parts[1]))
        }
    }
}

@available(*, unavailable)
extension NotifyListener: Sendable {}
