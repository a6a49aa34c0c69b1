import Foundation
import Glibc
import Shared
import XCTest

/// A private temporary directory per test, removed afterwards (with any processes it started).
final class Sandbox {
    let path: String
    private var children: [ChildProcess] = []

    init(_ name: String = #function) {
        var template = Array("/tmp/sy-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
        path = String(cString: made)
    }

    deinit {
        for child in children where child.exitStatus == nil {
            child.signalGroup(SIGKILL)
            child.signal(SIGKILL)
            _ = child.wait(timeout: .seconds(5))
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    var databasePath: String { path + "/state/switchyard.db" }

    /// The minimal environment for a Switchyard daemon confined to this sandbox.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "SWITCHYARD_STATE_DIR": path + "/state",
                   "SWITCHYARD_LOG": "stderr", "SWITCHYARD_LOG_LEVEL": "debug"]
        env.merge(extra) { $1 }
        return env
    }

    /// Starts one of the package's executables; stdout and stderr go to files in the sandbox.
    @discardableResult
    func start(_ binary: String, _ arguments: [String] = [], environment: [String: String]? = nil,
               logName: String? = nil) throws -> ChildProcess {
        let name = logName ?? binary
        let out = open(path + "/\(name).out", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        let err = open(path + "/\(name).err", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(out); close(err) }
        var request = SpawnRequest(executable: TestBinaries.path(binary), arguments: arguments,
                                   environment: environment ?? self.environment())
        request.stdout = .descriptor(out)
        request.stderr = .descriptor(err)
        let child = try ChildProcess.spawn(request)
        children.append(child)
        return child
    }

    func read(_ file: String) -> String {
        (try? String(contentsOfFile: path + "/" + file, encoding: .utf8)) ?? ""
    }
}

enum TestBinaries {
    /// The directory holding the built products: the test bundle's own directory.
    static let directory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // swift test runs .build/<triple>/debug/SwitchyardPackageTests.xctest
        if url.lastPathComponent.hasSuffix(".xctest") { url = url.deletingLastPathComponent() }
        return url.path
    }()

    static func path(_ name: String) -> String { directory + "/" + name }
}

/// Polls `condition` until it holds or `timeout` passes. Tests wait for events with a deadline;
/// they never sleep a fixed time and hope.
@discardableResult
func waitUntil(_ timeout: Duration = .seconds(10), poll: Duration = .milliseconds(10),
               _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = MonotonicInstant.now().adding(timeout)
    while MonotonicInstant.now() < deadline {
        if try condition() { return true }
        usleep(UInt32(poll.nanosecondsClamped / 1000))
    }
    return try condition()
}

extension XCTestCase {
    /// A fresh migrated database in the sandbox.
    func makeDatabase(_ sandbox: Sandbox, options: DatabaseOptions = DatabaseOptions()) throws -> Database {
        try FileManager.default.createDirectory(atPath: sandbox.path + "/state", withIntermediateDirectories: true)
        let db = try Database(path: sandbox.databasePath, options: options)
        try Migrator.migrate(db)
        return db
    }
}

/// A value shared between test threads.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func mutate(_ body: (inout Value) -> Void) { lock.lock(); defer { lock.unlock() }; body(&stored) }
}
