import Foundation
import Glibc
import Shared
import XCTest

/// The production units under a real systemd 252, booted in a container root with systemd-nspawn
/// (never against this machine's own root). The checks live in deploy/test-systemd.sh; see there.
final class SystemdContainerTests: XCTestCase {
    func testUnitsUnderRealSystemd_readyWatchdogRestartsJournalAndCleanStop() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to boot a container (running as uid \(getuid()))") }
        for tool in ["/usr/bin/systemd-nspawn", "/usr/bin/mmdebstrap", "/usr/bin/nsenter"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw XCTSkip("\(tool) is not installed (scripts/setup.sh test installs it)")
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        guard FileManager.default.isExecutableFile(atPath: packageRoot + "/.build/release/switchyard-supervisor") else {
            throw XCTSkip("release binaries are missing: make test builds them (swift build -c release --static-swift-stdlib)")
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("sy-systemd-test-\(getpid()).log").path
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        var request = SpawnRequest(executable: "/bin/bash", arguments: [packageRoot + "/deploy/test-systemd.sh"],
                                   environment: ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/swift/usr/bin"])
        request.stdout = .descriptor(fd)
        request.stderr = .descriptor(fd)
        let child = try ChildProcess.spawn(request)
        close(fd)
        defer { try? FileManager.default.removeItem(atPath: log) }
        guard let status = child.wait(timeout: .seconds(900)) else {
            child.terminate(grace: .seconds(20))
            return XCTFail("the systemd test did not finish in 15 minutes")
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let summary = output.split(separator: "\n").filter { $0.hasPrefix("---") || $0.hasPrefix("FAIL") || $0.contains("all checks passed") }
        print(summary.joined(separator: "\n"))
        XCTAssertEqual(status, .exited(0), String(output.suffix(4000)))
        XCTAssertTrue(output.contains("systemd container test: all checks passed"))
    }
}
