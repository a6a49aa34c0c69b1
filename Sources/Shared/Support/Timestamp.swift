import Foundation

/// RFC 3339 rendering and parsing of `Microseconds`.
public enum Timestamp {
    public static func iso8601(_ micros: Microseconds) -> String {
        var seconds = time_t(micros / 1_000_000)
        let fraction = Int((micros % 1_000_000 + 1_000_000) % 1_000_000) / 1000
        if micros < 0 && micros % 1_000_000 != 0 { seconds -= 1 }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(fraction), 3))Z"
    }

    public static func iso8601(_ micros: Microseconds?) -> JSON {
        micros.map { .string(iso8601($0)) } ?? .null
    }

    /// Accepts `YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM]`.
    public static func parseISO8601(_ text: String) -> Microseconds? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20 else { return nil }
        func number(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= bytes.count else { return nil }
            var value = 0
            for b in bytes[start..<(start + count)] {
                guard b >= 0x30 && b <= 0x39 else { return nil }
                value = value * 10 + Int(b - 0x30)
            }
            return value
        }
        guard let year = number(0, 4), bytes[4] == 0x2d, let month = number(5, 2), bytes[7] == 0x2d,
              let day = number(8, 2), bytes[10] == 0x54 || bytes[10] == 0x74 || bytes[10] == 0x20,
              let hour = number(11, 2), bytes[13] == 0x3a, let minute = number(14, 2), bytes[16] == 0x3a,
              let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var micros = 0
        if index < bytes.count, bytes[index] == 0x2e {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                if digits < 6 { micros = micros * 10 + Int(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 6) { micros *= 10 }
        }
        guard index < bytes.count else { return nil }
        var offsetSeconds = 0
        if bytes[index] == 0x5a || bytes[index] == 0x7a {
            index += 1
        } else if bytes[index] == 0x2b || bytes[index] == 0x2d {
            guard let oh = number(index + 1, 2), bytes.count > index + 3, bytes[index + 3] == 0x3a,
                  let om = number(index + 4, 2) else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (bytes[index] == 0x2d ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return (Int64(seconds) - Int64(offsetSeconds)) * 1_000_000 + Int64(micros)
    }
}
