import Foundation
import LVDFormats
import LVDPluginKit

/// A test-only method that crashes the process in generate, as a buggy or out-of-memory method
/// would: `lvd compare` must report it and finish the others.
final class CrashingMethod: MethodPlugin {
    static let info = PluginInfo(id: "test-crash", kind: .method, name: "Crash (test)", version: "0.0.1",
                                 description: "Aborts the process when asked to generate")

    init(host: HostContext, params: JSONObject) throws {}

    func generate(_ request: MethodRequest) throws -> Tensor {
        abort()
    }
}
