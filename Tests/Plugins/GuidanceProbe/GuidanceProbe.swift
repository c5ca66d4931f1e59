import LVDFormats
import LVDPluginKit
import LVDSDK

/// A test-only method plugin that exercises the tensor runtime through the C ABI only, the way
/// guidance methods do: logits per frame, an energy on their softmax "attention" inside the
/// layout's first box (LVD's (1 − mass inside)² form), gradient steps on the logits. The first
/// gradient is checked against a central difference through the same ABI. The video shows the
/// final attention per frame (grey levels, brightest = 255).
final class GuidanceProbe: MethodPlugin {
    static let info = PluginInfo(
        id: "test-guidance-probe", kind: .method, name: "Guidance probe (test)", version: "0.0.1",
        description: "Gradient steps through lvd.tensor/1 that pull softmax mass into a box",
        params: ParamsSchema(params: [
            .init("learning_rate", .number, default: .number(20), description: "step size", minimum: 0),
        ]))

    private let host: HostContext
    private let runtime: TensorRuntime
    private let learningRate: Float

    init(host: HostContext, params: JSONObject) throws {
        guard let runtime = TensorRuntime(host: host) else { throw PluginError.unsupported("host offers no lvd.tensor/1") }
        self.host = host
        self.runtime = runtime
        learningRate = Float(params["learning_rate"]?.numberValue ?? 20)
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        let (f, h, w) = (request.frames, request.height, request.width)
        guard let text = request.layoutJSON else { throw PluginError.invalidArgument("needs a layout") }
        let layout = try Layout.decode(json: text, source: "layout")
        guard let box = layout.keyframes.first?.first?.box else { throw PluginError.invalidArgument("layout has no object") }
        // Mask of the box on the (h, w) grid, the same for every frame.
        var maskValues = [Float](repeating: 0, count: h * w)
        for y in 0..<h {
            for x in 0..<w {
                let cx = (Double(x) + 0.5) / Double(w) * Double(layout.canvasWidth)
                let cy = (Double(y) + 0.5) / Double(h) * Double(layout.canvasHeight)
                if cx >= box[0], cx < box[0] + box[2], cy >= box[1], cy < box[1] + box[3] { maskValues[y * w + x] = 1 }
            }
        }
        let mask = try runtime.tensor(maskValues, shape: [1, h * w])
        var state = request.seed | 1
        let initial = (0..<(f * h * w)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 1000) / 1000
        }
        var logits = try runtime.tensor(initial, shape: [f, h * w])

        func energy(_ z: Tensor) throws -> Tensor {
            let inside = try (z.softmax(axis: 1) * mask).sum(axes: [1])
            return try ((inside * -1) + 1).pow(2).mean()
        }

        for step in 0..<request.steps {
            try host.checkCancellation()
            try logits.requiringGrad()
            let e = try energy(logits)
            try e.backward()
            guard let gradient = try logits.grad() else { throw PluginError(LVD_ERR_INTERNAL, "no gradient reached the logits") }
            if step == 0 { try checkAgainstFiniteDifference(logits, gradient, energy) }
            host.log(.info, "step \(step): energy \(try e.item())")
            logits = try (logits - gradient * learningRate).op("detach")
            host.progress(done: step + 1, total: request.steps, what: "guidance step")
        }

        return try runtime.withoutGrad {
            let attention = try logits.softmax(axis: 1)
            let grey = try attention / attention.max(axes: [1], keepDims: true) * 255
            let plane = try grey.reshaped([f, h, w, 1])
            return try plane.op("concat", [plane, plane], attributes: #"{"axis": 3}"#).op("to", attributes: #"{"dtype": "u8"}"#)
        }
    }

    private func checkAgainstFiniteDifference(_ z: Tensor, _ gradient: Tensor, _ energy: (Tensor) throws -> Tensor) throws {
        let values = try z.toArray(), analytic = try gradient.toArray(), shape = z.shape
        let element = values.count / 3, h: Float = 1e-2
        func at(_ delta: Float) throws -> Float {
            var shifted = values
            shifted[element] += delta
            return try runtime.withoutGrad { try energy(runtime.tensor(shifted, shape: shape)).item() }
        }
        let numeric = (try at(h) - at(-h)) / (2 * h)
        guard Swift.abs(numeric - analytic[element]) <= 1e-3 + 2e-2 * Swift.abs(numeric) else {
            throw PluginError(LVD_ERR_INTERNAL, "gradient through the ABI \(analytic[element]) differs from finite difference \(numeric)")
        }
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [GuidanceProbe.self, CrashingMethod.self])
}
