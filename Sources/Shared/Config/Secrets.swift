import Foundation
import Glibc

/// A bearer token, held so it can be compared in constant time and never printed.
public struct SecretToken: Sendable, CustomStringConvertible {
    private let digest: [UInt8]
    /// A short, non-reversible name for audit records and logs: "control:1a2b3c4d".
    public let identity: String

    public init(_ value: String, role: String) {
        digest = SHA256.hash(Array(value.utf8))
        identity = role + ":" + digest.prefix(4).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// Constant-time in the candidate's content: both sides are hashed to 32 bytes first, so
    /// neither the length nor the first differing byte shows in the timing.
    public func matches(_ candidate: String) -> Bool {
        let other = SHA256.hash(Array(candidate.utf8))
        var difference: UInt8 = 0
        for i in 0..<32 { difference |= digest[i] ^ other[i] }
        return difference == 0
    }

    public var description: String { "<token \(identity)>" }
}

/// Where the control and read-only tokens come from, and the rules they must meet.
public enum ControlTokens {
    public static let minimumLength = 32

    public struct Loaded: Sendable {
        public var control: SecretToken
        public var readOnly: SecretToken?
        /// Set when the embedded default generated the control token: where it is.
        public var generatedPath: String?
    }

    /// Control token: SWITCHYARD_CONTROL_TOKEN_FILE, then $CREDENTIALS_DIRECTORY/control-token
    /// (systemd LoadCredential=), then SWITCHYARD_CONTROL_TOKEN. The embedded default with none
    /// generates one into the state folder (mode 0600).
    public static func load(_ configuration: Configuration) throws -> Loaded {
        let env = configuration.environment
        var generated: String?
        var control = try read(env, fileVariable: "SWITCHYARD_CONTROL_TOKEN_FILE", credential: "control-token",
                               variable: "SWITCHYARD_CONTROL_TOKEN")
        if control == nil {
            guard configuration.mode == .embedded else {
                throw ConfigurationError(variable: "SWITCHYARD_CONTROL_TOKEN_FILE",
                                         reason: "no control token: set SWITCHYARD_CONTROL_TOKEN_FILE, a control-token credential, or SWITCHYARD_CONTROL_TOKEN")
            }
            let path = configuration.stateDirectory + "/control-token"
            control = try readOrGenerate(path)
            generated = path
        }
        guard let controlValue = control else { throw ConfigurationError(variable: "SWITCHYARD_CONTROL_TOKEN", reason: "missing") }
        try validate(controlValue, variable: "SWITCHYARD_CONTROL_TOKEN")
        var readOnly: SecretToken?
        if let value = try read(env, fileVariable: "SWITCHYARD_READONLY_TOKEN_FILE", credential: "readonly-token",
                                variable: "SWITCHYARD_READONLY_TOKEN") {
            try validate(value, variable: "SWITCHYARD_READONLY_TOKEN")
            guard value != controlValue else {
                throw ConfigurationError(variable: "SWITCHYARD_READONLY_TOKEN", reason: "must differ from the control token")
            }
            readOnly = SecretToken(value, role: "readonly")
        }
        return Loaded(control: SecretToken(controlValue, role: "control"), readOnly: readOnly, generatedPath: generated)
    }

    static func read(_ env: [String: String], fileVariable: String, credential: String, variable: String) throws -> String? {
        if let path = env[fileVariable], !path.isEmpty {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(variable: fileVariable, reason: "cannot read \(path)")
            }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let directory = env["CREDENTIALS_DIRECTORY"], !directory.isEmpty,
           let text = try? String(contentsOfFile: directory + "/" + credential, encoding: .utf8) {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let value = env[variable], !value.isEmpty { return value.trimmingCharacters(in: .whitespacesAndNewlines) }
        return nil
    }

    /// Refuses short tokens and the placeholders example files ship with.
    public static func validate(_ token: String, variable: String) throws {
        guard token.count >= minimumLength else {
            throw ConfigurationError(variable: variable, reason: "token is shorter than \(minimumLength) characters")
        }
        let lower = token.lowercased()
        let placeholders = ["changeme", "change-me", "change_me", "replace", "placeholder", "example", "your-token", "your_token",
                            "token-here", "secret-here", "xxxxxxxx", "insert", "todo"]
        if placeholders.contains(where: lower.contains) || token.hasPrefix("<") || Set(token).count < 8 {
            throw ConfigurationError(variable: variable, reason: "token looks like a placeholder; generate one with: head -c 32 /dev/urandom | base64")
        }
        guard token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw ConfigurationError(variable: variable, reason: "token must be printable ASCII without spaces")
        }
    }

    static func readOrGenerate(_ path: String) throws -> String {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let token = randomToken()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigurationError(variable: "SWITCHYARD_STATE_DIR", reason: "cannot create \(path)") }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
            throw ConfigurationError(variable: "SWITCHYARD_STATE_DIR", reason: "cannot write \(path)")
        }
        return token
    }

    /// 32 random bytes (getrandom through SystemRandomNumberGenerator) as 64 hex characters.
    public static func randomToken(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
