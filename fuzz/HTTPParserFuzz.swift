// libFuzzer target for the HTTP request parser (a pure function over bytes).
// Built by scripts/fuzz.sh with: swiftc -sanitize=fuzzer,address -parse-as-library
// together with Sources/Shared/HTTP/HTTPRequest.swift and HTTPParser.swift.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafeRawPointer, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var limits = HTTPLimits()
    limits.bodyBytes = 4096
    limits.headerBytes = 4096
    limits.requestLineBytes = 1024
    switch HTTPParser.parse(bytes, limits: limits) {
    case .complete(let request, let consumed):
        // Invariants: the parser never claims more than it was given, and what it consumed
        // parses to the same request again.
        precondition(consumed > 0 && consumed <= size, "consumed \(consumed) of \(size)")
        precondition(request.body.count <= limits.bodyBytes, "body over the limit")
        let again = HTTPParser.parse(UnsafeRawBufferPointer(rebasing: bytes[0..<consumed]), limits: limits)
        guard case .complete(let same, let sameConsumed) = again, sameConsumed == consumed, same == request else {
            preconditionFailure("re-parsing the consumed prefix differs")
        }
    case .failed(let error):
        precondition([400, 413, 414, 431, 501, 505].contains(error.status), "unexpected status \(error.status)")
    case .incomplete:
        break
    }
    return 0
}
