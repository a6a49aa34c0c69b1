import Shared

/// Who may call a route: anyone, a read-only or control principal, or control only.
enum Access {
    case open
    case read
    case mutate
}

/// A failure a handler reports to the client: status, message, and the field at fault.
struct APIError: Error {
    let status: Int
    let message: String
    var field: String? = nil
    var code: String? = nil

    static func badRequest(_ message: String, field: String? = nil) -> APIError { APIError(status: 400, message: message, field: field) }
    static func notFound(_ message: String) -> APIError { APIError(status: 404, message: message) }
}

/// Everything a handler sees about its request.
struct RequestContext {
    let request: HTTPRequest
    let parameters: [String: String]
    let principal: Principal?
    let connection: HTTPConnectionInfo
    let now: Microseconds

    /// The JSON object body. Unknown fields are refused by name; an empty body is {}.
    func body(allowed: Set<String>) throws -> [String: JSON] {
        if request.body.isEmpty { return [:] }
        if let type = request.header("content-type"), !type.lowercased().hasPrefix("application/json") {
            throw APIError(status: 415, message: "Content-Type must be application/json")
        }
        let value: JSON
        do {
            value = try JSON.parse(bytes: request.body)
        } catch {
            throw APIError.badRequest("body is not valid JSON: \(error)", field: "body")
        }
        guard let object = value.objectValue else { throw APIError.badRequest("body must be a JSON object", field: "body") }
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw APIError.badRequest("unknown field", field: key)
        }
        return object
    }

    func bool(_ object: [String: JSON], _ key: String) throws -> Bool? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let b = value.boolValue else { throw APIError.badRequest("must be true or false", field: key) }
        return b
    }

    func string(_ object: [String: JSON], _ key: String, maxBytes: Int = 1000) throws -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let s = value.stringValue else { throw APIError.badRequest("must be a string", field: key) }
        guard s.utf8.count <= maxBytes else { throw APIError.badRequest("longer than \(maxBytes) bytes", field: key) }
        return s
    }

    func parameterID(_ name: String = "id") throws -> Int64 {
        guard let text = parameters[name], let id = Int64(text), id > 0 else { throw APIError.badRequest("must be a positive integer", field: name) }
        return id
    }

    /// "who did it" for audit records: what the caller says, and which credential said it.
    func actor(_ claimed: String?) -> String {
        let name = (claimed?.isEmpty == false ? claimed! : nil) ?? principal?.identity ?? "anonymous"
        return String(name.prefix(128))
    }
}

struct Route {
    let method: String
    let pattern: String
    let access: Access
    let summary: String
    let handler: (RequestContext) throws -> HTTPReply
    var segments: [Substring] { pattern.split(separator: "/") }
}

/// Matches a path against route patterns with {name} segments.
struct Router {
    private(set) var routes: [Route] = []

    mutating func add(_ method: String, _ pattern: String, _ access: Access, _ summary: String,
                      _ handler: @escaping (RequestContext) throws -> HTTPReply) {
        routes.append(Route(method: method, pattern: pattern, access: access, summary: summary, handler: handler))
    }

    enum Match {
        case found(Route, [String: String])
        case wrongMethod(allowed: [String])
        case notFound
    }

    func match(method: String, path: String) -> Match {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var allowed: [String] = []
        for route in routes {
            let pattern = route.segments
            guard pattern.count == parts.count else { continue }
            var parameters: [String: String] = [:]
            var matches = true
            for (p, actual) in zip(pattern, parts) {
                if p.hasPrefix("{") && p.hasSuffix("}") {
                    parameters[String(p.dropFirst().dropLast())] = String(actual)
                } else if p != actual {
                    matches = false
                    break
                }
            }
            guard matches else { continue }
            if route.method == method || (method == "HEAD" && route.method == "GET") { return .found(route, parameters) }
            allowed.append(route.method)
        }
        return allowed.isEmpty ? .notFound : .wrongMethod(allowed: allowed)
    }
}
