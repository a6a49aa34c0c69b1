// libFuzzer target for the agent-output parsers of every format and the JSON parser under them.
// Built by scripts/fuzz.sh with the Shared sources (see there).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgentOutput(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    for format in AgentProfile.OutputFormat.allCases {
        let (event, reference) = AgentOutputParser.parseWithReference(line, format: format)
        if case .outcome(let outcome) = event {
            if let cost = outcome.costUSD { precondition(cost.isFinite && cost >= 0, "negative or infinite cost") }
            if let usage = outcome.usage { precondition(usage.input >= 0 && usage.output >= 0, "negative tokens") }
        }
        if let reference { precondition(format == .switchyard || format == .zot, "reference from \(format)") }
    }
    if let value = try? JSON.parse(line) {
        // What we serialise parses back to the same value.
        precondition((try? JSON.parse(value.serialized())) == value, "JSON round trip differs")
    }
    return 0
}
