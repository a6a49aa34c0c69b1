import CLinux
import Glibc
import Shared

/// One running agent: its process, its pipes and what has been read from them.
final class AgentProcess {
    let id: Int64
    let profile: AgentProfile
    let child: ChildProcess
    let startTime: Int64?
    var taskID: Int64?
    var attempt: Int?
    var stopRequested = false
    var stdoutSplitter: LineSplitter
    var stderrSplitter = LineSplitter(maxLineBytes: 4096)
    /// Paces stdout ingestion: when the agent writes faster than its profile allows, reading
    /// pauses and the pipe pushes back on the agent. Nothing is dropped, memory stays bounded.
    var stdoutBucket: TokenBucket
    /// Limits stderr forwarded to the journal (journald drops floods silently per service).
    var journalBucket = TokenBucket(rate: 20, burst: 200)
    var suppressedStderrLines = 0
    var stdoutWatch: EventLoop.Handle?
    /// Reads are paused: the agent wrote faster than its profile's rate.
    var stdoutPaused = false
    var stderrWatch: EventLoop.Handle?
    var stdinWatch: EventLoop.Handle?
    var exitWatch: EventLoop.Handle?
    var pendingStdin: [UInt8] = []
    var stderrTail = BoundedTail(limitBytes: 8192)
    var stderrTailDirty = false

    init(id: Int64, profile: AgentProfile, child: ChildProcess, taskID: Int64?, attempt: Int?) {
        self.id = id
        self.profile = profile
        self.child = child
        self.startTime = ProcessTable.startTime(of: child.pid)
        self.taskID = taskID
        self.attempt = attempt
        self.stdoutSplitter = LineSplitter(maxLineBytes: profile.maxLineBytes)
        let rate = Double(profile.maxLinesPerSecond)
        self.stdoutBucket = TokenBucket(rate: rate, burst: rate)
    }

    var logFields: Logger.Fields {
        ["AGENT_ID": String(id), "TASK_ID": taskID.map(String.init) ?? "", "ATTEMPT": attempt.map(String.init) ?? "",
         "PROFILE": profile.name]
    }
}

/// The last `limitBytes` of a text stream, kept as whole lines.
struct BoundedTail {
    let limitBytes: Int
    private(set) var lines: [String] = []
    private var bytes = 0

    init(limitBytes: Int) { self.limitBytes = limitBytes }

    mutating func append(_ line: String) {
        let clipped = line.utf8.count > limitBytes ? String(line.prefix(limitBytes)) : line
        lines.append(clipped)
        bytes += clipped.utf8.count + 1
        while bytes > limitBytes, !lines.isEmpty {
            bytes -= lines.removeFirst().utf8.count + 1
        }
    }

    var text: String { lines.joined(separator: "\n") }
}

/// Reads what a nonblocking fd has, up to `limit` bytes or until `stop()` says enough, into
/// `body`. Returns false at EOF or on an error that ends the stream.
func readAvailable(_ fd: Int32, limit: Int, chunk: inout [UInt8], stop: () -> Bool = { false },
                   _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
    var total = 0
    while total < limit && !stop() {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            chunk.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += n
            continue
        }
        if n == 0 { return false }
        switch errno {
        case EINTR: continue
        case EAGAIN: return true
        default: return false
        }
    }
    return true
}
