import LVDFormats
import LVDGuidance
import LVDPluginKit
import LVDSDK

/// A new layout-guided method in one file: everything but the energy — the layout's objects and
/// their prompt tokens, the attention layers to capture, box masks, the guidance loop with LVD's
/// update z ← z − √(1 − ᾱ_t)·∇(s·E), classifier-free guidance, the scheduler, progress and
/// Ctrl-C — comes from LVDGuidance and LVDPluginKit.
///
/// The energy: for every captured layer, object, token and frame where the object is present,
/// the squared distance between the centre of mass of the token's attention and the centre of
/// the box, in normalised coordinates (0 … 1 on each axis), averaged over heads; summed over
/// frames, averaged over tokens, objects and layers.
final class ExampleCentre: MethodPlugin {
    static let info = PluginInfo(
        id: "example-centre", kind: .method, name: "Example: attention centre guidance", version: "1.0.0",
        description: "Example: guidance that pulls each object's attention centre to its box centre",
        params: ParamsSchema(params: GuidanceLoop.params(loop)
            + GuidedGeneration.params(keys: "cross-attention layers; auto = K_LVD, or every layer of a UNet without them")))

    /// This method's defaults for the guidance loop's params (loss_scale, loss_threshold,
    /// max_iter, max_index_step).
    static let loop = GuidanceLoop.Defaults(scale: 200, threshold: 0, maxIterations: 2)

    private let host: HostContext
    private let params: JSONObject

    init(host: HostContext, params: JSONObject) throws {
        self.host = host
        self.params = params
    }

    func generate(_ request: MethodRequest) throws -> Tensor {
        let loop = GuidanceLoop(params: params, defaults: Self.loop)
        return try GuidedGeneration(params: params).run(host: host, request: request, loop: loop, energy: Self.energy)
    }

    static func energy(_ maps: [Tensor], setup: GuidanceSetup, runtime: TensorRuntime) throws -> Tensor {
        var total = try runtime.tensor([0], shape: [])
        for (layer, map) in zip(setup.layers, maps) {
            let cells = layer.height * layer.width
            // Each cell's centre in normalised coordinates, as the boxes are.
            let rows = try runtime.tensor((0..<cells).map { (Float($0 / layer.width) + 0.5) / Float(layer.height) }, shape: [1, 1, cells])
            let columns = try runtime.tensor((0..<cells).map { (Float($0 % layer.width) + 0.5) / Float(layer.width) }, shape: [1, 1, cells])
            for object in setup.objects {
                // The box centres on the same scale; frames without the object weigh 0.
                let centres = object.boxes.map { box in ((box[1] + box[3]) / 2, (box[0] + box[2]) / 2) }
                let present = object.boxes.map { $0 == [0, 0, 0, 0] ? Float(0) : 1 / Float(layer.heads) }
                let boxRows = try runtime.tensor(centres.map { Float($0.0) }, shape: [setup.frames, 1])
                let boxColumns = try runtime.tensor(centres.map { Float($0.1) }, shape: [setup.frames, 1])
                let weights = try runtime.tensor(present, shape: [setup.frames, 1])
                var objectTotal = try runtime.tensor([0], shape: [])
                for token in object.tokens {
                    // (frames, heads, cells, tokens) → this token's maps (frames, heads, cells)
                    let a = try map.sliced(axis: 3, start: token, end: token + 1).reshaped([setup.frames, layer.heads, cells])
                    let mass = try a.sum(axes: [2]) + 1e-6
                    let y = try (a * rows).sum(axes: [2]) / mass, x = try (a * columns).sum(axes: [2]) / mass   // (frames, heads)
                    let distance = try (y - boxRows).pow(2) + (x - boxColumns).pow(2)
                    objectTotal = try objectTotal + (distance * weights).sum()
                }
                total = try total + objectTotal / Float(object.tokens.count)
            }
        }
        return try total / Float(max(setup.objects.count * setup.layers.count, 1))
    }
}

@_cdecl("lvd_plugin_entry")
public func lvdPluginEntry() -> UnsafePointer<lvd_plugin_library> {
    PluginExport.library(methods: [ExampleCentre.self])
}
