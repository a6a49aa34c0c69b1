import CLinux
import Foundation
import Glibc

/// A small blocking HTTP/1.1 client for preflight checks of another Switchyard gate. Every step
/// has a deadline; run it off the event loop thread.
public enum HTTPClient {
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var json: JSON? { try? JSON.parse(bytes: body) }
    }

    public struct ClientError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Splits "http://host:port/base" into host, port, base path. Only http: the gate speaks
    /// plain HTTP behind whatever TLS terminator the operator runs.
    public static func parseURL(_ text: String) throws -> (host: String, port: UInt16, path: String) {
        guard text.hasPrefix("http://") else { throw ClientError(message: "only http:// URLs are supported") }
        let rest = text.dropFirst(7)
        let hostPort = rest.prefix { $0 != "/" }
        let path = String(rest.dropFirst(hostPort.count))
        var host = String(hostPort)
        var port: UInt16 = 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw ClientError(message: "invalid IPv6 address") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { guard let p = UInt16(after.dropFirst()) else { throw ClientError(message: "invalid port") }; port = p }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = UInt16(host[host.index(after: colon)...]) else { throw ClientError(message: "invalid port") }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw ClientError(message: "missing host") }
        return (host, port, path.hasSuffix("/") ? String(path.dropLast()) : path)
    }

    public static func request(_ method: String, url: String, path: String, bearer: String? = nil, body: [UInt8]? = nil,
                               timeout: Duration = .seconds(3), maxBytes: Int = 4 << 20) throws -> Response {
        let (host, port, base) = try parseURL(url)
        let deadline = MonotonicInstant.now().adding(timeout)
        let fd = try connect(host: host, port: port, deadline: deadline)
        defer { close(fd) }
        var head = "\(method) \(base)\(path) HTTP/1.1\r\nhost: \(host):\(port)\r\nconnection: close\r\naccept: application/json\r\n"
        if let bearer { head += "authorization: Bearer \(bearer)\r\n" }
        if let body { head += "content-type: application/json\r\ncontent-length: \(body.count)\r\n" }
        var bytes = Array((head + "\r\n").utf8)
        if let body { bytes += body }
        try sendAll(fd, bytes, deadline: deadline)
        let raw = try receiveAll(fd, deadline: deadline, maxBytes: maxBytes)
        return try parseResponse(raw)
    }

    /// A connected, blocking TCP socket (TCP_NODELAY) for callers that speak HTTP themselves
    /// (load generators, tests that send raw bytes).
    public static func openConnection(host: String, port: UInt16, timeout: Duration = .seconds(3)) throws -> Int32 {
        let fd = try connect(host: host, port: port, deadline: MonotonicInstant.now().adding(timeout))
        _ = clinux_set_nodelay(fd)
        let flags = clinux_fcntl_getfl(fd)
        _ = clinux_fcntl_setfl(fd, flags & ~O_NONBLOCK)
        return fd
    }

    static func connect(host: String, port: UInt16, deadline: MonotonicInstant) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw ClientError(message: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError(message: "socket: \(String(cString: strerror(errno)))") }
        if Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ClientError(message: "connect to \(host):\(port): \(message)")
        }
        guard wait(fd, events: Int16(POLLOUT), deadline: deadline) else {
            close(fd)
            throw ClientError(message: "connect to \(host):\(port) timed out")
        }
        var error: Int32 = 0
        var length = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            close(fd)
            throw ClientError(message: "connect to \(host):\(port): \(String(cString: strerror(error)))")
        }
        return fd
    }

    static func wait(_ fd: Int32, events: Int16, deadline: MonotonicInstant) -> Bool {
        while true {
            let now = MonotonicInstant.now()
            guard now < deadline else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&entry, 1, Int32(max(1, deadline.duration(since: now).millisecondsClamped)))
            if rc > 0 { return true }
            if rc < 0 && errno != EINTR { return false }
        }
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: MonotonicInstant) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard wait(fd, events: Int16(POLLOUT), deadline: deadline) else { throw ClientError(message: "send timed out") }
                continue
            }
            throw ClientError(message: "send: \(String(cString: strerror(errno)))")
        }
    }

    static func receiveAll(_ fd: Int32, deadline: MonotonicInstant, maxBytes: Int) throws -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                data.append(contentsOf: buffer[0..<n])
                if data.count > maxBytes { throw ClientError(message: "response larger than \(maxBytes) bytes") }
                continue
            }
            if n == 0 { return data }
            if errno == EAGAIN || errno == EINTR {
                guard wait(fd, events: Int16(POLLIN), deadline: deadline) else { throw ClientError(message: "response timed out") }
                continue
            }
            throw ClientError(message: "recv: \(String(cString: strerror(errno)))")
        }
    }

    static func parseResponse(_ raw: [UInt8]) throws -> Response {
        guard let headEnd = raw.indices.first(where: { i in i + 3 < raw.count && raw[i] == 13 && raw[i + 1] == 10 && raw[i + 2] == 13 && raw[i + 3] == 10 }) else {
            throw ClientError(message: "malformed response")
        }
        let head = String(decoding: raw[0..<headEnd], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ClientError(message: "malformed status line")
        }
        var body = Array(raw[(headEnd + 4)...])
        for line in head.split(separator: "\r\n").dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == "content-length", let length = Int(kv[1].trimmingCharacters(in: .whitespaces)), length <= body.count {
                body = Array(body[0..<length])
            }
        }
        return Response(status: status, body: body)
    }
}
