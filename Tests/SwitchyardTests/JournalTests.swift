import Foundation
import Glibc
import Shared
import XCTest

/// Structured logging against a real systemd-journald, started in a private mount namespace
/// (../shared/notes/journald-private.md): nothing touches the machine's own journal or /run.
final class JournalTests: XCTestCase {
    func testComponentLogs_reachJournaldWithStructuredFields() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root for unshare --mount and journald (running as uid \(getuid()))") }
        guard FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd-journald"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else {
            throw XCTSkip("systemd-journald or unshare is not installed")
        }
        let sandbox = Sandbox()
        let script = sandbox.path + "/journal.sh"
        try """
        set -eu
        mount -t tmpfs tmpfs /run
        mkdir -p /run/systemd/journal /run/log/journal
        if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
        /lib/systemd/systemd-journald >"$SANDBOX/journald.log" 2>&1 &
        JPID=$!
        trap 'kill $JPID 2>/dev/null; wait $JPID 2>/dev/null || true' EXIT
        for i in $(seq 1 500); do [ -S /run/systemd/journal/socket ] && break; sleep 0.01; done
        [ -S /run/systemd/journal/socket ]
        export SWITCHYARD_STATE_DIR="$SANDBOX/state" SWITCHYARD_LOG=journal
        "$BIN/switchyard-testkit" journal-sample
        "$BIN/switchyard-scheduler" &
        SPID=$!
        for i in $(seq 1 1000); do
          journalctl -D /run/log/journal -o cat --no-pager SYSLOG_IDENTIFIER=switchyard-scheduler 2>/dev/null | grep -qx ready && break
          sleep 0.02
        done
        kill -TERM $SPID
        wait $SPID
        journalctl -D /run/log/journal --sync 2>/dev/null || true
        journalctl -D /run/log/journal -o json --no-pager > "$SANDBOX/journal.json"
        """.write(toFile: script, atomically: true, encoding: .utf8)
        var request = SpawnRequest(executable: "/usr/bin/unshare", arguments: ["--mount", "--propagation", "private", "/bin/sh", script],
                                   environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOX": sandbox.path, "BIN": TestBinaries.directory])
        let out = open(sandbox.path + "/script.log", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        request.stdout = .descriptor(out)
        request.stderr = .descriptor(out)
        let child = try ChildProcess.spawn(request)
        close(out)
        guard let status = child.wait(timeout: .seconds(90)) else {
            child.terminate(grace: .seconds(2))
            return XCTFail("journal script hung: \(sandbox.read("script.log"))")
        }
        XCTAssertEqual(status, .exited(0), sandbox.read("script.log") + sandbox.read("journald.log"))

        let entries = sandbox.read("journal.json").split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
        func field(_ entry: JSON, _ name: String) -> String? { entry[name]?.stringValue }

        let sample = entries.first { field($0, "MESSAGE") == "task sample line" }
        XCTAssertNotNil(sample, "journal has: \(entries.compactMap { field($0, "MESSAGE") })")
        if let sample {
            XCTAssertEqual(field(sample, "TASK_ID"), "42")
            XCTAssertEqual(field(sample, "ATTEMPT"), "2")
            XCTAssertEqual(field(sample, "AGENT_ID"), "7")
            XCTAssertEqual(field(sample, "LANE"), "docs")
            XCTAssertEqual(field(sample, "COMPONENT"), "testkit")
            XCTAssertEqual(field(sample, "SYSLOG_IDENTIFIER"), "switchyard-testkit")
            XCTAssertEqual(field(sample, "PRIORITY"), "6")
        }
        let scheduler = entries.filter { field($0, "SYSLOG_IDENTIFIER") == "switchyard-scheduler" }
        let ready = scheduler.first { field($0, "MESSAGE") == "ready" }
        XCTAssertNotNil(ready, "the scheduler's own lines: \(scheduler.compactMap { field($0, "MESSAGE") })")
        XCTAssertEqual(ready.flatMap { field($0, "COMPONENT") }, "scheduler")
        XCTAssertEqual(ready.flatMap { field($0, "PRIORITY") }, "5")
        XCTAssertNotNil(ready.flatMap { field($0, "INCARNATION") })
        XCTAssertTrue(scheduler.contains { field($0, "MESSAGE") == "stopped" }, "the graceful stop is logged")
    }
}
