import LVDFormats

/// The ops reachable by name through `lvd.tensor/1`'s `op` call: each with its input count,
/// its attributes (checked: unknown keys are errors) and the Swift op it runs.
public enum OpRegistry {
    public struct Spec: Sendable {
        public let inputs: ClosedRange<Int>
        public let attributes: [String]
        let run: @Sendable ([Tensor], Attributes) throws -> Tensor
    }

    /// Runs `name` on `inputs` with JSON `attributes`.
    public static func run(_ name: String, _ inputs: [Tensor], attributes text: String?) throws(TensorError) -> Tensor {
        guard let spec = specs[name] else { throw .invalidArgument(op: name, "unknown op (see op_names)") }
        guard spec.inputs.contains(inputs.count) else {
            let expected = spec.inputs.count == 1 ? "\(spec.inputs.lowerBound)" : "\(spec.inputs.lowerBound)…\(spec.inputs.upperBound)"
            throw .invalidArgument(op: name, "takes \(expected) inputs, got \(inputs.count)")
        }
        let attributes = try Attributes(op: name, text: text, allowed: spec.attributes)
        do { return try spec.run(inputs, attributes) } catch let error as TensorError { throw error } catch {
            throw .invalidArgument(op: name, "\(error)")
        }
    }

    public static var names: [String] { specs.keys.sorted() }

    private static func unary(_ body: @escaping @Sendable (Tensor) throws -> Tensor) -> Spec {
        Spec(inputs: 1...1, attributes: []) { x, _ in try body(x[0]) }
    }

    private static func binary(_ body: @escaping @Sendable (Tensor, Tensor) throws -> Tensor) -> Spec {
        Spec(inputs: 2...2, attributes: []) { x, _ in try body(x[0], x[1]) }
    }

    private static func spec(_ inputs: ClosedRange<Int>, _ attributes: [String],
                             _ run: @escaping @Sendable ([Tensor], Attributes) throws -> Tensor) -> Spec {
        Spec(inputs: inputs, attributes: attributes, run: run)
    }

    static let specs: [String: Spec] = [
        // Arithmetic and math
        "add": binary { try $0 + $1 }, "sub": binary { try $0 - $1 },
        "mul": binary { try $0 * $1 }, "div": binary { try $0 / $1 },
        "maximum": binary { try Tensor.maximum($0, $1) },
        "add_scalar": spec(1...1, ["value"]) { x, a in try x[0] + a.float("value") },
        "mul_scalar": spec(1...1, ["value"]) { x, a in try x[0] * a.float("value") },
        "neg": unary { try -$0 }, "exp": unary { try $0.exp() }, "log": unary { try $0.log() },
        "sqrt": unary { try $0.sqrt() }, "sin": unary { try $0.sin() }, "cos": unary { try $0.cos() },
        "tanh": unary { try $0.tanh() }, "abs": unary { try $0.abs() }, "relu": unary { try $0.relu() },
        "sigmoid": unary { try $0.sigmoid() }, "silu": unary { try $0.silu() }, "gelu": unary { try $0.gelu() },
        "quick_gelu": unary { try $0.quickGELU() }, "geglu": unary { try $0.geglu() },
        "pow": spec(1...1, ["exponent"]) { x, a in try x[0].pow(a.float("exponent")) },
        "where": spec(3...3, []) { x, _ in try Tensor.where(x[0], x[1], x[2]) },
        // Reductions
        "sum": spec(1...1, ["axes", "keepdims"]) { x, a in
            try x[0].sum(axes: a.optionalInts("axes"), keepDims: a.bool("keepdims", default: false)) },
        "mean": spec(1...1, ["axes", "keepdims"]) { x, a in
            try x[0].mean(axes: a.optionalInts("axes"), keepDims: a.bool("keepdims", default: false)) },
        "max": spec(1...1, ["axes", "keepdims"]) { x, a in
            try x[0].max(axes: a.optionalInts("axes"), keepDims: a.bool("keepdims", default: false)) },
        "topk": spec(1...1, ["k"]) { x, a in try x[0].topK(a.int("k")) },
        // Neural-network ops
        "softmax": spec(1...1, ["axis"]) { x, a in try x[0].softmax(axis: a.int("axis", default: -1)) },
        "log_softmax": spec(1...1, ["axis"]) { x, a in try x[0].logSoftmax(axis: a.int("axis", default: -1)) },
        "layer_norm": spec(1...3, ["eps"]) { x, a in
            try x[0].layerNorm(weight: x.count > 1 ? x[1] : nil, bias: x.count > 2 ? x[2] : nil, eps: a.float("eps", default: 1e-5)) },
        "group_norm": spec(1...3, ["groups", "eps"]) { x, a in
            try x[0].groupNorm(groups: a.int("groups"), weight: x.count > 1 ? x[1] : nil, bias: x.count > 2 ? x[2] : nil,
                               eps: a.float("eps", default: 1e-5)) },
        "matmul": binary { try $0.matmul($1) },
        "linear": spec(2...3, []) { x, _ in try x[0].linear(x[1], bias: x.count > 2 ? x[2] : nil) },
        "conv2d": spec(2...3, ["stride", "padding", "groups"]) { x, a in
            let stride = try a.pair("stride", default: (1, 1)), padding = try a.pair("padding", default: (0, 0))
            return try x[0].conv2d(weight: x[1], bias: x.count > 2 ? x[2] : nil, stride: stride, padding: padding,
                                   groups: a.int("groups", default: 1)) },
        "conv3d_temporal": spec(2...3, ["padding"]) { x, a in
            try x[0].conv3dTemporal(weight: x[1], bias: x.count > 2 ? x[2] : nil, padding: a.int("padding", default: 1)) },
        "upsample_nearest2x": unary { try $0.upsampleNearest2x() },
        "max_pool2d": spec(1...1, ["kernel", "stride"]) { x, a in
            try x[0].maxPool2d(kernel: a.int("kernel"), stride: a.optionalInt("stride")) },
        "attention": spec(3...3, ["scale"]) { x, a in
            try Tensor.attention(query: x[0], key: x[1], value: x[2], scale: a.optionalFloat("scale")).output },
        "attention_probabilities": spec(3...3, ["scale"]) { x, a in
            try Tensor.attention(query: x[0], key: x[1], value: x[2], scale: a.optionalFloat("scale"), returnProbabilities: true).probabilities! },
        "gaussian_smooth": spec(1...1, ["size", "sigma"]) { x, a in
            try x[0].gaussianSmoothed(size: a.int("size", default: 3), sigma: a.float("sigma", default: 0.5)) },
        "reflect_pad2d": unary { try $0.reflectPadded2d() },
        // Shapes and types
        "reshape": spec(1...1, ["shape"]) { x, a in try x[0].reshaped(a.ints("shape")) },
        "permute": spec(1...1, ["axes"]) { x, a in try x[0].permuted(a.ints("axes")) },
        "transpose": spec(1...1, ["axes"]) { x, a in
            let axes = try a.ints("axes")
            guard axes.count == 2 else { throw TensorError.invalidArgument(op: "transpose", "attribute 'axes' needs two axes") }
            return try x[0].transposed(axes[0], axes[1]) },
        "slice": spec(1...1, ["axis", "start", "end", "step"]) { x, a in
            try x[0].sliced(axis: a.int("axis"), start: a.int("start", default: 0), end: a.optionalInt("end"), step: a.int("step", default: 1)) },
        "expand": spec(1...1, ["shape"]) { x, a in try x[0].expanded(a.ints("shape")) },
        "unsqueeze": spec(1...1, ["axis"]) { x, a in try x[0].unsqueezed(a.int("axis")) },
        "squeeze": spec(1...1, ["axis"]) { x, a in try x[0].squeezed(a.int("axis")) },
        "concat": spec(1...64, ["axis"]) { x, a in try Tensor.concat(x, axis: a.int("axis")) },
        "pad": spec(1...1, ["pads", "value"]) { x, a in
            try x[0].padded(a.pairs("pads"), value: a.float("value", default: 0)) },
        "contiguous": unary { try $0.contiguous() },
        "detach": unary { $0.detached() },
        "to": spec(1...1, ["dtype"]) { x, a in
            let name = try a.string("dtype")
            guard let dtype = DType.allCases.first(where: { $0.description == name }) else {
                throw TensorError.invalidArgument(op: "to", "unknown dtype '\(name)' (f32, f16, bf16, u8)")
            }
            return try x[0].to(dtype) },
    ]
}

/// An op's attributes, read strictly: wrong types and unknown keys are errors naming the op.
public struct Attributes {
    let op: String
    let values: JSONObject

    init(op: String, text: String?, allowed: [String]) throws(TensorError) {
        self.op = op
        guard let text, !text.isEmpty else { values = JSONObject(); return }
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(text) } catch { throw .invalidArgument(op: op, "attributes are not JSON: \(error)") }
        guard let object = parsed.objectValue else { throw .invalidArgument(op: op, "attributes must be a JSON object") }
        for key in object.keys where !allowed.contains(key) {
            throw .invalidArgument(op: op, "unknown attribute '\(key)'" + (allowed.isEmpty ? " (takes none)" : " (known: \(allowed.joined(separator: ", ")))"))
        }
        values = object
    }

    func wrong(_ key: String, _ expected: String) -> TensorError {
        .invalidArgument(op: op, "attribute '\(key)' must be \(expected), got \(values[key]!.serialized())")
    }

    func int(_ key: String, default fallback: Int? = nil) throws(TensorError) -> Int {
        guard let value = values[key] else {
            if let fallback { return fallback }
            throw .invalidArgument(op: op, "needs attribute '\(key)'")
        }
        guard let n = value.intValue else { throw wrong(key, "an integer") }
        return n
    }

    func optionalInt(_ key: String) throws(TensorError) -> Int? { values[key] == nil ? nil : try int(key) }

    func float(_ key: String, default fallback: Float? = nil) throws(TensorError) -> Float {
        guard let value = values[key] else {
            if let fallback { return fallback }
            throw .invalidArgument(op: op, "needs attribute '\(key)'")
        }
        guard let n = value.numberValue else { throw wrong(key, "a number") }
        return Float(n)
    }

    func optionalFloat(_ key: String) throws(TensorError) -> Float? { values[key] == nil ? nil : try float(key) }

    func bool(_ key: String, default fallback: Bool) throws(TensorError) -> Bool {
        guard let value = values[key] else { return fallback }
        guard let b = value.boolValue else { throw wrong(key, "true or false") }
        return b
    }

    func string(_ key: String) throws(TensorError) -> String {
        guard let value = values[key] else { throw .invalidArgument(op: op, "needs attribute '\(key)'") }
        guard let s = value.stringValue else { throw wrong(key, "a string") }
        return s
    }

    func ints(_ key: String) throws(TensorError) -> [Int] {
        guard let value = values[key] else { throw .invalidArgument(op: op, "needs attribute '\(key)'") }
        guard let list = value.arrayValue, case let ints = list.compactMap(\.intValue), ints.count == list.count else {
            throw wrong(key, "an array of integers")
        }
        return ints
    }

    func optionalInts(_ key: String) throws(TensorError) -> [Int]? { values[key] == nil ? nil : try ints(key) }

    func pair(_ key: String, default fallback: (Int, Int)) throws(TensorError) -> (Int, Int) {
        guard values[key] != nil else { return fallback }
        if let n = values[key]!.intValue { return (n, n) }
        let list = try ints(key)
        guard list.count == 2 else { throw wrong(key, "an integer or two") }
        return (list[0], list[1])
    }

    func pairs(_ key: String) throws(TensorError) -> [(Int, Int)] {
        guard let list = values[key]?.arrayValue else { throw .invalidArgument(op: op, "needs attribute '\(key)' ([[before, after], …])") }
        var result: [(Int, Int)] = []
        for item in list {
            guard let pair = item.arrayValue?.compactMap(\.intValue), pair.count == 2 else { throw wrong(key, "[[before, after], …]") }
            result.append((pair[0], pair[1]))
        }
        return result
    }
}
