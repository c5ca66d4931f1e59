import Foundation
import LVDFormats
import LVDRuntime
import XCTest

/// One table-driven harness for every op of the runtime (ggml's test-backend-ops, tinygrad's
/// helper_test_op): each case names a builder; Fixtures/ops.json holds, per case, the inputs,
/// torch's output and torch's gradient of sum(output · R). Regenerate with
///     .venv/bin/python Scripts/make_op_fixtures.py Tests/LVDRuntimeTests/Fixtures/ops.json
/// Tolerances: forward and backward within 1e-4 relative (+1e-5 absolute) of torch; backward
/// also within 2e-2 relative of central finite differences computed here.
struct OpCase {
    let name: String
    let build: ([Tensor]) throws -> Tensor
    /// Finite-difference step; smaller for ops with kinks (max, abs, …).
    var step: Float = 1e-2

    init(_ name: String, step: Float = 1e-2, _ build: @escaping ([Tensor]) throws -> Tensor) {
        self.name = name
        self.step = step
        self.build = build
    }
}

let opCases: [OpCase] = [
    OpCase("add_broadcast") { try $0[0] + $0[1] },
    OpCase("sub") { try $0[0] - $0[1] },
    OpCase("mul_broadcast") { try $0[0] * $0[1] },
    OpCase("div") { try $0[0] / $0[1] },
    OpCase("neg") { try -$0[0] },
    OpCase("exp") { try $0[0].exp() },
    OpCase("log") { try $0[0].log() },
    OpCase("sqrt") { try $0[0].sqrt() },
    OpCase("sin") { try $0[0].sin() },
    OpCase("cos") { try $0[0].cos() },
    OpCase("tanh") { try $0[0].tanh() },
    OpCase("sigmoid") { try $0[0].sigmoid() },
    OpCase("silu") { try $0[0].silu() },
    OpCase("gelu") { try $0[0].gelu() },
    OpCase("quick_gelu") { try $0[0].quickGELU() },
    OpCase("geglu") { try $0[0].geglu() },
    OpCase("pow3") { try $0[0].pow(3) },
    OpCase("pow_half") { try $0[0].pow(0.5) },
    OpCase("abs", step: 1e-3) { try $0[0].abs() },
    OpCase("maximum", step: 1e-3) { try Tensor.maximum($0[0], $0[1]) },
    OpCase("where") { try Tensor.where($0[0], $0[1], $0[2]) },
    OpCase("sum_all") { try $0[0].sum() },
    OpCase("sum_axes_02") { try $0[0].sum(axes: [0, 2]) },
    OpCase("sum_axis1_keep") { try $0[0].sum(axes: [1], keepDims: true) },
    OpCase("mean_last") { try $0[0].mean(axes: [-1]) },
    OpCase("max_axis1", step: 1e-3) { try $0[0].max(axes: [1]) },
    OpCase("max_axes_02", step: 1e-3) { try $0[0].max(axes: [0, 2]) },
    OpCase("topk", step: 1e-3) { try $0[0].topK(4) },
    OpCase("softmax_last") { try $0[0].softmax(axis: -1) },
    OpCase("softmax_axis1") { try $0[0].softmax(axis: 1) },
    OpCase("log_softmax") { try $0[0].logSoftmax(axis: -1) },
    OpCase("layer_norm") { try $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5) },
    OpCase("group_norm") { try $0[0].groupNorm(groups: 4, weight: $0[1], bias: $0[2], eps: 1e-6) },
    OpCase("group_norm_5d") { try $0[0].groupNorm(groups: 2, weight: $0[1], bias: $0[2], eps: 1e-5) },
    OpCase("matmul_2d") { try $0[0].matmul($0[1]) },
    OpCase("matmul_batched_broadcast") { try $0[0].matmul($0[1]) },
    OpCase("linear") { try $0[0].linear($0[1], bias: $0[2]) },
    OpCase("conv2d_3x3_pad1") { try $0[0].conv2d(weight: $0[1], bias: $0[2], padding: (1, 1)) },
    OpCase("conv2d_3x3_stride2") { try $0[0].conv2d(weight: $0[1], bias: $0[2], stride: (2, 2), padding: (1, 1)) },
    OpCase("conv2d_3x3_winograd") { try $0[0].conv2d(weight: $0[1], bias: $0[2], padding: (1, 1)) },
    OpCase("conv2d_1x1") { try $0[0].conv2d(weight: $0[1], bias: $0[2]) },
    OpCase("conv2d_groups") { try $0[0].conv2d(weight: $0[1], groups: 4) },
    OpCase("conv3d_temporal") { try $0[0].conv3dTemporal(weight: $0[1], bias: $0[2], padding: 1) },
    OpCase("upsample_nearest2x") { try $0[0].upsampleNearest2x() },
    OpCase("max_pool2d", step: 1e-3) { try $0[0].maxPool2d(kernel: 2) },
    OpCase("attention") { try Tensor.attention(query: $0[0], key: $0[1], value: $0[2]).output },
    OpCase("attention_probabilities") {
        try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], returnProbabilities: true).probabilities!
    },
    OpCase("gaussian_smooth") { try $0[0].gaussianSmoothed(size: 3, sigma: 0.5) },
    OpCase("concat_axis1") { try Tensor.concat([$0[0], $0[1]], axis: 1) },
    OpCase("pad") { try $0[0].padded([(0, 1), (1, 2)]) },
    OpCase("permute_contiguous") { try $0[0].permuted([2, 0, 1]).contiguous() },
    OpCase("slice_step") { try $0[0].sliced(axis: 1, start: 1, end: 9, step: 3) },
    OpCase("expand_mul") { try $0[0].expanded([3, 4]) * $0[1] },
    OpCase("reshape_transpose_matmul") { try $0[0].reshaped([3, 4]).transposed(0, 1).matmul($0[1]) },
]

final class OpHarnessTests: XCTestCase {
    struct Fixture {
        var inputs: [(shape: [Int], values: [Float])]
        var output: (shape: [Int], values: [Float])
        var projection: [Float]
        var grads: [[Float]?]
    }

    static let fixtures: [String: Fixture] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/ops.json").path
        let data = FileManager.default.contents(atPath: path)!
        let root = try! JSONValue.parse(bytes: [UInt8](data))
        func floats(_ value: JSONValue?) -> [Float] { value?.arrayValue?.compactMap { $0.numberValue.map(Float.init) } ?? [] }
        func shape(_ value: JSONValue?) -> [Int] { value?.arrayValue?.compactMap(\.intValue) ?? [] }
        var result: [String: Fixture] = [:]
        for (name, entry) in root.objectValue!["cases"]!.objectValue! {
            let object = entry.objectValue!
            result[name] = Fixture(
                inputs: object["inputs"]!.arrayValue!.map { (shape($0.objectValue?["shape"]), floats($0.objectValue?["values"])) },
                output: (shape(object["output"]?.objectValue?["shape"]), floats(object["output"]?.objectValue?["values"])),
                projection: floats(object["projection"]),
                grads: object["grads"]!.arrayValue!.map { $0 == .null ? nil : floats($0) })
        }
        return result
    }()

    func testEveryFixtureCaseHasABuilderAndViceVersa() {
        XCTAssertEqual(Set(opCases.map(\.name)), Set(Self.fixtures.keys))
    }

    func testForwardMatchesTorch() throws {
        for op in opCases {
            let fixture = try XCTUnwrap(Self.fixtures[op.name], "no fixture for \(op.name)")
            let inputs = try fixture.inputs.map { try Tensor($0.values, shape: $0.shape) }
            let output = try op.build(inputs)
            XCTAssertEqual(output.shape, fixture.output.shape, op.name)
            assertClose(output.toArray(), fixture.output.values, relative: 1e-4, absolute: 1e-5, op.name + " forward")
        }
    }

    func testBackwardMatchesTorchAndFiniteDifferences() throws {
        for op in opCases {
            let fixture = try XCTUnwrap(Self.fixtures[op.name])
            let projection = try Tensor(fixture.projection, shape: fixture.output.shape)
            let inputs = try zip(fixture.inputs, fixture.grads).map { input, grad in
                try Tensor(input.values, shape: input.shape).requiringGrad(grad != nil)
            }
            let loss = try (op.build(inputs) * projection).sum()
            try loss.backward()

            for (index, (input, expected)) in zip(inputs, fixture.grads).enumerated() {
                guard let expected else { continue }
                let grad = try XCTUnwrap(input.grad, "\(op.name): no gradient for input \(index)")
                assertClose(grad.toArray(), expected, relative: 1e-4, absolute: 1e-4, "\(op.name) ∂input\(index) vs torch")

                // Central differences on up to 8 elements of this input, in double-checked float.
                let values = fixture.inputs[index].values
                let picks = Set((0..<8).map { ($0 * 7919) % values.count })
                for element in picks.sorted() {
                    func lossAt(_ delta: Float) throws -> Float {
                        var changed = values
                        changed[element] += delta
                        let shifted = try fixture.inputs.enumerated().map { i, input in
                            try Tensor(i == index ? changed : input.values, shape: input.shape)
                        }
                        return try GradMode.withoutGrad { try (op.build(shifted) * projection).sum().item() }
                    }
                    let h = op.step * Swift.max(1, Swift.abs(values[element]))
                    let numeric = (try lossAt(h) - lossAt(-h)) / (2 * h)
                    let analytic = grad.toArray()[element]
                    XCTAssertLessThanOrEqual(Swift.abs(numeric - analytic), 2e-2 * Swift.max(1, Swift.abs(analytic)),
                                             "\(op.name) ∂input\(index)[\(element)]: finite difference \(numeric), backward \(analytic)")
                }
            }
        }
    }

    private func assertClose(_ actual: [Float], _ expected: [Float], relative: Float, absolute: Float, _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard actual.count == expected.count else {
            return XCTFail("\(label): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        }
        var worst = 0, worstError: Float = 0
        for i in actual.indices {
            let error = Swift.abs(actual[i] - expected[i]) - relative * Swift.abs(expected[i])
            if error > worstError || !actual[i].isFinite { worst = i; worstError = actual[i].isFinite ? error : .infinity }
        }
        XCTAssertLessThanOrEqual(worstError, absolute, "\(label): element \(worst) is \(actual[worst]), expected \(expected[worst])",
                                 file: file, line: line)
    }
}
