import Foundation
import Glibc
import Shared
import XCTest

/// The short chaos run (about 200 tasks) that CI runs: the whole stack with demo agents under
/// SIGKILL and SIGSTOP, audited from the database and the event log by switchyard-chaos itself.
final class ChaosTests: XCTestCase {
    func testShortChaosRun_everyTaskTerminalNoneLostLanesRespectedNoStaleCompletion() throws {
        let sandbox = Sandbox()
        let child = try sandbox.start("switchyard-chaos", ["--tasks", "200", "--seed", String(getpid())], environment: ["PATH": "/usr/bin:/bin"],
                                      logName: "chaos")
        guard let status = child.wait(timeout: .seconds(600)) else {
            child.terminate(grace: .seconds(30))
            return XCTFail("the chaos run did not finish in 10 minutes: \(sandbox.read("chaos.out").suffix(2000))")
        }
        let output = sandbox.read("chaos.out")
        print(output.split(separator: "\n").filter { $0.hasPrefix("chaos:") }.joined(separator: "\n"))
        XCTAssertEqual(status, .exited(0), String(output.suffix(4000)) + String(sandbox.read("chaos.err").suffix(2000)))
        XCTAssertTrue(output.contains("chaos: no violation"))
    }
}
