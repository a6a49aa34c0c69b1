import CLinux
import Foundation
import Glibc

/// Brings values computed on other threads back to an event loop (an eventfd wakes it). Only
/// Sendable values cross; the loop's own state never leaves its thread.
public final class LoopMailbox<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `items` is only touched under `lock`, and `fd` is immutable.
    private let lock = NSLock()
    private var items: [Value] = []
    private let fd: Int32

    public init() throws {
        fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw SystemError(call: "eventfd", errno: errno) }
    }

    deinit { close(fd) }

    /// Thread-safe.
    public func post(_ value: Value) {
        lock.lock()
        items.append(value)
        lock.unlock()
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Delivers posted values to `handler` on the loop's thread.
    public func attach(to loop: EventLoop, _ handler: @escaping (Value) -> Void) {
        loop.watch(fd: fd) { [self] _ in
            var counter: UInt64 = 0
            _ = read(self.fd, &counter, 8)
            self.lock.lock()
            let batch = self.items
            self.items.removeAll()
            self.lock.unlock()
            for value in batch { handler(value) }
        }
    }
}
