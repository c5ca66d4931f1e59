import Foundation
import LVDFormats
import LVDHost
import LVDRuntime
import LVDSDK
import XCTest

/// The tensor runtime through `lvd.tensor/1`, from a real Swift plugin library (built over
/// LVDPluginKit's wrapper only) and from C-style calls on the table.
final class TensorABITests: XCTestCase {
    func testSwiftPluginComputesGradientsThroughTheABI() throws {
        let temp = try TempDir()
        let library = TestPaths.products + "/libLVDTestGuidanceProbe.so"
        XCTAssertTrue(FileManager.default.fileExists(atPath: library), "swift test builds every product")
        try Fixture.writeManifest(in: temp.path, id: "test-guidance-probe", kind: "method", library: library)
        let catalog = PluginCatalog(searchPath: .standard(pluginPaths: [temp.path], environment: ["HOME": TestConfigHome.path]))
        let plugin = try PluginLoader().load(catalog.require(id: "test-guidance-probe", kind: .method))
        let method = try MethodInstance(plugin: plugin, params: try plugin.resolveParams([]))

        // The box covers the right half of the canvas.
        let layout = #"{"keyframes": [[{"id": 0, "name": "ball", "box": [256, 0, 256, 512]}]]}"#
        let handlesBefore = TensorAPI.handles.count
        /// Brightness inside the box over brightness outside, after `steps` guidance steps.
        func ratio(steps: Int) throws -> Float {
            let video = try method.generate(MethodRequest(prompt: "a ball", layoutJSON: layout, seed: 7,
                                                          frames: 2, width: 8, height: 4, steps: steps))
            XCTAssertEqual(video.shape, [2, 4, 8, 3])
            let pixels = video.toArray()
            var inside: Float = 0, outside: Float = 0
            for frame in 0..<2 {
                for y in 0..<4 {
                    for x in 0..<8 {
                        let value = pixels[((frame * 4 + y) * 8 + x) * 3]
                        if x >= 4 { inside += value } else { outside += value }
                    }
                }
            }
            return inside / outside
        }
        let unguided = try ratio(steps: 0), guided = try ratio(steps: 15)
        XCTAssertGreaterThan(guided, 5 * unguided, "guidance moved the attention into the box (ratio \(unguided) → \(guided))")
        XCTAssertEqual(TensorAPI.handles.count, handlesBefore, "every handle the plugin made was released")
    }

    func testOpCallsThroughTheCTable() throws {
        let api = TensorAPI.table.pointee
        var error = lvd_error()
        lvd_error_init(&error)
        func create(_ values: [Float], _ shape: [Int64]) -> OpaquePointer? {
            var out: OpaquePointer?
            XCTAssertEqual(api.create(LVD_DTYPE_F32, UInt32(shape.count), shape, values, &out, &error), LVD_OK, error.text)
            return out
        }
        let a = create([1, 2, 3, 4], [2, 2]), m = create([1, 0, 0, 1], [2, 2])
        XCTAssertEqual(api.set_requires_grad(a, true, &error), LVD_OK)
        var product: OpaquePointer?, energy: OpaquePointer?
        XCTAssertEqual(api.op("mul", [a, m], 2, nil, &product, &error), LVD_OK, error.text)
        XCTAssertEqual(api.op("sum", [product], 1, #"{"keepdims": false}"#, &energy, &error), LVD_OK, error.text)
        var value: Float = 0
        XCTAssertEqual(api.read(energy, &value, 4, &error), LVD_OK)
        XCTAssertEqual(value, 5)
        XCTAssertEqual(api.backward(energy, nil, &error), LVD_OK, error.text)
        var grad: OpaquePointer?
        XCTAssertEqual(api.grad(a, &grad, &error), LVD_OK)
        var values = [Float](repeating: 0, count: 4)
        XCTAssertEqual(api.read(grad, &values, 16, &error), LVD_OK)
        XCTAssertEqual(values, [1, 0, 0, 1], "∂(Σ a·m)/∂a = m")

        // Errors come back as a status and a message naming the op and the problem.
        var out: OpaquePointer?
        let cases: [(String, [OpaquePointer?], String?, Int32, String)] = [
            ("frobnicate", [a], nil, LVD_ERR_NOT_FOUND, "unknown op 'frobnicate'"),
            ("add", [a], nil, LVD_ERR_INVALID_ARGUMENT, "add: takes 2 inputs, got 1"),
            ("sum", [a], #"{"axis": 1}"#, LVD_ERR_INVALID_ARGUMENT, "sum: unknown attribute 'axis' (known: axes, keepdims)"),
            ("sum", [a], #"{"axes": [5]}"#, LVD_ERR_INVALID_ARGUMENT, "sum: axis 5 is out of range for rank 2"),
            ("softmax", [a], #"{"axis": "x"}"#, LVD_ERR_INVALID_ARGUMENT, "softmax: attribute 'axis' must be an integer"),
            ("topk", [a], "{", LVD_ERR_INVALID_ARGUMENT, "topk: attributes are not JSON"),
            ("matmul", [a, create([1, 2, 3], [3, 1])], nil, LVD_ERR_INVALID_ARGUMENT, "matmul: shape mismatch"),
        ]
        for (name, inputs, attributes, status, message) in cases {
            lvd_error_init(&error)
            XCTAssertEqual(api.op(name, inputs, UInt32(inputs.count), attributes, &out, &error), status, name)
            XCTAssertTrue(error.text.contains(message), "\(name): \(error.text)")
            XCTAssertNil(out, "out untouched on failure")
        }
        // A non-scalar backward without a seed, and a released handle.
        lvd_error_init(&error)
        XCTAssertEqual(api.backward(product, nil, &error), LVD_ERR_INVALID_ARGUMENT)
        XCTAssertTrue(error.text.contains("needs a seed"), error.text)
        XCTAssertEqual(api.release(m, &error), LVD_OK)
        XCTAssertEqual(api.op("neg", [m], 1, nil, &out, &error), LVD_ERR_RELEASED_HANDLE)
        XCTAssertTrue(error.text.contains("neg: input 0: tensor handle"), error.text)
        for handle in [a, product, energy, grad] { XCTAssertEqual(api.release(handle, &error), LVD_OK) }
    }

    func testNoGradScopesNestPerThread() throws {
        let api = TensorAPI.table.pointee
        var error = lvd_error()
        lvd_error_init(&error)
        var x: OpaquePointer?, y: OpaquePointer?
        XCTAssertEqual(api.create(LVD_DTYPE_F32, 1, [2], [1, 2] as [Float], &x, &error), LVD_OK)
        XCTAssertEqual(api.set_requires_grad(x, true, &error), LVD_OK)
        api.no_grad_begin()
        api.no_grad_begin()
        api.no_grad_end()
        XCTAssertEqual(api.op("exp", [x], 1, nil, &y, &error), LVD_OK)
        XCTAssertFalse(try TensorAPI.handles.resolve(y).requiresGrad, "still inside one scope: nothing recorded")
        api.no_grad_end()
        api.no_grad_end() // unmatched: ignored
        var z: OpaquePointer?
        XCTAssertEqual(api.op("exp", [x], 1, nil, &z, &error), LVD_OK)
        XCTAssertTrue(try TensorAPI.handles.resolve(z).requiresGrad)
        for handle in [x, y, z] { _ = api.release(handle, nil) }
    }

    func testEveryOpIsDocumented() throws {
        let doc = try String(contentsOfFile: TestPaths.repoRoot + "/docs/tensor-ops.md", encoding: .utf8)
        for name in OpRegistry.names {
            XCTAssertTrue(doc.contains("| `\(name)` |"), "docs/tensor-ops.md does not describe op '\(name)'")
        }
    }
}
