import Shared
import XCTest

final class JSONTests: XCTestCase {
    func testParse_valuesAndEscapes() throws {
        let value = try JSON.parse(#" {"a": [1, -2.5, true, false, null], "s": "q\"\\\/\n\u00e9\ud83d\ude00", "big": 12345678901234} "#)
        XCTAssertEqual(value["a"], [1, -2.5, true, false, nil])
        XCTAssertEqual(value["s"]?.stringValue, "q\"\\/\né😀")
        XCTAssertEqual(value["big"]?.int64Value, 12_345_678_901_234)
    }

    func testParse_rejectsMalformedInput() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"unterminated", "01", "1.", "-", "{\"a\":1}x",
                    "\"\\ud800\"", "\"\u{01}\"", "[1e999]", "\"\\x\""] {
            XCTAssertThrowsError(try JSON.parse(bad), bad)
        }
    }

    func testParse_limitsDepth() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try JSON.parse(deep))
        XCTAssertNoThrow(try JSON.parse(deep, maxDepth: 200))
    }

    func testSerialize_isCanonicalAndRoundTrips() throws {
        let value: JSON = ["b": [1, "x\u{1}"], "a": ["nested": true], "c": 1.5]
        XCTAssertEqual(value.serialized(), #"{"a":{"nested":true},"b":[1,"x\u0001"],"c":1.5}"#)
        XCTAssertEqual(try JSON.parse(value.serialized()), value)
    }

    func testSHA256_knownVectors() {
        XCTAssertEqual(SHA256.hexDigest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testTimestamp_roundTrips() {
        let micros: Microseconds = 1_795_291_403_479_000
        XCTAssertEqual(Timestamp.parseISO8601(Timestamp.iso8601(micros)), micros)
        XCTAssertNil(Timestamp.parseISO8601("2026-13-01T00:00:00Z"))
        XCTAssertNil(Timestamp.parseISO8601("2026-01-01 00:00:00"))
    }
}

final class JSONNumberTests: XCTestCase {
    /// Found by the agent-output fuzzer: 1310E0 parsed as a double, serialised as 1310, and came
    /// back as an integer that did not compare equal.
    func testNumbers_compareByValue_andRoundTrip() throws {
        XCTAssertEqual(try JSON.parse("1310E0"), try JSON.parse("1310"))
        let value = try JSON.parse("1310E0")
        XCTAssertEqual(try JSON.parse(value.serialized()), value)
        XCTAssertNotEqual(try JSON.parse("1310.5"), try JSON.parse("1310"))
        XCTAssertEqual(JSON.double(1e300), JSON.double(1e300))
        XCTAssertNotEqual(JSON.int(Int64.max), JSON.double(9.3e18))
    }
}
