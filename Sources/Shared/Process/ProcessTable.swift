import CLinux
import Foundation
import Glibc

/// Read-only views of /proc (proc(5)) for finding and identifying processes.
public enum ProcessTable {
    public struct Entry: Sendable, Equatable {
        public var pid: pid_t
        public var ppid: pid_t
        public var state: Character
        /// Field 22 of /proc/PID/stat: start time in clock ticks since boot. With the pid it
        /// identifies a process across pid reuse.
        public var startTime: Int64
    }

    /// Parses /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so the
    /// fields are read after the last ')'.
    public static func entry(_ pid: pid_t) -> Entry? {
        guard let text = read("/proc/\(pid)/stat", limit: 4096), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field N is fields[N - 3].
        guard fields.count > 19, let ppid = pid_t(fields[1]), let start = Int64(fields[19]) else { return nil }
        return Entry(pid: pid, ppid: ppid, state: fields[0].first ?? "?", startTime: start)
    }

    public static func startTime(of pid: pid_t) -> Int64? { entry(pid)?.startTime }

    /// Every process visible in /proc.
    public static func all() -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { pid_t($0) }.compactMap(entry)
    }

    /// The descendants of `root` (not `root` itself), by following parent links.
    public static func descendants(of root: pid_t, in table: [Entry]) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for entry in table { children[entry.ppid, default: []].append(entry.pid) }
        var result: [pid_t] = []
        var stack = children[root] ?? []
        while let pid = stack.popLast() {
            result.append(pid)
            stack.append(contentsOf: children[pid] ?? [])
        }
        return result
    }

    /// Direct children of `pid` from /proc/PID/task/TID/children (proc(5)): cheap, no full scan.
    public static func children(of pid: pid_t) -> [pid_t] {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return [] }
        var result: [pid_t] = []
        for task in tasks {
            guard let text = read("/proc/\(pid)/task/\(task)/children", limit: 65_536) else { continue }
            result.append(contentsOf: text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        }
        return result
    }

    /// The value of `key` in a process's initial environment (/proc/PID/environ), if readable.
    public static func environmentValue(_ pid: pid_t, _ key: String) -> String? {
        guard let text = read("/proc/\(pid)/environ", limit: 256 * 1024) else { return nil }
        let prefix = key + "="
        for item in text.split(separator: "\0") where item.hasPrefix(prefix) {
            return String(item.dropFirst(prefix.count))
        }
        return nil
    }

    static func read(_ path: String, limit: Int) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        var total = 0
        while total < limit {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, limit - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: buffer[0..<total], as: UTF8.self)
    }

    /// Signals `pid` only if it is still the process that started at `startTime` (a pidfd is
    /// opened first, then identity checked, then the signal goes through the pidfd: no window
    /// in which a recycled pid could be hit).
    @discardableResult
    public static func signal(_ pid: pid_t, startTime: Int64, _ signal: Int32) -> Bool {
        let pidfd = clinux_pidfd_open(pid, 0)
        guard pidfd >= 0 else { return false }
        defer { close(pidfd) }
        guard self.startTime(of: pid) == startTime else { return false }
        return clinux_pidfd_send_signal(pidfd, signal) == 0
    }
}
