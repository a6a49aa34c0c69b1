import CSystemd
import Glibc

/// One logger for every component. To journald with structured fields (MESSAGE, PRIORITY,
/// SYSLOG_IDENTIFIER, COMPONENT, and TASK_ID, ATTEMPT, AGENT_ID, LANE when known) when stderr is
/// connected to the journal (JOURNAL_STREAM, systemd.exec(5)) or when configured; otherwise one
/// readable line per event on stderr. Each event is one sendmsg or one write(2), so threads can
/// share a logger without a lock and lines never interleave.
public struct Logger: Sendable {
    public let component: String
    public let useJournal: Bool
    public let minimumLevel: LogLevel

    public init(component: String, target: LogTarget = .auto, level: LogLevel = .info) {
        self.component = component
        self.minimumLevel = level
        switch target {
        case .journal: useJournal = true
        case .stderr: useJournal = false
        case .auto: useJournal = Logger.stderrIsJournal()
        }
    }

    /// JOURNAL_STREAM holds "device:inode" of the stream systemd connected; it is inherited by
    /// children that may have a different stderr, so compare it with what fd 2 really is.
    static func stderrIsJournal() -> Bool {
        guard let raw = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: raw).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// Structured fields of one log event, in order: `["TASK_ID": "42", "ATTEMPT": "1"]`.
    public struct Fields: ExpressibleByDictionaryLiteral, Sequence, Sendable {
        public var pairs: [(key: String, value: String)]
        public init(dictionaryLiteral elements: (String, String)...) { pairs = elements.map { (key: $0.0, value: $0.1) } }
        public init(_ pairs: [(key: String, value: String)]) { self.pairs = pairs }
        public func makeIterator() -> IndexingIterator<[(key: String, value: String)]> { pairs.makeIterator() }
        public static func + (a: Fields, b: Fields) -> Fields { Fields(a.pairs + b.pairs) }
    }

    public func debug(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> Fields = [:]) { log(.debug, message(), fields()) }
    public func info(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> Fields = [:]) { log(.info, message(), fields()) }
    public func notice(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> Fields = [:]) { log(.notice, message(), fields()) }
    public func warning(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> Fields = [:]) { log(.warning, message(), fields()) }
    public func error(_ message: @autoclosure () -> String, _ fields: @autoclosure () -> Fields = [:]) { log(.error, message(), fields()) }

    /// Whether a line at `level` would be written (callers skip building what would be dropped).
    public func isEnabled(_ level: LogLevel) -> Bool { level >= minimumLevel }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String, _ fields: @autoclosure () -> Fields = [:]) {
        guard level >= minimumLevel else { return }
        let text = message()
        let fields = fields()
        if useJournal {
            var entries: [(String, String)] = [
                ("MESSAGE", text), ("PRIORITY", String(level.syslogPriority)),
                ("SYSLOG_IDENTIFIER", "switchyard-\(component)"), ("COMPONENT", component),
            ]
            for (key, value) in fields where Logger.isValidFieldName(key) { entries.append((key, value)) }
            Logger.sendToJournal(entries)
        } else {
            var line = "\(Timestamp.iso8601(WallClock.now())) \(component) \(level.rawValue): \(text)"
            for (key, value) in fields {
                line += " \(key)=\(value.contains(" ") ? "\"\(value)\"" : value)"
            }
            line = line.replacingOccurrences(of: "\n", with: "\\n") + "\n"
            Logger.writeAll(2, line)
        }
    }

    /// journald field names: [A-Z0-9_], not starting with '_' (those are trusted fields).
    public static func isValidFieldName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first != 0x5f, name.utf8.count <= 64 else { return false }
        return name.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }

    /// sd_journal_sendv with every field in one buffer and the iovecs pointing into it, all inside
    /// one withUnsafe scope (a pointer escaping its closure would be undefined behaviour).
    static func sendToJournal(_ entries: [(String, String)]) {
        var buffer: [UInt8] = []
        var ranges: [(Int, Int)] = []
        for (key, value) in entries {
            let start = buffer.count
            buffer.append(contentsOf: key.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: value.utf8)
            ranges.append((start, buffer.count - start))
        }
        buffer.withUnsafeMutableBytes { raw in
            var iovecs = ranges.map { iovec(iov_base: raw.baseAddress! + $0.0, iov_len: $0.1) }
            _ = iovecs.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }

    static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}
