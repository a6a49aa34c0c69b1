import Foundation
import Shared
import XCTest

final class ConfigurationTests: XCTestCase {
    func testEmbeddedDefault_needsNoConfiguration() throws {
        let config = try Configuration.load(environment: [:])
        XCTAssertEqual(config.mode, .embedded)
        XCTAssertTrue(config.stateDirectory.hasSuffix("/.switchyard"))
        XCTAssertEqual(config.databasePath, config.stateDirectory + "/switchyard.db")
        XCTAssertEqual(config.gateListen, "127.0.0.1:8787")
        XCTAssertEqual(config.synchronous, .full)
        XCTAssertFalse(config.databaseOptions.profileStatements)
        XCTAssertTrue(try Configuration.load(environment: ["SWITCHYARD_SQL_PROFILE": "1"]).databaseOptions.profileStatements)
    }

    func testErrors_nameTheVariable() {
        let cases: [([String: String], String)] = [
            (["SWITCHYARD_SYNCHRONOUS": "fast"], "SWITCHYARD_SYNCHRONOUS"),
            (["SWITCHYARD_GATE_LISTEN": "localhost"], "SWITCHYARD_GATE_LISTEN"),
            (["SWITCHYARD_GATE_LISTEN": "127.0.0.1:99999"], "SWITCHYARD_GATE_LISTEN"),
            (["SWITCHYARD_MODE": "prod"], "SWITCHYARD_MODE"),
            (["SWITCHYARD_BUSY_TIMEOUT_MS": "soon"], "SWITCHYARD_BUSY_TIMEOUT_MS"),
            (["SWITCHYARD_SQL_PROFILE": "yes"], "SWITCHYARD_SQL_PROFILE"),
            (["SWITCHYARD_SYNCRONOUS": "FULL"], "SWITCHYARD_SYNCRONOUS"),
            (["SWITCHYARD_ENV_FILE": "/nonexistent/switchyard.env"], "SWITCHYARD_ENV_FILE"),
        ]
        for (env, variable) in cases {
            XCTAssertThrowsError(try Configuration.load(environment: env)) { error in
                XCTAssertEqual((error as? ConfigurationError)?.variable, variable, "\(error)")
            }
        }
    }

    func testListenAddress_acceptsIPv4AndIPv6() throws {
        XCTAssertEqual(try ListenAddress.parse("127.0.0.1:8787"), ListenAddress(host: "127.0.0.1", port: 8787, isIPv6: false))
        XCTAssertEqual(try ListenAddress.parse("[::1]:9000"), ListenAddress(host: "::1", port: 9000, isIPv6: true))
        XCTAssertThrowsError(try ListenAddress.parse("[::1]"))
    }

    func testEnvironmentFile_systemdSyntax() throws {
        let text = """
        # comment
        ; another
        SWITCHYARD_MODE=production
          SWITCHYARD_LOG_LEVEL = debug
        QUOTED="a \\"b\\" c"
        SINGLE='x y'
        CONTINUED=one \\
        two
        EMPTY=
        """
        let pairs = try EnvironmentFile.parse(text)
        let values = Dictionary(pairs.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        XCTAssertEqual(values["SWITCHYARD_MODE"], "production")
        XCTAssertEqual(values["SWITCHYARD_LOG_LEVEL"], "debug")
        XCTAssertEqual(values["QUOTED"], "a \"b\" c")
        XCTAssertEqual(values["SINGLE"], "x y")
        XCTAssertEqual(values["CONTINUED"], "one two")
        XCTAssertEqual(values["EMPTY"], "")
        XCTAssertThrowsError(try EnvironmentFile.parse("NOEQUALS")) { error in
            XCTAssertEqual((error as? EnvironmentFile.ParseError)?.line, 1)
        }
        XCTAssertThrowsError(try EnvironmentFile.parse("A=ok\nB=\"open"))
    }

    func testEnvironmentFile_fillsIn_andEnvironmentWins() throws {
        let sandbox = Sandbox()
        let file = sandbox.path + "/switchyard.env"
        try "SWITCHYARD_MODE=production\nSWITCHYARD_SYNCHRONOUS=NORMAL\n".write(toFile: file, atomically: true, encoding: .utf8)
        let config = try Configuration.load(environment: ["SWITCHYARD_ENV_FILE": file, "SWITCHYARD_SYNCHRONOUS": "FULL"])
        XCTAssertEqual(config.mode, .production)
        XCTAssertEqual(config.synchronous, .full)
        try "SWITCHYARD_TYPO=1\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Configuration.load(environment: ["SWITCHYARD_ENV_FILE": file]))
    }
}
