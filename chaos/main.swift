import Foundation
import Glibc
import Shared

// switchyard-chaos: the whole stack (all-in-one) with demo agents under fire. Submits N tasks over
// HTTP across lanes (failures, retries, slow and stalling tasks mixed in) while every 1-3 s a random
// process among gate, scheduler, poller, supervisor and agents is killed with SIGKILL, or now and
// then stopped with SIGSTOP. Then it checks, from the database and the event log, that every task
// is terminal, none is lost, no lane was ever over its limit, no completion came from a stale
// attempt, and every intake answered 201 is present. Prints a summary; exits 1 on any violation.
//
//   switchyard-chaos [--tasks 1000] [--seed N] [--keep]
signal(SIGPIPE, SIG_IGN)
var options = ChaosOptions()
do { options = try ChaosOptions.parse(Array(CommandLine.arguments.dropFirst())) } catch {
    say("\(error)")
    exit(2)
}
do {
    let violations = try ChaosRun(options: options).run()
    exit(violations == 0 ? 0 : 1)
} catch {
    say("chaos run failed: \(error)")
    exit(1)
}

/// One line to stdout, unbuffered (the output of a long run must show while it runs).
func say(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}
