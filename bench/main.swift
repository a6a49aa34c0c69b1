import Foundation
import Glibc
import Shared

// switchyard-bench: every benchmark of the supervisor, the dispatch chain and the gate, with the
// physical limits measured in the same run. Prints figures; never a pass/fail test.
//   swift build -c release && .build/release/switchyard-bench [all|limits|restart|spawn|ingest|latency|throughput|idle|status] [--quick] [--markdown FILE]
signal(SIGPIPE, SIG_IGN)
var arguments = Array(CommandLine.arguments.dropFirst())
let quick = arguments.contains("--quick")
var markdownPath: String?
if let index = arguments.firstIndex(of: "--markdown"), index + 1 < arguments.count {
    markdownPath = arguments[index + 1]
    arguments.removeSubrange(index...(index + 1))
}
arguments.removeAll { $0.hasPrefix("--") }
let selected = Set(arguments.isEmpty ? ["all"] : arguments)
func wants(_ name: String) -> Bool { selected.contains("all") || selected.contains(name) }

let report = Report()
do {
    if wants("limits") { _ = try benchLimits(report, synchronous: .full, seconds: quick ? 1 : 3) }
    if wants("restart") { try benchRestart(report, rounds: quick ? 15 : 50) }
    if wants("spawn") { _ = try benchSpawn(report, count: quick ? 100 : 500) }
    if wants("ingest") { try benchIngest(report, agents: 50, linesEach: quick ? 4000 : 20000) }
    if wants("latency") { try benchDispatchLatency(report, rounds: quick ? 50 : 300) }
    if wants("throughput") {
        try benchThroughput(report, tasks: quick ? 1000 : 5000, profile: "rpc", label: "8 warm no-op rpc agents", target: ">= 2000 tasks/s")
        try benchThroughput(report, tasks: quick ? 200 : 1000, profile: "oneshot", label: "oneshot agents (8 at a time)", target: "")
    }
    if wants("idle") { try benchIdle(report, seconds: quick ? 10 : 60) }
    if wants("status") { try benchStatus(report, tasks: 100_000, seconds: quick ? 3 : 10, connections: 4) }
} catch {
    print("benchmark failed: \(error)")
    exit(1)
}
if let markdownPath {
    var uts = utsname()
    uname(&uts)
    let machine = withUnsafeBytes(of: &uts.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let text = "Run on \(Timestamp.iso8601(WallClock.now())), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(machine).\n\n" + report.markdown(machine: machine)
    try? text.write(toFile: markdownPath, atomically: true, encoding: .utf8)
}
