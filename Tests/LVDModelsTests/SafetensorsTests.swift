import Foundation
import LVDFormats
import LVDModels
import LVDRuntime
import XCTest

final class SafetensorsTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/small.safetensors").path

    /// A safetensors file from a header object and data bytes.
    static func build(header: String, data: [UInt8]) -> [UInt8] {
        let json = Array(header.utf8)
        var bytes: [UInt8] = (0..<8).map { UInt8((json.count >> (8 * $0)) & 0xFF) }
        bytes += json
        bytes += data
        return bytes
    }

    static func floats(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } } }

    func testReadsTheReferenceLibrarysFile() throws {
        // Written by Scripts/make_safetensors_fixture.py (safetensors.torch.save_file).
        let file = try SafetensorsFile(path: Self.fixture)
        XCTAssertEqual(file.metadata["note"], "lvd test fixture")
        XCTAssertEqual(Set(file.entries.keys), ["linear.weight", "linear.bias", "half.weight", "brain.weight", "position_ids"])
        let expected: [Float] = [0.5, -1.25, 2.0, 0.125, -3.0, 4.5]
        for name in ["linear.weight", "half.weight", "brain.weight"] {
            let tensor = try file.tensor(name)
            XCTAssertEqual(tensor.shape, [3, 2], name)
            XCTAssertEqual(tensor.dtype, .f32, "weights are converted to f32 compute")
            XCTAssertEqual(tensor.toArray(), expected, name)
        }
        XCTAssertEqual(file.entries["position_ids"]?.dtype, "I64")
        XCTAssertThrowsError(try file.tensor("position_ids")) {
            XCTAssertEqual("\($0)", "\(Self.fixture): tensor 'position_ids': dtype I64 is not a weight type (F32, F16, BF16)")
        }
    }

    func testBadFilesAreErrorsThatNameTheFileAndTensor() {
        let good = Self.floats([1, 2])
        let cases: [([UInt8], String)] = [
            ([1, 2, 3], "shorter than the 8-byte header length"),
            (Array(Self.build(header: "{}", data: []).prefix(9)), "header length 2 exceeds the file"),
            ([200, 0, 0, 0, 0, 0, 0, 0] + Array(repeating: 32, count: 20), "header length 200 exceeds the file"),
            ([255, 255, 255, 255, 255, 255, 255, 127] + Array(repeating: 32, count: 20), "is out of range"),
            (Self.build(header: "{\"a\": ", data: []), "header is not valid JSON"),
            (Self.build(header: "[1, 2]", data: []), "header must be a JSON object"),
            (Self.build(header: #"{"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}"#, data: good), "tensor 'w': unknown dtype \"F33\""),
            (Self.build(header: #"{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, data: good), "tensor 'w': shape [-2] is not a list of non-negative integers"),
            (Self.build(header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}"#, data: good), "tensor 'w': data_offsets [0, 16] lie outside the data section (8 bytes)"),
            (Self.build(header: #"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: good), "tensor 'w': 8 bytes for F32 shape [3] (needs 12)"),
            (Self.build(header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#, data: good), "tensor 'w': data_offsets [8, 0] lie outside"),
            (Self.build(header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: good), "overlap"),
            (Self.build(header: #"{"w": {"dtype": "F32", "shape": [2]}}"#, data: good), "tensor 'w': data_offsets must be [begin, end]"),
            (Self.build(header: #"{"__metadata__": {"a": 1}}"#, data: []), "__metadata__.a must be a string"),
        ]
        for (bytes, message) in cases {
            XCTAssertThrowsError(try SafetensorsFile(bytes: bytes, name: "bad.safetensors"), message) { error in
                XCTAssertTrue("\(error)".hasPrefix("bad.safetensors: "), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "expected '\(message)' in: \(error)")
            }
        }
        XCTAssertThrowsError(try SafetensorsFile(path: "/nonexistent/model.safetensors")) {
            XCTAssertTrue("\($0)".hasPrefix("/nonexistent/model.safetensors: cannot open"), "\($0)")
        }
    }

    func testFuzzedHeadersNeverCrashTheParser() throws {
        // Mutations of the reference file's header and length: every one parses or throws a
        // ModelError; reaching the end without a trap is the point.
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.fixture)))
        let headerEnd = 8 + original.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var generator = SystemRandomNumberGenerator()
        var parsed = 0, rejected = 0
        for _ in 0..<20_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0..<headerEnd, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes[position] = [UInt8](",:[]{}\"0123456789-e".utf8).randomElement(using: &generator)!
                default: bytes.removeSubrange(position..<Swift.min(bytes.count, position + Int.random(in: 1...8, using: &generator)))
                }
            }
            do {
                let file = try SafetensorsFile(bytes: bytes, name: "fuzz")
                for name in file.entries.keys { _ = try? file.tensor(name) }
                parsed += 1
            } catch {
                rejected += 1
            }
        }
        XCTAssertEqual(parsed + rejected, 20_000)
        XCTAssertGreaterThan(rejected, 10_000, "most mutations break the header")
    }

    /// A one-layer module for strict loading.
    final class Tiny: Module {
        @Key("linear") var linear: Linear
        override init() {
            super.init()
            linear = Linear(2, 3)
        }
    }

    func testStrictLoadingNamesMissingExtraAndMisshapenTensors() throws {
        let file = try SafetensorsFile(path: Self.fixture)
        let tiny = Tiny()
        // Extra checkpoint tensors are an error…
        XCTAssertThrowsError(try tiny.load(from: [file])) {
            XCTAssertTrue("\($0)".contains("3 tensor(s) the model does not have, e.g. 'brain.weight', 'half.weight'"), "\($0)")
        }
        // …unless the sanitize step, the one place checkpoint quirks live, drops them.
        try tiny.load(from: [file]) { $0.hasPrefix("linear.") ? $0 : nil }
        XCTAssertEqual(tiny.linear.weight.value?.toArray(), [0.5, -1.25, 2.0, 0.125, -3.0, 4.5])
        XCTAssertEqual(tiny.linear.bias?.value?.toArray(), [0.1, 0.2, 0.3])

        XCTAssertThrowsError(try Tiny().load(from: [file]) { $0 == "linear.weight" ? $0 : nil }) {
            XCTAssertEqual("\($0)", "\(Self.fixture): missing tensor 'linear.bias' (shape [3])")
        }
        let wrong = try SafetensorsFile(bytes: Self.build(
            header: #"{"linear.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "linear.bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}}"#,
            data: Self.floats([Float](repeating: 1, count: 9))), name: "wrong.safetensors")
        XCTAssertThrowsError(try Tiny().load(from: [wrong])) {
            XCTAssertEqual("\($0)", "wrong.safetensors: tensor 'linear.weight' has shape [2, 3], the model expects [3, 2]")
        }
    }
}
