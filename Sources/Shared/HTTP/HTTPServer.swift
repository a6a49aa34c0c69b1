import CLinux
import Glibc

/// What a handler returns: a response now, or a promise to deliver one later through
/// `HTTPServer.complete(token:with:)` (for work that must not block the loop, such as preflight
/// checks of another host).
public enum HTTPReply {
    case now(HTTPResponse)
    case later(token: Int)
}

public struct HTTPConnectionInfo: Sendable {
    public let id: Int
    public let peer: String
}

/// An HTTP/1.1 server on the daemon's event loop: non-blocking sockets, keep-alive, pipelined
/// requests answered in order, and limits that keep slow or idle clients from tying it up.
public final class HTTPServer {
    public typealias Handler = (HTTPRequest, HTTPConnectionInfo) -> HTTPReply

    private final class Connection {
        let id: Int
        let fd: Int32
        let peer: String
        var input: [UInt8] = []
        var output: [UInt8] = []
        var outputOffset = 0
        var closeAfterWrite = false
        var awaitingToken: Int?
        var watch: EventLoop.Handle?
        /// When the request head being read must be complete (set by its first byte).
        var headDeadline: MonotonicInstant?
        var lastActivity = MonotonicInstant.now()
        var peerClosed = false
        /// After an error answer: our side is shut down, the client's remaining upload is read
        /// and discarded until this deadline, so it can read our answer instead of a reset.
        var lingerUntil: MonotonicInstant?
        var lingerBytes = 0

        init(id: Int, fd: Int32, peer: String) {
            self.id = id
            self.fd = fd
            self.peer = peer
        }
    }

    public let limits: HTTPLimits
    private let loop: EventLoop
    private let log: Logger
    private let handler: Handler
    private var listenFD: Int32 = -1
    private var connections: [Int: Connection] = [:]
    private var nextID = 1
    private var nextToken = 1
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    public private(set) var boundAddress = ""
    /// Connections answered 503 and closed because the cap was reached.
    public private(set) var rejectedConnections = 0

    public init(limits: HTTPLimits, loop: EventLoop, log: Logger, handler: @escaping Handler) {
        self.limits = limits
        self.loop = loop
        self.log = log
        self.handler = handler
    }

    deinit {
        for connection in connections.values { close(connection.fd) }
        if listenFD >= 0 { close(listenFD) }
    }

    public var connectionCount: Int { connections.count }

    /// A token for a `.later` reply.
    public func makeToken() -> Int {
        defer { nextToken += 1 }
        return nextToken
    }

    // MARK: Listening

    public func listen(on address: ListenAddress) throws {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        _ = clinux_set_reuseaddr(fd)
        var rc: Int32
        if address.isIPv6 {
            _ = clinux_set_v6only(fd, 1)
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = address.port.bigEndian
            inet_pton(AF_INET6, address.host, &addr.sin6_addr)
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = address.port.bigEndian
            inet_pton(AF_INET, address.host, &addr.sin_addr)
            rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0 else {
            let saved = errno
            close(fd)
            throw SystemError(call: "bind(\(address.host):\(address.port))", errno: saved)
        }
        guard Glibc.listen(fd, 1024) == 0 else {
            let saved = errno
            close(fd)
            throw SystemError(call: "listen", errno: saved)
        }
        listenFD = fd
        boundAddress = Self.localAddress(fd, ipv6: address.isIPv6)
        loop.watch(fd: fd) { [unowned self] _ in self.acceptAll() }
        loop.schedule(after: .milliseconds(250), repeating: .milliseconds(250)) { [unowned self] in self.enforceTimeouts() }
    }

    static func localAddress(_ fd: Int32, ipv6: Bool) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        var text = [CChar](repeating: 0, count: 64)
        if ipv6 {
            return withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addr in
                    var a = addr.pointee.sin6_addr
                    inet_ntop(AF_INET6, &a, &text, 64)
                    return "[\(cString(text))]:\(UInt16(bigEndian: addr.pointee.sin6_port))"
                }
            }
        }
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addr in
                var a = addr.pointee.sin_addr
                inet_ntop(AF_INET, &a, &text, 64)
                return "\(cString(text)):\(UInt16(bigEndian: addr.pointee.sin_port))"
            }
        }
    }

    /// Stops accepting; open connections finish their current exchange.
    public func stopListening() {
        guard listenFD >= 0 else { return }
        close(listenFD)
        listenFD = -1
    }

    private func acceptAll() {
        while listenFD >= 0 {
            let fd = clinux_accept4(listenFD, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EAGAIN: return
                case EMFILE, ENFILE:
                    log.warning("out of file descriptors: not accepting for now")
                    return
                default:
                    log.warning("accept failed: \(String(cString: strerror(errno)))")
                    return
                }
            }
            if connections.count >= limits.maxConnections {
                // Over the cap: a short answer, then close. Best effort, never blocks.
                rejectedConnections += 1
                let bytes = HTTPResponse.error(503, "too many connections", close: true).serialized(keepAlive: false)
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                close(fd)
                continue
            }
            _ = clinux_set_nodelay(fd)
            let connection = Connection(id: nextID, fd: fd, peer: Self.peerAddress(fd))
            nextID += 1
            connections[connection.id] = connection
            connection.watch = loop.watch(fd: fd) { [unowned self, unowned connection] events in self.serviceEvents(connection, events) }
        }
    }

    static func peerAddress(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } }
        var text = [CChar](repeating: 0, count: 64)
        if storage.ss_family == sa_family_t(AF_INET6) {
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addr in
                var a = addr.pointee.sin6_addr
                inet_ntop(AF_INET6, &a, &text, 64)
                return cString(text)
            } }
        }
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addr in
            var a = addr.pointee.sin_addr
            inet_ntop(AF_INET, &a, &text, 64)
            return cString(text)
        } }
    }

    // MARK: Connections

    private func serviceEvents(_ connection: Connection, _ events: Int16) {
        if events & Int16(POLLOUT) != 0 { flush(connection) }
        if events & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readAvailable(connection) }
    }

    private func readAvailable(_ connection: Connection) {
        guard connections[connection.id] != nil else { return }
        if connection.lingerUntil != nil {
            drainLingering(connection)
            return
        }
        // Enough for one maximal request; a client sending more than that is refused by the parser.
        let cap = limits.requestLineBytes + limits.headerBytes + limits.bodyBytes + 65_536
        while connection.input.count < cap {
            let n = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                if connection.input.isEmpty && connection.headDeadline == nil {
                    connection.headDeadline = MonotonicInstant.now().adding(limits.headerReadTimeout)
                }
                connection.input.append(contentsOf: buffer[0..<n])
                connection.lastActivity = .now()
                continue
            }
            if n == 0 { connection.peerClosed = true; break }
            if errno == EINTR { continue }
            if errno == EAGAIN { break }
            closeConnection(connection)
            return
        }
        processInput(connection)
        if connection.peerClosed && connection.awaitingToken == nil && connection.output.isEmpty {
            closeConnection(connection)
        }
    }

    /// Parses and answers the next request, if complete and nothing is in flight.
    private func processInput(_ connection: Connection) {
        guard connections[connection.id] != nil, connection.awaitingToken == nil, connection.output.isEmpty,
              !connection.input.isEmpty else { return }
        switch HTTPParser.parse(connection.input, limits: limits) {
        case .incomplete:
            if connection.peerClosed { closeConnection(connection) }
        case .failed(let error):
            log.debug("bad request from \(connection.peer): \(error)")
            connection.input.removeAll()
            respond(connection, HTTPResponse.error(error.status, error.reason, close: true), keepAlive: false, head: false)
        case .complete(let request, let consumed):
            connection.input.removeFirst(consumed)
            connection.headDeadline = connection.input.isEmpty ? nil : MonotonicInstant.now().adding(limits.headerReadTimeout)
            let info = HTTPConnectionInfo(id: connection.id, peer: connection.peer)
            switch handler(request, info) {
            case .now(let response):
                respond(connection, response, keepAlive: request.keepAlive, head: request.method == "HEAD")
            case .later(let token):
                connection.awaitingToken = token
                pendingKeepAlive[token] = (connection.id, request.keepAlive, request.method == "HEAD")
            }
        }
    }

    private var pendingKeepAlive: [Int: (connection: Int, keepAlive: Bool, head: Bool)] = [:]

    /// Delivers a `.later` reply. A connection that went away meanwhile is simply gone.
    public func complete(token: Int, with response: HTTPResponse) {
        guard let pending = pendingKeepAlive.removeValue(forKey: token), let connection = connections[pending.connection],
              connection.awaitingToken == token else { return }
        connection.awaitingToken = nil
        respond(connection, response, keepAlive: pending.keepAlive, head: pending.head)
    }

    private func respond(_ connection: Connection, _ response: HTTPResponse, keepAlive: Bool, head: Bool) {
        let keep = keepAlive && !response.closeConnection && !connection.peerClosed
        connection.output = response.serialized(keepAlive: keep, head: head)
        connection.outputOffset = 0
        connection.closeAfterWrite = !keep
        flush(connection)
    }

    private func flush(_ connection: Connection) {
        guard connections[connection.id] != nil else { return }
        while connection.outputOffset < connection.output.count {
            let n = connection.output.withUnsafeBytes { raw in
                // MSG_NOSIGNAL: a peer that vanished gives EPIPE here, never SIGPIPE.
                send(connection.fd, raw.baseAddress! + connection.outputOffset, raw.count - connection.outputOffset,
                     Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n > 0 { connection.outputOffset += n; connection.lastActivity = .now(); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                if let watch = connection.watch { loop.setEvents(watch, Int16(POLLIN | POLLOUT)) }
                return
            }
            closeConnection(connection)
            return
        }
        connection.output.removeAll(keepingCapacity: true)
        connection.outputOffset = 0
        if let watch = connection.watch { loop.setEvents(watch, Int16(POLLIN)) }
        if connection.closeAfterWrite {
            if connection.peerClosed {
                closeConnection(connection)
            } else {
                // Lingering close (as nginx's lingering_close): closing with unread input makes
                // the kernel send RST, which can destroy the answer before the client reads it.
                shutdown(connection.fd, Int32(SHUT_WR))
                connection.lingerUntil = MonotonicInstant.now().adding(.seconds(2))
                drainLingering(connection)
            }
            return
        }
        connection.lastActivity = .now()
        processInput(connection)  // a pipelined request may already be waiting
    }

    private func drainLingering(_ connection: Connection) {
        while connection.lingerBytes < limits.bodyBytes + 65_536 {
            let n = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { connection.lingerBytes += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            break  // EOF or error: the client is done
        }
        closeConnection(connection)
    }

    private func closeConnection(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        if let watch = connection.watch { loop.unwatch(watch) }
        if let token = connection.awaitingToken { pendingKeepAlive[token] = nil }
        close(connection.fd)
    }

    private func enforceTimeouts() {
        let now = MonotonicInstant.now()
        for connection in Array(connections.values) {
            if let linger = connection.lingerUntil {
                if now >= linger { closeConnection(connection) }
                continue
            }
            if connection.awaitingToken != nil { continue }
            if !connection.output.isEmpty {
                // A client that stops reading our answer is as bad as one that stops writing.
                if now.duration(since: connection.lastActivity) > limits.idleTimeout { closeConnection(connection) }
                continue
            }
            if let deadline = connection.headDeadline, now >= deadline {
                connection.input.removeAll()
                respond(connection, HTTPResponse.error(408, "request not received within \(limits.headerReadTimeout.short)", close: true),
                        keepAlive: false, head: false)
            } else if connection.input.isEmpty && now.duration(since: connection.lastActivity) > limits.idleTimeout {
                closeConnection(connection)
            }
        }
    }
}

@available(*, unavailable)
extension HTTPServer: Sendable {}

/// The text of a NUL-terminated buffer (String(cString:) on arrays is deprecated).
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
