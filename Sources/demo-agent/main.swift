import Foundation
import Glibc
import Shared

// switchyard-demo-agent: a stand-in AI agent speaking Switchyard's JSONL, in both modes.
//   switchyard-demo-agent rpc               one prompt per line on stdin: {"type":"prompt","task_id","attempt","prompt"}
//   switchyard-demo-agent oneshot [PROMPT]  the prompt as an argument or on stdin; task from SWITCHYARD_TASK_ID/ATTEMPT
//
// Directives anywhere in the prompt simulate what real agents do:
//   @work=MS  @progress=N  @cost=USD  @tokens=IN,OUT  @fail[=MSG]  @fatal  @fail-until=ATTEMPT
//   @ask[=QUESTION]  @hang  @hang-until=ATTEMPT  @spam=LINES  @exit=CODE  @stderr=TEXT  @grandchild=PIDFILE  @ignore-term

struct Directives {
    var values: [String: String] = [:]

    init(_ prompt: String) {
        for word in prompt.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }) where word.hasPrefix("@") {
            let body = word.dropFirst()
            let parts = body.split(separator: "=", maxSplits: 1)
            guard let name = parts.first, !name.isEmpty else { continue }
            values[String(name)] = parts.count > 1 ? String(parts[1]) : ""
        }
    }

    func has(_ name: String) -> Bool { values[name] != nil }
    func int(_ name: String) -> Int? { values[name].flatMap { Int($0) } }
    func double(_ name: String) -> Double? { values[name].flatMap { Double($0) } }
}

func emit(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(1, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 { if errno == EINTR { continue }; exit(0) }  // EPIPE: nobody listens any more
            offset += n
        }
    }
}

func line(_ object: [String: JSON]) -> String { JSON.object(object).serialized() + "\n" }

func sleepMilliseconds(_ ms: Int) { if ms > 0 { usleep(UInt32(min(ms, 4_000_000)) * 1000) } }

func work(taskID: Int64, attempt: Int, prompt: String) {
    let d = Directives(prompt)
    let ids: [String: JSON] = ["task_id": .int(taskID), "attempt": .int(Int64(attempt))]
    var out = line(ids.merging(["type": "ack"]) { $1 })
    if let text = d.values["stderr"] { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    if let pidfile = d.values["grandchild"] {
        // A helper that escapes the agent's process group, as some tools do.
        var request = SpawnRequest(executable: "/bin/sh", arguments: ["-c", "echo $$ > '\(pidfile)'; exec sleep 1000"],
                                   environment: ProcessInfo.processInfo.environment)
        request.stdout = .null
        request.stderr = .null
        _ = try? ChildProcess.spawn(request)
    }
    if let code = d.int("exit") {
        emit(out)
        exit(Int32(code))
    }
    if let lines = d.int("spam") {
        emit(out)
        out = ""
        var chunk = ""
        for i in 0..<lines {
            chunk += line(ids.merging(["type": "progress", "message": .string("line \(i)")]) { $1 })
            if chunk.utf8.count > 60_000 { emit(chunk); chunk = "" }
        }
        emit(chunk)
    }
    let workMS = d.int("work") ?? 0
    let steps = d.int("progress") ?? 0
    if steps > 0 || workMS > 0 || d.has("hang") || d.has("hang-until") {
        emit(out)
        out = ""
    }
    for step in 0..<steps {
        sleepMilliseconds(workMS / max(steps, 1))
        emit(line(ids.merging(["type": "progress", "message": .string("step \(step + 1) of \(steps)")]) { $1 }))
    }
    if steps == 0 { sleepMilliseconds(workMS) }
    if d.has("hang") || attempt < (d.int("hang-until") ?? 0) {
        while true { sleep(1000) }
    }
    var tokens = (Int64(100), Int64(20))
    if let spec = d.values["tokens"] {
        let parts = spec.split(separator: ",").compactMap { Int64($0) }
        if parts.count == 2 { tokens = (parts[0], parts[1]) }
    }
    var result: [String: JSON] = ids.merging([
        "type": "result", "cost_usd": .double(d.double("cost") ?? 0.0001),
        "usage": ["input_tokens": .int(tokens.0), "output_tokens": .int(tokens.1), "cache_read_tokens": 0, "cache_write_tokens": 0],
    ]) { $1 }
    let failUntil = d.int("fail-until") ?? 0
    if d.has("fatal") {
        result["status"] = "failed"
        result["retryable"] = false
        result["error"] = "fatal error requested by the prompt"
    } else if d.has("fail") || attempt < failUntil {
        result["status"] = "failed"
        result["retryable"] = true
        result["error"] = .string(d.values["fail"].flatMap { $0.isEmpty ? nil : $0 } ?? "failure requested by the prompt")
    } else if d.has("ask") {
        result["status"] = "needs_review"
        result["summary"] = .string(d.values["ask"].flatMap { $0.isEmpty ? nil : $0 } ?? "the agent has a question for the operator")
    } else {
        result["status"] = "succeeded"
        result["summary"] = .string("done: " + String(prompt.prefix(60)))
    }
    emit(out + line(result))
}

signal(SIGPIPE, SIG_IGN)
let arguments = Array(CommandLine.arguments.dropFirst())
if ProcessInfo.processInfo.environment["DEMO_IGNORE_TERM"] != nil { signal(SIGTERM, SIG_IGN) }

switch arguments.first {
case "rpc":
    // Benchmarks: DEMO_ARRIVALS names a file that gets "TASK_ID MICROS" the moment each prompt is read.
    let arrivals = ProcessInfo.processInfo.environment["DEMO_ARRIVALS"].map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
    while let text = readLine(strippingNewline: true) {
        let arrived = WallClock.now()
        guard let request = try? JSON.parse(text), request["type"]?.stringValue == "prompt",
              let prompt = request["prompt"]?.stringValue else {
            emit(line(["type": "error", "message": .string("not a prompt line")]))
            continue
        }
        if let fd = arrivals, fd >= 0 {
            let record = Array("\(request["task_id"]?.int64Value ?? 0) \(arrived)\n".utf8)
            _ = record.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
        if Directives(prompt).has("ignore-term") { signal(SIGTERM, SIG_IGN) }
        work(taskID: request["task_id"]?.int64Value ?? 0, attempt: Int(request["attempt"]?.int64Value ?? 0), prompt: prompt)
    }
case "oneshot":
    let prompt = arguments.count > 1 ? arguments[1] : String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
    if Directives(prompt).has("ignore-term") { signal(SIGTERM, SIG_IGN) }
    let env = ProcessInfo.processInfo.environment
    work(taskID: Int64(env["SWITCHYARD_TASK_ID"] ?? "") ?? 0, attempt: Int(env["SWITCHYARD_ATTEMPT"] ?? "") ?? 0, prompt: prompt)
default:
    FileHandle.standardError.write(Data("usage: switchyard-demo-agent rpc | oneshot [PROMPT]\n".utf8))
    exit(2)
}
