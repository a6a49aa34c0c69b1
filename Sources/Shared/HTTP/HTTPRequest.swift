/// Limits of the HTTP server, with sane defaults (configuration, not constants).
public struct HTTPLimits: Sendable, Equatable {
    public var requestLineBytes = 8 * 1024
    public var headerBytes = 64 * 1024
    public var headerCount = 100
    public var bodyBytes = 1 << 20
    /// A client must deliver a complete request head within this long.
    public var headerReadTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request in flight is closed after this long.
    public var idleTimeout: Duration = .seconds(60)
    /// Database work of one handler is interrupted after this long (answered 503).
    public var handlerTimeout: Duration = .seconds(5)
    public var maxConnections = 512
    public init() {}
}

public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    /// The request-target as sent (origin-form).
    public var target: String
    /// The path, percent-decoded.
    public var path: String
    public var query: [String: String]
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// Field names lowercased, in order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public static func == (a: HTTPRequest, b: HTTPRequest) -> Bool {
        a.method == b.method && a.target == b.target && a.minorVersion == b.minorVersion && a.body == b.body
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    /// RFC 9112 section 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    public var keepAlive: Bool {
        let tokens = (header("connection") ?? "").lowercased().split(separator: ",").map { $0.trimmingOWS }
        if tokens.contains("close") { return false }
        return minorVersion >= 1 || tokens.contains("keep-alive")
    }
}

public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let reason: String
    public init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }
    public var description: String { "\(status): \(reason)" }
}

public enum HTTPParseResult: Sendable, Equatable {
    /// A whole request, and how many bytes of the input it used.
    case complete(HTTPRequest, consumed: Int)
    /// More bytes are needed.
    case incomplete
    case failed(HTTPParseError)
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (RFC 9110 OWS). Standard library only, so
    /// the parser builds on its own for the fuzzer.
    var trimmingOWS: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: scalars[first...last])
        return String(result)
    }
}
