/// Parses systemd's EnvironmentFile= syntax (systemd.exec(5), "EnvironmentFile="): KEY=VALUE lines,
/// '#' or ';' comments, blank lines, single or double quotes, backslash escapes in double quotes and
/// a trailing backslash continuing a line. Pure function, so tests feed it directly.
public enum EnvironmentFile {
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        var logical = ""
        var startLine = 0
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if logical.isEmpty { startLine = lineNumber }
            if line.hasSuffix("\\") && !line.hasSuffix("\\\\") {
                logical += line.dropLast()
                continue
            }
            logical += line
            defer { logical = "" }
            let trimmed = logical.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw ParseError(line: startLine, reason: "expected KEY=VALUE")
            }
            var key = String(trimmed[..<equals])
            while key.hasSuffix(" ") || key.hasSuffix("\t") { key.removeLast() }
            if key.hasPrefix("export ") { key = String(key.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard !key.isEmpty, key.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }),
                  !(key.utf8.first! >= 0x30 && key.utf8.first! <= 0x39) else {
                throw ParseError(line: startLine, reason: "invalid variable name '\(key.prefix(64))'")
            }
            let value = try parseValue(trimmed[trimmed.index(after: equals)...], line: startLine)
            result.append((key, value))
        }
        if !logical.isEmpty { throw ParseError(line: startLine, reason: "file ends inside a continued line") }
        return result
    }

    private static func parseValue(_ raw: Substring, line: Int) throws(ParseError) -> String {
        let text = raw.drop(while: { $0 == " " || $0 == "\t" })
        guard let first = text.first else { return "" }
        if first == "'" || first == "\"" {
            var value = ""
            var index = text.index(after: text.startIndex)
            while index < text.endIndex {
                let c = text[index]
                if c == first {
                    let rest = text[text.index(after: index)...].trimmingCharacters(in: .whitespaces)
                    guard rest.isEmpty else { throw ParseError(line: line, reason: "text after the closing quote") }
                    return value
                }
                if c == "\\" && first == "\"" {
                    index = text.index(after: index)
                    guard index < text.endIndex else { break }
                    switch text[index] {
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    default: value.append(text[index])
                    }
                } else {
                    value.append(c)
                }
                index = text.index(after: index)
            }
            throw ParseError(line: line, reason: "unterminated quote")
        }
        var value = String(text)
        while value.hasSuffix(" ") || value.hasSuffix("\t") { value.removeLast() }
        return value
    }
}
