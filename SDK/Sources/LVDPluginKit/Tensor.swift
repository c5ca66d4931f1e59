import LVDSDK

/// The host's tensor runtime (`lvd.tensor/1`) for Swift plugins: every call goes through the
/// C table, so a plugin shares the host's one libLVDRuntime.so without linking it.
public final class TensorRuntime: @unchecked Sendable {
    let api: UnsafePointer<lvd_tensor_api>

    /// The runtime the host offers, or nil when it offers none (or an older, smaller table).
    public init?(host: HostContext) {
        guard let api = host.extensionTable(LVD_TENSOR_EXTENSION_ID, as: lvd_tensor_api.self) else { return nil }
        self.api = api
    }

    /// A contiguous f32 tensor of `values` in row-major order.
    public func tensor(_ values: [Float], shape: [Int]) throws(PluginError) -> Tensor {
        guard values.count == shape.reduce(1, *) else {
            throw PluginError.invalidArgument("\(values.count) values for shape \(shape)")
        }
        return try make { out, error in
            values.withUnsafeBufferPointer { api.pointee.create(LVD_DTYPE_F32, UInt32(shape.count), shape.map(Int64.init), $0.baseAddress, out, error) }
        }
    }

    public func zeros(_ shape: [Int]) throws(PluginError) -> Tensor {
        try make { out, error in api.pointee.create(LVD_DTYPE_F32, UInt32(shape.count), shape.map(Int64.init), nil, out, error) }
    }

    /// Runs `body` in a no-grad scope of this thread: nothing recorded, nothing kept.
    public func withoutGrad<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        api.pointee.no_grad_begin()
        defer { api.pointee.no_grad_end() }
        return try body()
    }

    /// Every op name the runtime serves.
    public var opNames: [String] { (api.pointee.op_names().map { String(cString: $0) } ?? "").split(separator: ",").map(String.init) }

    func make(_ call: (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<lvd_error>) -> lvd_status) throws(PluginError) -> Tensor {
        var handle: OpaquePointer?
        try check { call(&handle, $0) }
        return Tensor(handle: handle!, runtime: self)
    }

    func check(_ call: (UnsafeMutablePointer<lvd_error>) -> lvd_status) throws(PluginError) {
        var error = lvd_error()
        lvd_error_init(&error)
        let status = call(&error)
        guard status == LVD_OK else {
            throw PluginError(status, withUnsafeBytes(of: error.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
    }
}

/// A tensor of the host's runtime: a reference to an opaque handle, released when the last
/// copy of this value goes away. Ops throw `PluginError` with the runtime's message.
public struct Tensor: @unchecked Sendable {
    final class Handle {
        let raw: OpaquePointer
        let runtime: TensorRuntime
        init(raw: OpaquePointer, runtime: TensorRuntime) {
            self.raw = raw
            self.runtime = runtime
        }
        deinit { _ = runtime.api.pointee.release(raw, nil) }
    }

    let handle: Handle
    public var runtime: TensorRuntime { handle.runtime }

    init(handle: OpaquePointer, runtime: TensorRuntime) { self.handle = Handle(raw: handle, runtime: runtime) }

    /// Runs the runtime op `name` with this tensor first, then `others`; `attributes` as JSON.
    public func op(_ name: String, _ others: [Tensor] = [], attributes: String? = nil) throws(PluginError) -> Tensor {
        let inputs: [OpaquePointer?] = [handle.raw] + others.map { $0.handle.raw }
        return try runtime.make { out, error in
            inputs.withUnsafeBufferPointer { runtime.api.pointee.op(name, $0.baseAddress, UInt32(inputs.count), attributes, out, error) }
        }
    }

    public var shape: [Int] {
        var rank: UInt32 = 0
        var extents = [Int64](repeating: 0, count: Int(LVD_TENSOR_MAX_RANK))
        _ = runtime.api.pointee.describe(handle.raw, nil, &rank, &extents, UInt32(LVD_TENSOR_MAX_RANK), nil)
        return extents.prefix(Int(rank)).map(Int.init)
    }

    /// The elements as f32, row-major.
    public func toArray() throws(PluginError) -> [Float] {
        let values = try op("to", attributes: #"{"dtype": "f32"}"#)
        var result = [Float](repeating: 0, count: shape.reduce(1, *))
        try runtime.check { error in
            result.withUnsafeMutableBytes { runtime.api.pointee.read(values.handle.raw, $0.baseAddress, $0.count, error) }
        }
        return result
    }

    public func item() throws(PluginError) -> Float {
        let values = try toArray()
        guard values.count == 1 else { throw PluginError.invalidArgument("item of a tensor of shape \(shape)") }
        return values[0]
    }

    // MARK: Autodiff

    /// Marks this tensor as a leaf gradients flow to; returns it for chaining.
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) throws(PluginError) -> Tensor {
        try runtime.check { runtime.api.pointee.set_requires_grad(handle.raw, flag, $0) }
        return self
    }

    /// Backward from this (one-element) tensor, or with `seed` of its shape.
    public func backward(seed: Tensor? = nil) throws(PluginError) {
        try runtime.check { runtime.api.pointee.backward(handle.raw, seed?.handle.raw, $0) }
    }

    /// The accumulated gradient, if any.
    public func grad() throws(PluginError) -> Tensor? {
        var out: OpaquePointer?
        try runtime.check { runtime.api.pointee.grad(handle.raw, &out, $0) }
        return out.map { Tensor(handle: $0, runtime: runtime) }
    }

    public func zeroGrad() throws(PluginError) { try runtime.check { runtime.api.pointee.zero_grad(handle.raw, $0) } }

    // MARK: Ops

    public static func + (a: Tensor, b: Tensor) throws(PluginError) -> Tensor { try a.op("add", [b]) }
    public static func - (a: Tensor, b: Tensor) throws(PluginError) -> Tensor { try a.op("sub", [b]) }
    public static func * (a: Tensor, b: Tensor) throws(PluginError) -> Tensor { try a.op("mul", [b]) }
    public static func / (a: Tensor, b: Tensor) throws(PluginError) -> Tensor { try a.op("div", [b]) }
    public static func + (a: Tensor, b: Float) throws(PluginError) -> Tensor { try a.op("add_scalar", attributes: "{\"value\": \(b)}") }
    public static func - (a: Tensor, b: Float) throws(PluginError) -> Tensor { try a.op("add_scalar", attributes: "{\"value\": \(-b)}") }
    public static func * (a: Tensor, b: Float) throws(PluginError) -> Tensor { try a.op("mul_scalar", attributes: "{\"value\": \(b)}") }
    public static func / (a: Tensor, b: Float) throws(PluginError) -> Tensor { try a.op("mul_scalar", attributes: "{\"value\": \(1 / b)}") }
    public static prefix func - (a: Tensor) throws(PluginError) -> Tensor { try a.op("neg") }

    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws(PluginError) -> Tensor {
        try op("sum", attributes: reduction(axes, keepDims))
    }
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws(PluginError) -> Tensor {
        try op("mean", attributes: reduction(axes, keepDims))
    }
    public func max(axes: [Int]? = nil, keepDims: Bool = false) throws(PluginError) -> Tensor {
        try op("max", attributes: reduction(axes, keepDims))
    }
    public func softmax(axis: Int = -1) throws(PluginError) -> Tensor { try op("softmax", attributes: "{\"axis\": \(axis)}") }
    public func topK(_ k: Int) throws(PluginError) -> Tensor { try op("topk", attributes: "{\"k\": \(k)}") }
    public func matmul(_ other: Tensor) throws(PluginError) -> Tensor { try op("matmul", [other]) }
    public func exp() throws(PluginError) -> Tensor { try op("exp") }
    public func log() throws(PluginError) -> Tensor { try op("log") }
    public func pow(_ exponent: Float) throws(PluginError) -> Tensor { try op("pow", attributes: "{\"exponent\": \(exponent)}") }
    public func relu() throws(PluginError) -> Tensor { try op("relu") }
    public func reshaped(_ shape: [Int]) throws(PluginError) -> Tensor {
        try op("reshape", attributes: "{\"shape\": [\(shape.map(String.init).joined(separator: ", "))]}")
    }

    private func reduction(_ axes: [Int]?, _ keepDims: Bool) -> String {
        let list = axes.map { "\"axes\": [\($0.map(String.init).joined(separator: ", "))], " } ?? ""
        return "{\(list)\"keepdims\": \(keepDims)}"
    }
}

extension Tensor {
    /// `tensors` joined along `axis`.
    public static func concat(_ tensors: [Tensor], axis: Int) throws(PluginError) -> Tensor {
        guard let first = tensors.first else { throw PluginError.invalidArgument("concat of no tensors") }
        return try first.op("concat", Array(tensors.dropFirst()), attributes: "{\"axis\": \(axis)}")
    }

    /// Elements start..<end along `axis` (a view).
    public func sliced(axis: Int, start: Int, end: Int) throws(PluginError) -> Tensor {
        try op("slice", attributes: "{\"axis\": \(axis), \"start\": \(start), \"end\": \(end)}")
    }

    /// The same values, cut from the autodiff tape.
    public func detached() throws(PluginError) -> Tensor { try op("detach") }
}
