import Foundation
import Shared

// switchyard-testkit: helper processes for the integration tests. Not installed.
//   write-load DB WORKER SECONDS   intake + claim + finish in a loop; prints {"written":N,"busy_errors":B,"other_errors":E}
//   journal-sample                 logs one line with task fields through the shared Logger
SignalSource.prepareProcess(blocking: [])
let arguments = Array(CommandLine.arguments.dropFirst())

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

switch arguments.first {
case "write-load":
    guard arguments.count == 4, let worker = Int(arguments[2]), let seconds = Double(arguments[3]) else {
        fail("usage: write-load DB WORKER SECONDS")
    }
    let db: Database
    do {
        db = try Database(path: arguments[1])
        try Migrator.migrate(db)
    } catch {
        fail("open: \(error)")
    }
    let store = TaskStore(db: db, retryPolicy: RetryPolicy(baseDelay: .zero, maxDelay: .zero))
    let deadline = MonotonicInstant.now().adding(.milliseconds(Int64(seconds * 1000)))
    var written = 0, busy = 0, other = 0, sequence = 0
    while MonotonicInstant.now() < deadline {
        sequence += 1
        do {
            // Three transactions per task, as the daemons do them: intake, claim, completion.
            let task = try store.submit(IntakeRequest(prompt: "load \(worker)-\(sequence)", lane: "w\(worker)",
                                                      idempotencyKey: "w\(worker)-\(sequence)")).task
            try store.apply(.claim(profile: "load"), to: task.id, attempt: 0, source: "testkit")
            try store.apply(.dispatch(agentID: Int64(worker)), to: task.id, attempt: 1, source: "testkit")
            try store.apply(.succeed(TaskResult(summary: "ok", costUSD: 0.001)), to: task.id, attempt: 1, source: "testkit")
            written += 1
        } catch let error as SQLiteError where error.isBusy {
            busy += 1
        } catch {
            other += 1
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        }
    }
    print(#"{"written":\#(written),"busy_errors":\#(busy),"other_errors":\#(other)}"#)
    exit(busy == 0 && other == 0 ? 0 : 1)

case "submit":
    // submit DB RUN_DIR PROMPT [LANE] [CAPABILITIES,..] [PROFILE]: intake as the gate will do it.
    guard arguments.count >= 4 else { fail("usage: submit DB RUN_DIR PROMPT [LANE] [CAPS] [PROFILE]") }
    do {
        let db = try Database(path: arguments[1])
        try Migrator.migrate(db)
        let caps = arguments.count > 5 ? arguments[5].split(separator: ",").map(String.init) : []
        let task = try TaskStore(db: db).submit(IntakeRequest(prompt: arguments[3], lane: arguments.count > 4 ? arguments[4] : "default",
                                                              capabilities: caps, profile: arguments.count > 6 ? arguments[6] : nil)).task
        WakeSender(runDirectory: arguments[2]).nudge("scheduler")
        print(task.id)
    } catch {
        fail("\(error)")
    }
    exit(0)

case "journal-sample":
    let configuration: Configuration
    do { configuration = try Configuration.load() } catch { fail("\(error)") }
    let log = Logger(component: "testkit", target: configuration.logTarget, level: .debug)
    log.info("task sample line", ["TASK_ID": "42", "ATTEMPT": "2", "AGENT_ID": "7", "LANE": "docs"])
    exit(0)

default:
    fail("usage: switchyard-testkit write-load|journal-sample ...")
}
