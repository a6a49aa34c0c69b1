import Shared

/// An authenticated caller.
struct Principal {
    enum Role { case control, readOnly }
    let role: Role
    /// Token identity ("control:1a2b3c4d") or a session's ("control:1a2b3c4d/session").
    let identity: String
    let viaSession: Bool
}

/// Bearer tokens for the API; dashboard sessions (HttpOnly, SameSite=Strict cookie) exchanged
/// for a token at login. Sessions live in memory: a gate restart signs dashboards out, nothing
/// else is lost.
final class Authenticator {
    static let cookieName = "switchyard_session"
    static let sessionLifetime: Duration = .seconds(12 * 3600)

    private let tokens: ControlTokens.Loaded
    private var sessions: [String: (principal: Principal, expires: MonotonicInstant)] = [:]

    init(tokens: ControlTokens.Loaded) { self.tokens = tokens }

    /// The principal for a bearer token string.
    func principal(forToken token: String) -> Principal? {
        if tokens.control.matches(token) { return Principal(role: .control, identity: tokens.control.identity, viaSession: false) }
        if let readOnly = tokens.readOnly, readOnly.matches(token) {
            return Principal(role: .readOnly, identity: readOnly.identity, viaSession: false)
        }
        return nil
    }

    /// From "Authorization: Bearer ..." or the session cookie.
    func authenticate(_ request: HTTPRequest) -> Principal? {
        if let header = request.header("authorization") {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return principal(forToken: String(parts[1]).trimmingCharacters(in: .whitespaces))
            }
            return nil
        }
        guard let session = cookie(request, Self.cookieName), let entry = sessions[session] else { return nil }
        guard MonotonicInstant.now() < entry.expires else {
            sessions[session] = nil
            return nil
        }
        return entry.principal
    }

    func startSession(for principal: Principal) -> String {
        pruneSessions()
        let id = ControlTokens.randomToken()
        sessions[id] = (Principal(role: principal.role, identity: principal.identity + "/session", viaSession: true),
                        MonotonicInstant.now().adding(Self.sessionLifetime))
        return id
    }

    func endSession(_ request: HTTPRequest) {
        if let session = cookie(request, Self.cookieName) { sessions[session] = nil }
    }

    private func pruneSessions() {
        let now = MonotonicInstant.now()
        sessions = sessions.filter { $0.value.expires > now }
    }

    func cookie(_ request: HTTPRequest, _ name: String) -> String? {
        for header in request.headers where header.name == "cookie" {
            for pair in header.value.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name {
                    return kv[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    /// Mutations made with a session cookie must come from our own pages: the Origin must name
    /// this host (a cross-site form cannot forge it; SameSite=Strict is the second fence).
    static func originMatches(_ request: HTTPRequest) -> Bool {
        guard let origin = request.header("origin"), let host = request.header("host") else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }
}
