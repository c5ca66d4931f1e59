import LVDRuntime

/// A learnable tensor: the shape the architecture declares, and its values once loaded
/// (nil for a model built from its configuration alone, e.g. `lvd model info` on a config-only folder).
public final class Parameter {
    public let shape: [Int]
    public var value: Tensor?

    public init(_ shape: [Int]) { self.shape = shape }

    public var count: Int { shape.reduce(1, *) }

    /// The loaded values; an error for a model built from its configuration only.
    public var tensor: Tensor {
        get throws(TensorError) {
            guard let value else { throw .invalidArgument(op: "model", "parameter of shape \(shape) has no weights loaded") }
            return value
        }
    }
}

/// Names a submodule or parameter with its checkpoint key, so weight keys equal the
/// checkpoint's names by construction (`@Key("to_out.0") var toOut: Linear`).
@propertyWrapper
public struct Key<Value> {
    public let key: String
    fileprivate var value: Value?

    public init(_ key: String) { self.key = key }

    /// Set once in the module's init; reading before that is a programming error.
    public var wrappedValue: Value {
        get { value! }
        set { value = newValue }
    }
}

protocol KeyedEntry {
    var entryKey: String { get }
    var entryValue: Any { get }
}

extension Key: KeyedEntry {
    var entryKey: String { key }
    var entryValue: Any { value as Any }
}

/// A node of a model: keyed parameters and submodules, found by reflection in declaration order.
/// Lists of modules get index keys ("resnets.0"); an absent optional child has no keys.
open class Module {
    public init() {}

    /// Every parameter with its full dotted key, in declaration order.
    public func namedParameters() -> [(key: String, parameter: Parameter)] {
        var result: [(String, Parameter)] = []
        collect(prefix: "", into: &result)
        return result
    }

    /// Number of scalar parameters.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.parameter.count } }

    private func collect(prefix: String, into result: inout [(String, Parameter)]) {
        for child in Mirror(reflecting: self).children {
            guard let entry = child.value as? KeyedEntry else { continue }
            let name = prefix.isEmpty ? entry.entryKey : prefix + "." + entry.entryKey
            switch entry.entryValue {
            case let parameter as Parameter:
                result.append((name, parameter))
            case let module as Module:
                module.collect(prefix: name, into: &result)
            case let modules as [Module]:
                for (index, module) in modules.enumerated() { module.collect(prefix: "\(name).\(index)", into: &result) }
            default:
                break // an absent optional
            }
        }
    }
}

extension Module {
    /// Fills every parameter with random values (benchmarks, tests): norm weights 1, biases 0,
    /// other weights uniform in ±scale. Deterministic for a seed.
    public func randomizeParameters(seed: UInt64, scale: Float = 0.02) throws(TensorError) {
        var state = seed | 1
        for (key, parameter) in namedParameters() {
            let tensor = try Tensor.empty(parameter.shape)
            let values = tensor.floats, count = parameter.count
            let isNorm = key.contains("norm") && key.hasSuffix(".weight")
            if isNorm || key.hasSuffix(".bias") {
                values.initialize(repeating: isNorm ? 1 : 0, count: count)
            } else {
                for i in 0..<count {
                    state ^= state << 13
                    state ^= state >> 7
                    state ^= state << 17
                    values[i] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
                }
            }
            parameter.value = tensor
        }
    }
}
