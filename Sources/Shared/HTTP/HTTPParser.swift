/// HTTP/1.1 request parsing (RFC 9112) as a pure function from bytes to a request or an error,
/// so tests and the fuzzer feed it directly. The server calls it each time bytes arrive.
public enum HTTPParser {
    public static func parse(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        bytes.withUnsafeBytes { parse($0, limits: limits) }
    }

    public static func parse(_ input: UnsafeRawBufferPointer, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        var cursor = 0
        // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line before the request line.
        var skipped = 0
        while cursor + 1 < input.count, skipped < 4 {
            if input[cursor] == 0x0d && input[cursor + 1] == 0x0a { cursor += 2; skipped += 1 }
            else if input[cursor] == 0x0a { cursor += 1; skipped += 1 }
            else { break }
        }
        // Request line.
        guard let (lineEnd, next) = findLineEnd(input, from: cursor, limit: cursor + limits.requestLineBytes) else {
            if input.count - cursor > limits.requestLineBytes { return .failed(HTTPParseError(414, "request line longer than \(limits.requestLineBytes) bytes")) }
            return .incomplete
        }
        let requestLine = Array(UnsafeRawBufferPointer(rebasing: input[cursor..<lineEnd]))
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .failed(HTTPParseError(400, "malformed request line"))
        }
        guard parts[0].allSatisfy(isTokenChar) else { return .failed(HTTPParseError(400, "invalid method")) }
        let method = String(decoding: parts[0], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        let minor: Int
        switch version {
        case "HTTP/1.1": minor = 1
        case "HTTP/1.0": minor = 0
        default:
            if version.hasPrefix("HTTP/"), version.count == 8 { return .failed(HTTPParseError(505, "HTTP version not supported")) }
            return .failed(HTTPParseError(400, "malformed HTTP version"))
        }
        let targetBytes = parts[1]
        guard targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return .failed(HTTPParseError(400, "invalid request target")) }
        let target = String(decoding: targetBytes, as: UTF8.self)
        guard target.hasPrefix("/") || (target == "*" && method == "OPTIONS") else {
            return .failed(HTTPParseError(400, "request target must be origin-form"))
        }
        cursor = next

        // Header section.
        var headers: [(name: String, value: String)] = []
        let headerStart = cursor
        while true {
            guard let (end, after) = findLineEnd(input, from: cursor, limit: headerStart + limits.headerBytes) else {
                if input.count - headerStart > limits.headerBytes { return .failed(HTTPParseError(431, "header section larger than \(limits.headerBytes) bytes")) }
                return .incomplete
            }
            if end == cursor { cursor = after; break }  // empty line: end of headers
            let line = UnsafeRawBufferPointer(rebasing: input[cursor..<end])
            if line[0] == 0x20 || line[0] == 0x09 {
                return .failed(HTTPParseError(400, "obsolete line folding is not accepted"))  // RFC 9112 section 5.2
            }
            guard let colon = line.firstIndex(of: 0x3a), colon > 0 else { return .failed(HTTPParseError(400, "header line without a name")) }
            let nameBytes = UnsafeRawBufferPointer(rebasing: line[0..<colon])
            // RFC 9112 section 5.1: no whitespace between the field name and the colon.
            guard nameBytes.allSatisfy(isTokenChar) else { return .failed(HTTPParseError(400, "invalid header name")) }
            var valueStart = colon + 1
            var valueEnd = line.count
            while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            let valueBytes = UnsafeRawBufferPointer(rebasing: line[valueStart..<valueEnd])
            guard valueBytes.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7f) }) else {
                return .failed(HTTPParseError(400, "invalid character in header value"))
            }
            headers.append((String(decoding: nameBytes, as: UTF8.self).lowercased(), String(decoding: valueBytes, as: UTF8.self)))
            if headers.count > limits.headerCount { return .failed(HTTPParseError(431, "more than \(limits.headerCount) header fields")) }
            cursor = after
        }

        // Host (RFC 9112 section 3.2): exactly one in HTTP/1.1.
        let hosts = headers.filter { $0.name == "host" }
        if minor == 1 && hosts.count != 1 { return .failed(HTTPParseError(400, hosts.isEmpty ? "missing Host header" : "more than one Host header")) }

        // Message body framing (RFC 9112 section 6).
        let transferEncodings = headers.filter { $0.name == "transfer-encoding" }
        let contentLengths = headers.filter { $0.name == "content-length" }
        var body: [UInt8] = []
        if !transferEncodings.isEmpty {
            if !contentLengths.isEmpty {
                return .failed(HTTPParseError(400, "Content-Length together with Transfer-Encoding"))  // section 6.3 item 3
            }
            if minor == 0 { return .failed(HTTPParseError(400, "Transfer-Encoding in an HTTP/1.0 request")) }
            let codings = transferEncodings.flatMap { $0.value.split(separator: ",") }.map { $0.trimmingOWS.lowercased() }
            guard let last = codings.last, last == "chunked" else {
                return .failed(HTTPParseError(400, "chunked must be the final transfer coding"))
            }
            guard codings.count == 1 else { return .failed(HTTPParseError(501, "transfer coding not implemented: \(codings.dropLast().joined(separator: ", "))")) }
            switch decodeChunked(input, from: cursor, limits: limits) {
            case .failure(let error): return .failed(error)
            case .success(nil): return .incomplete
            case .success(let (decoded, end)?):
                body = decoded
                cursor = end
            }
        } else if !contentLengths.isEmpty {
            guard contentLengths.count == 1 else { return .failed(HTTPParseError(400, "more than one Content-Length")) }
            let text = contentLengths[0].value
            guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let length = Int(text) else {
                return .failed(HTTPParseError(400, "invalid Content-Length"))
            }
            if length > limits.bodyBytes { return .failed(HTTPParseError(413, "body larger than \(limits.bodyBytes) bytes")) }
            if input.count - cursor < length { return .incomplete }
            body = Array(UnsafeRawBufferPointer(rebasing: input[cursor..<(cursor + length)]))
            cursor += length
        }

        let (path, query) = splitTarget(target)
        guard let path else { return .failed(HTTPParseError(400, "invalid percent-encoding in the path")) }
        return .complete(HTTPRequest(method: method, target: target, path: path, query: query, minorVersion: minor,
                                     headers: headers, body: body), consumed: cursor)
    }

    /// Finds the end of a line (CRLF, or a bare LF, which RFC 9112 section 2.2 lets a recipient
    /// accept) starting at `from`, not looking past `limit`. Returns (end of content, start of next line).
    static func findLineEnd(_ input: UnsafeRawBufferPointer, from: Int, limit: Int) -> (Int, Int)? {
        var index = from
        let stop = min(input.count, limit + 2)
        while index < stop {
            if input[index] == 0x0a {
                let end = index > from && input[index - 1] == 0x0d ? index - 1 : index
                return end - from > limit - from ? nil : (end, index + 1)
            }
            index += 1
        }
        return nil
    }

    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 0x30...0x39, 0x41...0x5a, 0x61...0x7a: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): return true
        default: return false
        }
    }

    /// RFC 9112 section 7.1. Returns nil while incomplete.
    static func decodeChunked(_ input: UnsafeRawBufferPointer, from start: Int, limits: HTTPLimits) -> Result<([UInt8], Int)?, HTTPParseError> {
        var cursor = start
        var body: [UInt8] = []
        while true {
            guard let (end, next) = findLineEnd(input, from: cursor, limit: cursor + 1024) else {
                return input.count - cursor > 1024 ? .failure(HTTPParseError(400, "chunk size line too long")) : .success(nil)
            }
            let line = UnsafeRawBufferPointer(rebasing: input[cursor..<end])
            let sizePart = line.prefix { $0 != UInt8(ascii: ";") }
            var size = 0
            var digits = 0
            for c in sizePart {
                let value: Int
                switch c {
                case 0x30...0x39: value = Int(c - 0x30)
                case 0x41...0x46: value = Int(c - 0x41 + 10)
                case 0x61...0x66: value = Int(c - 0x61 + 10)
                case 0x20, 0x09: continue  // BWS before extensions
                default: return .failure(HTTPParseError(400, "invalid chunk size"))
                }
                digits += 1
                guard digits <= 8 else { return .failure(HTTPParseError(413, "chunk too large")) }
                size = size * 16 + value
            }
            guard digits > 0 else { return .failure(HTTPParseError(400, "missing chunk size")) }
            cursor = next
            if size == 0 {
                // Trailer section: skip fields up to the empty line.
                var trailerBytes = 0
                while true {
                    guard let (tEnd, tNext) = findLineEnd(input, from: cursor, limit: cursor + limits.headerBytes) else {
                        return input.count - cursor > limits.headerBytes ? .failure(HTTPParseError(431, "trailer section too large")) : .success(nil)
                    }
                    if tEnd == cursor { return .success((body, tNext)) }
                    trailerBytes += tNext - cursor
                    if trailerBytes > limits.headerBytes { return .failure(HTTPParseError(431, "trailer section too large")) }
                    cursor = tNext
                }
            }
            if body.count + size > limits.bodyBytes { return .failure(HTTPParseError(413, "body larger than \(limits.bodyBytes) bytes")) }
            if input.count - cursor < size + 1 { return .success(nil) }
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[cursor..<(cursor + size)]))
            cursor += size
            if input[cursor] == 0x0d {
                if input.count - cursor < 2 { return .success(nil) }
                guard input[cursor + 1] == 0x0a else { return .failure(HTTPParseError(400, "chunk not followed by CRLF")) }
                cursor += 2
            } else if input[cursor] == 0x0a {
                cursor += 1
            } else {
                return .failure(HTTPParseError(400, "chunk not followed by CRLF"))
            }
        }
    }

    /// Splits "/a%20b?x=1&y" into ("/a b", ["x": "1", "y": ""]). Nil path on bad percent-encoding.
    static func splitTarget(_ target: String) -> (String?, [String: String]) {
        let pieces = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = percentDecode(Substring(pieces[0]), plusIsSpace: false)
        var query: [String: String] = [:]
        if pieces.count > 1 {
            for pair in pieces[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let key = percentDecode(kv[0], plusIsSpace: true), !key.isEmpty else { continue }
                query[key] = kv.count > 1 ? (percentDecode(kv[1], plusIsSpace: true) ?? "") : ""
            }
        }
        return (path, query)
    }

    public static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let c = iterator.popFirst() {
            if c == UInt8(ascii: "%") {
                guard let h = iterator.popFirst(), let l = iterator.popFirst(), let hi = hexValue(h), let lo = hexValue(l) else { return nil }
                bytes.append(hi << 4 | lo)
            } else if c == UInt8(ascii: "+") && plusIsSpace {
                bytes.append(0x20)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}
