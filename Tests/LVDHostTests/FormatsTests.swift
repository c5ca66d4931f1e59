import LVDFormats
import XCTest

final class JSONTests: XCTestCase {
    func testParsesEveryValueKindAndKeepsKeyOrder() throws {
        let value = try JSONValue.parse(#" {"z": 1, "a": [true, false, null, -0.5e1, "x\u00e9\n\ud83d\ude00"], "m": {}} "#)
        let object = try XCTUnwrap(value.objectValue)
        XCTAssertEqual(object.keys, ["z", "a", "m"])
        XCTAssertEqual(object["a"], .array([.bool(true), .bool(false), .null, .number(-5), .string("xé\n😀")]))
        XCTAssertEqual(object["m"], .object(JSONObject()))
        XCTAssertEqual(object["z"]?.intValue, 1)
    }

    func testSyntaxErrorsCarryLineAndColumn() {
        let cases: [(String, Int, Int, String)] = [
            ("{\"a\": 1,\n \"b\": [1,,2]}", 2, 10, "unexpected character ','"),
            ("{\"a\": tru}", 1, 7, "invalid literal, expected 'true'"),
            ("{\"a\": 1} x", 1, 10, "unexpected text after the JSON value"),
            ("", 1, 1, "unexpected end of input"),
            ("{\"a\": 1, \"a\": 2}", 1, 10, "duplicate key \"a\""),
            ("\"abc", 1, 1, "unterminated string"),
            ("[01]", 1, 3, "expected ',' or ']'"),
            ("[1e999]", 1, 2, "out of range"),
            ("\"\\ud800\"", 1, 8, "unpaired surrogate"),
            ("\"a\tb\"", 1, 3, "control character"),
            ("{\"é\": x}", 1, 7, "unexpected character 'x'"),
        ]
        for (text, line, column, reason) in cases {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { error in
                guard let error = error as? JSONSyntaxError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.line, line, "\(text): \(error)")
                XCTAssertEqual(error.column, column, "\(text): \(error)")
                XCTAssertTrue(error.reason.contains(reason), "\(text): \(error)")
            }
        }
    }

    func testInvalidUTF8InAStringIsAnError() {
        XCTAssertThrowsError(try JSONValue.parse(bytes: [0x22, 0xFF, 0x22])) { error in
            XCTAssertTrue("\(error)".contains("not valid UTF-8"), "\(error)")
        }
    }

    func testDeepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000)
        XCTAssertThrowsError(try JSONValue.parse(deep)) { error in
            XCTAssertTrue("\(error)".contains("nesting deeper than 256"), "\(error)")
        }
        XCTAssertNoThrow(try JSONValue.parse(String(repeating: "[", count: 200) + String(repeating: "]", count: 200)))
    }

    func testSerialisationRoundTrips() throws {
        let text = #"{"s": "q\"\\\u0001\t", "n": [1, 2.5, -3, 1e300], "o": {"k": [{"a": null}]}, "b": false}"#
        let value = try JSONValue.parse(text)
        XCTAssertEqual(try JSONValue.parse(value.serialized()), value)
        XCTAssertEqual(try JSONValue.parse(value.serialized(pretty: true)), value)
        XCTAssertEqual(JSONValue.array([.number(3), .number(0.25)]).serialized(), "[3,0.25]")
    }

    func testRandomMutationsNeverCrashTheParser() {
        // Every mutated input either parses or throws a JSONSyntaxError; the loop reaching its
        // end is the assertion that nothing trapped.
        var generator = SystemRandomNumberGenerator()
        let seed = Array(#"{"id": "file", "kind": "planner", "box": [0, 1.5e2, -3, 4], "s": "\u00e9\n"}"#.utf8)
        var parsed = 0, rejected = 0
        for _ in 0..<20_000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: position)
                default: bytes.insert(seed[Int.random(in: 0..<seed.count, using: &generator)], at: position)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            do { _ = try JSONValue.parse(bytes: bytes); parsed += 1 } catch { rejected += 1 }
        }
        XCTAssertEqual(parsed + rejected, 20_000)
        XCTAssertGreaterThan(rejected, 0)
    }
}

final class ParamsSchemaTests: XCTestCase {
    let schema = ParamsSchema(params: [
        .init("steps", .integer, default: .number(40), description: "steps", minimum: 1, maximum: 1000),
        .init("scale", .number, default: .number(7.5)),
        .init("mode", .string, default: .string("fast"), allowed: [.string("fast"), .string("exact")]),
        .init("fuser", .boolean, default: .bool(true)),
        .init("layers", .array),
        .init("path", .string),
    ], required: ["path"])

    func testConvertsCommandLineTextByDeclaredType() throws {
        XCTAssertEqual(try schema.value(for: "steps", fromText: "12"), .number(12))
        XCTAssertEqual(try schema.value(for: "scale", fromText: "0.5"), .number(0.5))
        XCTAssertEqual(try schema.value(for: "fuser", fromText: "no"), .bool(false))
        XCTAssertEqual(try schema.value(for: "layers", fromText: "[1, 2]"), .array([.number(1), .number(2)]))
        XCTAssertEqual(try schema.value(for: "path", fromText: " spaced "), .string(" spaced "))
    }

    func testRejectsWithMessagesThatNameTheParam() {
        let cases: [(String, String, String)] = [
            ("stepz", "1", "unknown param 'stepz' (known: steps, scale, mode, fuser, layers, path)"),
            ("steps", "1.5", "param 'steps' expects an integer, got '1.5'"),
            ("steps", "0", "param 'steps' = 0 is below the minimum 1"),
            ("steps", "1001", "param 'steps' = 1001 is above the maximum 1000"),
            ("scale", "nan", "param 'scale' expects a number, got 'nan'"),
            ("mode", "slow", #"param 'mode' = "slow" is not one of: "fast", "exact""#),
            ("fuser", "maybe", "param 'fuser' expects a boolean (true/false), got 'maybe'"),
            ("layers", "{}", "param 'layers' expects an array, got object {}"),
            ("layers", "[1,", "param 'layers' expects an array as JSON"),
        ]
        for (name, text, message) in cases {
            XCTAssertThrowsError(try schema.value(for: name, fromText: text)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(name)=\(text): \(error)")
            }
        }
    }

    func testResolveLayersDefaultsManifestAndUserAndRequiresRequired() throws {
        let resolved = try schema.resolve([
            ("manifest", JSONObject(["steps": .number(20), "path": .string("a")])),
            ("--param", JSONObject(["steps": .number(30)])),
        ])
        XCTAssertEqual(resolved["steps"], .number(30))
        XCTAssertEqual(resolved["scale"], .number(7.5))
        XCTAssertEqual(resolved["path"], .string("a"))
        XCTAssertThrowsError(try schema.resolve([])) { error in
            XCTAssertEqual("\(error)", "param 'path' is required (give --param path=…)")
        }
        XCTAssertThrowsError(try schema.resolve([("manifest m.json", JSONObject(["steps": .string("x")]))])) { error in
            XCTAssertTrue("\(error)".hasPrefix("manifest m.json: param 'steps' expects an integer"), "\(error)")
        }
    }

    func testSchemaJSONRoundTrips() throws {
        let parsed = try ParamsSchema.parse(schema.json.serialized())
        XCTAssertEqual(parsed, schema)
    }

    func testInvalidSchemasAreRejected() {
        let cases: [(String, String)] = [
            ("[]", "must be a JSON object"),
            (#"{"properties": {"a": {"type": "float"}}}"#, "property 'a' needs \"type\""),
            (#"{"properties": {"a": {"type": "integer", "default": "x"}}}"#, "default of param 'a' expects an integer"),
            (#"{"properties": {}, "required": ["b"]}"#, "requires 'b', which it does not declare"),
            (#"{"properties": {"a": {"type": "string", "enum": []}}}"#, "\"enum\" must be a non-empty array"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try ParamsSchema.parse(text)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(text): \(error)")
            }
        }
        XCTAssertEqual(try ParamsSchema.parse(nil), ParamsSchema())
    }
}

final class LayoutFormatTests: XCTestCase {
    func testDecodesAndReEncodes() throws {
        let text = """
        {"format": "lvd.layout/1", "prompt": "a dog", "reasoning": "r", "canvas": {"width": 512, "height": 320},
         "keyframes": [[{"id": 0, "name": "dog", "box": [0, 300, 110.5, 90]}], []], "background": "park"}
        """
        let layout = try Layout.decode(json: text, source: "t.json")
        XCTAssertEqual(layout.canvasHeight, 320)
        XCTAssertEqual(layout.keyframes[0][0].box, [0, 300, 110.5, 90])
        XCTAssertEqual(layout.keyframes[1], [])
        XCTAssertEqual(try Layout.decode(layout.json, source: "again"), layout)
    }

    func testErrorsNameSourcePathAndReason() {
        let cases: [(String, String)] = [
            ("[]", "t.json: a layout must be a JSON object, got array"),
            ("{}", "t.json: keyframes: missing"),
            (#"{"keyframes": []}"#, "t.json: keyframes: must hold at least one keyframe"),
            (#"{"keyframes": [[{"id": 0, "name": "a", "box": [0, 0, 1]}]]}"#, "t.json: keyframes[0][0].box: must be [x, y, w, h] (4 numbers), got [0,0,1]"),
            (#"{"keyframes": [[], [{"id": -1, "name": "a", "box": [0, 0, 1, 1]}]]}"#, "t.json: keyframes[1][0].id: must be a non-negative integer, got -1"),
            (#"{"keyframes": [[{"id": 0, "name": " ", "box": [0, 0, 1, 1]}]]}"#, "keyframes[0][0].name: must be a non-empty string"),
            (#"{"keyframes": [[{"id": 0, "name": "a", "box": [0, 0, -1, 1]}]]}"#, "keyframes[0][0].box: width and height must not be negative"),
            (#"{"keyframes": [[{"id": 0, "name": "a", "box": [0, 0, 1, 1], "colour": 1}]]}"#, "keyframes[0][0].colour: unknown field"),
            (#"{"format": "lvd.layout/2", "keyframes": [[]]}"#, "format: expected \"lvd.layout/1\""),
            (#"{"keyframes": [[]], "canvas": {"width": 0, "height": 5}}"#, "canvas.width: must be an integer in 1...16384, got 0"),
            (#"{"keyframes": [[]], "prompt": 5}"#, "prompt: must be a string, got integer"),
            (#"{"keyframes": [[]], "frames": 5}"#, "frames: unknown field"),
            ("{\"keyframes\": [" + Array(repeating: "[]", count: 65).joined(separator: ",") + "]}", "65 keyframes, at most 64"),
            ("{\"keyframes\": [[}", "t.json: not JSON: line 1, column 17"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try Layout.decode(json: text, source: "t.json")) { error in
                XCTAssertTrue("\(error)".contains(message), "\(text): \(error)")
            }
        }
    }

    func testBoxesOutsideTheCanvasAreKeptNotClipped() throws {
        // STAGE1.md §2.2: boxes are never clipped.
        let layout = try Layout.decode(json: #"{"keyframes": [[{"id": 0, "name": "a", "box": [-20, 500, 100, 100]}]]}"#, source: "t")
        XCTAssertEqual(layout.keyframes[0][0].box, [-20, 500, 100, 100])
    }
}
