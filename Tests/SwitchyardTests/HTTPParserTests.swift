import Shared
import XCTest

final class HTTPParserTests: XCTestCase {
    private func parse(_ text: String, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        HTTPParser.parse(Array(text.utf8), limits: limits)
    }

    private func status(_ text: String, limits: HTTPLimits = HTTPLimits()) -> Int? {
        if case .failed(let error) = parse(text, limits: limits) { return error.status }
        return nil
    }

    func testSimpleGet_withQueryAndKeepAlive() {
        let text = "GET /control/api/tasks?status=queued&lane=a%20b HTTP/1.1\r\nHost: x\r\n\r\n"
        guard case .complete(let request, let consumed) = parse(text) else {
            return XCTFail("should parse")
        }
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.path, "/control/api/tasks")
        XCTAssertEqual(request.query, ["status": "queued", "lane": "a b"])
        XCTAssertTrue(request.keepAlive)
        XCTAssertEqual(consumed, text.utf8.count)
    }

    func testIncompleteInput_asksForMore() {
        XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: x\r\n"), .incomplete)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"), .incomplete)
        XCTAssertEqual(parse("GE"), .incomplete)
    }

    func testContentLengthBody_andPipelinedRequestsAreSeparated() {
        let text = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        guard case .complete(let first, let consumed) = parse(text) else { return XCTFail() }
        XCTAssertEqual(String(decoding: first.body, as: UTF8.self), "hello")
        guard case .complete(let second, _) = HTTPParser.parse(Array(Array(text.utf8)[consumed...])) else { return XCTFail() }
        XCTAssertEqual(second.path, "/b")
    }

    func testChunkedBody_isDecodedWithExtensionsAndTrailers() {
        let text = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n"
        guard case .complete(let request, let consumed) = parse(text) else { return XCTFail("\(parse(text))") }
        XCTAssertEqual(String(decoding: request.body, as: UTF8.self), "hello world")
        XCTAssertEqual(consumed, text.utf8.count)
    }

    func testFraming_RFC9112Rules() {
        // Content-Length with Transfer-Encoding (RFC 9112 section 6.3).
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 400)
        // Transfer-Encoding other than a final chunked.
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400)
        // Duplicate or conflicting Content-Length, or a list.
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"), 400)
        // Invalid header names, whitespace before the colon, obsolete folding.
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n"), 400)
        // Host: exactly one in HTTP/1.1.
        XCTAssertEqual(status("GET / HTTP/1.1\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400)
        // Request line.
        XCTAssertEqual(status("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400)
        XCTAssertEqual(status("GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505)
        XCTAssertEqual(status("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400)
        XCTAssertEqual(status("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"), 400)
        // Bad chunk encoding.
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX"), 400)
    }

    func testLimits_answer414_431_413() {
        var limits = HTTPLimits()
        limits.requestLineBytes = 64
        limits.headerBytes = 256
        limits.headerCount = 5
        limits.bodyBytes = 16
        XCTAssertEqual(status("GET /\(String(repeating: "a", count: 100)) HTTP/1.1\r\nHost: x\r\n\r\n", limits: limits), 414)
        XCTAssertEqual(status("GET /\(String(repeating: "a", count: 100))", limits: limits), 414, "even before the line ends")
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 300))\r\n\r\n", limits: limits), 431)
        let many = (0..<6).map { "X-\($0): v\r\n" }.joined()
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: x\r\n\(many)\r\n", limits: limits), 431)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n", limits: limits), 413, "refused before the body arrives")
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n\(String(repeating: "c", count: 17))\r\n0\r\n\r\n", limits: limits), 413)
    }

    func testHTTP10_andConnectionHeader() {
        guard case .complete(let old, _) = parse("GET / HTTP/1.0\r\n\r\n") else { return XCTFail() }
        XCTAssertFalse(old.keepAlive, "HTTP/1.0 without keep-alive closes")
        guard case .complete(let closing, _) = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") else { return XCTFail() }
        XCTAssertFalse(closing.keepAlive)
        XCTAssertEqual(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400)
    }

    func testBareLF_andLeadingEmptyLines_areTolerated() {
        guard case .complete(let request, _) = parse("\r\nGET /x HTTP/1.1\nHost: y\n\n") else { return XCTFail() }
        XCTAssertEqual(request.path, "/x")
        XCTAssertEqual(request.header("HOST"), "y")
    }

    func testGarbage_neverCrashes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<300, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = HTTPParser.parse(bytes)
            _ = HTTPParser.parse(Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + bytes)
        }
    }
}
