import Foundation
import Glibc
import Shared

// switchyard-bench: every benchmark of the supervisor, the dispatch chain and the gate, with the
// physical limits measured in the same run. Prints figures; never a pass/fail test.
//   bench/run                      builds release binaries and writes docs/benchmarks.md
//   .build/release/switchyard-bench [all|limits|restart|spawn|ingest|latency|throughput|throughput-rpc|throughput-oneshot|idle|status] [--quick] [--report FILE]
signal(SIGPIPE, SIG_IGN)
var arguments = Array(CommandLine.arguments.dropFirst())
let quick = arguments.contains("--quick")
var markdownPath: String?
if let index = arguments.firstIndex(of: "--report"), index + 1 < arguments.count {
    markdownPath = arguments[index + 1]
    arguments.removeSubrange(index...(index + 1))
}
arguments.removeAll { $0.hasPrefix("--") }
let selected = Set(arguments.isEmpty ? ["all"] : arguments)
func wants(_ name: String) -> Bool { selected.contains("all") || selected.contains(name) }

let report = Report()
do {
    // The limits run first, always: every other figure is also given as a ratio to them.
    let limits = try benchLimits(report, synchronous: .full, seconds: quick ? 1 : 3)
    report.commitSeconds = limits.commitSeconds
    report.spawnSeconds = limits.spawnSeconds
    if wants("restart") { try benchRestart(report, rounds: quick ? 15 : 50) }
    if wants("spawn") { _ = try benchSpawn(report, count: quick ? 100 : 500) }
    if wants("ingest") { try benchIngest(report, agents: 50, linesEach: quick ? 4000 : 20000) }
    if wants("latency") { try benchDispatchLatency(report, rounds: quick ? 50 : 300) }
    if wants("throughput") || wants("throughput-rpc") {
        // BENCH_RPC_AGENTS=N measures one agent count; by default 8, 32 and 64.
        let counts = ProcessInfo.processInfo.environment["BENCH_RPC_AGENTS"].flatMap { Int($0) }.map { [$0] } ?? [8, 32, 64]
        for agents in counts {
            try benchThroughput(report, tasks: quick ? 1000 : 5000, profile: "rpc", rpcAgents: agents,
                                label: "\(agents) warm no-op rpc agents", target: ">= 2000 tasks/s")
        }
    }
    if wants("throughput") || wants("throughput-oneshot") {
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
    func field<T>(_ value: T) -> String { withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
    let cpu = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n")
        .first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    let memory = ((try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? "").split(separator: "\n").first ?? ""
    let text = """
        # Switchyard benchmarks

        Written by `bench/run` (`switchyard-bench all --report docs/benchmarks.md\(quick ? " --quick" : "")`) on \(Timestamp.iso8601(WallClock.now())).

        - Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), \(memory.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "") memory, \(field(uts.sysname)) \(field(uts.release)) \(field(uts.machine)).
        - Build: release, Swift runtime linked statically; every daemon a separate process, one SQLite database in WAL mode.
        - Limits measured in the same run: a bare SQLite commit loop with the same `synchronous` setting, and a bare
          `posix_spawn` + wait loop. The last column states each figure against them.
        - Targets come from the issues; a figure that misses its target is reported as measured.

        \(report.table())
        """
    try? text.write(toFile: markdownPath, atomically: true, encoding: .utf8)
    print("report written to \(markdownPath)")
}