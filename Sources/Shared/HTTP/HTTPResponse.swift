/// A response: status, headers, body. Serialised with Content-Length (no chunked responses).
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Close the connection after this response (errors of framing always do).
    public var closeConnection = false

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], closeConnection: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closeConnection = closeConnection
    }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.status == b.status && a.body == b.body && a.headers.map(\.name) == b.headers.map(\.name)
            && a.headers.map(\.value) == b.headers.map(\.value) && a.closeConnection == b.closeConnection
    }

    public static func json(_ status: Int, _ value: JSON, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("content-type", "application/json")] + headers, body: Array(value.serialized().utf8))
    }

    /// An error body every client can read: {"ok": false, "error": {"status", "code", "message", "field"?}}.
    public static func error(_ status: Int, _ message: String, code: String? = nil, field: String? = nil,
                             close: Bool = false) -> HTTPResponse {
        var detail: [String: JSON] = ["status": .int(Int64(status)), "code": .string(code ?? reasonCode(status)), "message": .string(message)]
        if let field { detail["field"] = .string(field) }
        var response = json(status, ["ok": false, "error": .object(detail)])
        response.closeConnection = close
        return response
    }

    public static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: [("content-type", contentType)], body: Array(text.utf8))
    }

    static func reasonCode(_ status: Int) -> String {
        switch status {
        case 400: return "bad_request"
        case 401: return "unauthorized"
        case 403: return "forbidden"
        case 404: return "not_found"
        case 405: return "method_not_allowed"
        case 408: return "request_timeout"
        case 409: return "conflict"
        case 413: return "payload_too_large"
        case 414: return "uri_too_long"
        case 415: return "unsupported_media_type"
        case 422: return "unprocessable"
        case 431: return "headers_too_large"
        case 501: return "not_implemented"
        case 503: return "unavailable"
        case 505: return "http_version_not_supported"
        default: return status >= 500 ? "internal_error" : "error"
        }
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }

    public func serialized(keepAlive: Bool, head: Bool = false) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(Self.reasonPhrase(status))\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "content-length: \(body.count)\r\n"
        text += keepAlive && !closeConnection ? "connection: keep-alive\r\n" : "connection: close\r\n"
        text += "cache-control: no-store\r\nx-content-type-options: nosniff\r\n\r\n"
        var bytes = Array(text.utf8)
        if !head { bytes.append(contentsOf: body) }
        return bytes
    }
}
