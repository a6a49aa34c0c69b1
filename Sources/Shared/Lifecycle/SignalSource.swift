import CLinux
import Glibc

/// Termination signals as readable events (signalfd(2)), so shutdown is handled on the event loop
/// and not in an async-signal context.
public final class SignalSource {
    public let fd: Int32

    /// Blocks `signals` for the calling thread and every thread it creates later, and ignores
    /// SIGPIPE process-wide (a write to a closed pipe or socket then fails with EPIPE instead of
    /// killing the process). Call first thing in main, before any thread exists.
    public static func prepareProcess(blocking signals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGCHLD]) {
        signal(SIGPIPE, SIG_IGN)
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    public init(signals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGCHLD]) throws {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        let fd = signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        guard fd >= 0 else { throw SystemError(call: "signalfd", errno: errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The signals that arrived since the last call.
    public func drain() -> [Int32] {
        var received: [Int32] = []
        var info = signalfd_siginfo()
        while true {
            let n = read(fd, &info, MemoryLayout<signalfd_siginfo>.size)
            if n == MemoryLayout<signalfd_siginfo>.size {
                received.append(Int32(info.ssi_signo))
                continue
            }
            if n < 0 && errno == EINTR { continue }
            return received
        }
    }
}

/// A failed system call: the call's name and errno. Programming errors (EBADF, EFAULT) are not
/// thrown: they crash where they happen.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let call: String
    public let errno: Int32
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
