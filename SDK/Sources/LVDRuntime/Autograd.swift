#if canImport(Glibc)
import Glibc
#endif

/// Whether ops record the tape, per thread. Off inside `withoutGrad` (and C no-grad scopes),
/// where inference keeps no graph and every intermediate is freed as soon as it is unused.
public enum GradMode {
    private static let depth = ThreadLocal<Int>()

    /// Nesting depth of no-grad scopes on this thread.
    public static var noGradDepth: Int {
        get { depth.value ?? 0 }
        set { depth.value = newValue }
    }

    public static var isEnabled: Bool { noGradDepth == 0 }

    /// Runs `body` without recording: no tape, nothing kept for backward.
    public static func withoutGrad<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        noGradDepth += 1
        defer { noGradDepth -= 1 }
        return try body()
    }
}

/// One plain value (Int, Double, …) per thread, in a pthread key; each thread's slot is freed
/// with the thread.
struct ThreadLocal<Value: BitwiseCopyable>: @unchecked Sendable {
    private let key: pthread_key_t

    init() {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        self.key = key
    }

    var value: Value? {
        get { pthread_getspecific(key)?.load(as: Value.self) }
        nonmutating set {
            guard let newValue else { return }
            if let slot = pthread_getspecific(key) {
                slot.storeBytes(of: newValue, as: Value.self)
            } else {
                let slot = malloc(MemoryLayout<Value>.size)!
                slot.storeBytes(of: newValue, as: Value.self)
                pthread_setspecific(key, slot)
            }
        }
    }
}

/// How a recorded tensor was made: the op (with what its backward rule needs) and its inputs.
final class Node {
    let op: Op
    let inputs: [Tensor]

    init(op: Op, inputs: [Tensor]) {
        self.op = op
        self.inputs = inputs
    }
}

extension Tensor {
    /// Marks `output` as produced by `op` from `inputs` when the tape is on and an input needs
    /// gradients; otherwise records nothing.
    @discardableResult
    static func record(_ output: Tensor, _ op: @autoclosure () -> Op, _ inputs: [Tensor]) -> Tensor {
        if OpProfile.enabled { OpProfile.charge(op().name, output.shape) }
        if GradMode.isEnabled, inputs.contains(where: \.requiresGrad) {
            output.requiresGrad = true
            output.node = Node(op: op(), inputs: inputs)
        }
        return output
    }

    /// A leaf that gradients flow to (a parameter, or latents being guided).
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        requiresGrad = flag
        return self
    }

    /// The same values, cut from the tape.
    public func detached() -> Tensor {
        Tensor(storage: storage, shape: shape, strides: strides, offset: offset, dtype: dtype)
    }

    /// Reverse-mode differentiation from this tensor. With no `seed` the tensor must hold one
    /// value (∂self/∂self = 1); otherwise `seed` has its shape. Gradients accumulate into `.grad`
    /// of every leaf that requires grad. The graph is released as it is walked (no second backward).
    public func backward(seed: Tensor? = nil) throws(TensorError) {
        guard requiresGrad else { throw .gradient("the tensor does not require grad (no input of it does)") }
        let start: Tensor
        if let seed {
            guard seed.shape == shape else { throw .gradient("seed shape \(seed.shape) differs from tensor shape \(shape)") }
            start = seed
        } else {
            guard count == 1 else { throw .gradient("gradient of a non-scalar tensor of shape \(shape) needs a seed") }
            // A NaN or infinite energy would turn every gradient (and the latents it steers) into NaN.
            guard try item().isFinite else { throw .nonFinite(op: "backward from a value of \(try item())") }
            start = try Tensor.full(shape, 1)
        }
        try GradMode.withoutGrad { () throws(TensorError) in
            // Depth-first topological order of the recorded tensors reachable from self.
            var order: [Tensor] = []
            var visited = Set<ObjectIdentifier>()
            var stack: [(Tensor, Bool)] = [(self, false)]
            while let (tensor, expanded) = stack.popLast() {
                if expanded { order.append(tensor); continue }
                guard visited.insert(ObjectIdentifier(tensor)).inserted else { continue }
                stack.append((tensor, true))
                for input in tensor.node?.inputs ?? [] where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
            var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): start]
            for tensor in order.reversed() {
                guard let gradient = grads.removeValue(forKey: ObjectIdentifier(tensor)) else { continue }
                guard let node = tensor.node else {
                    tensor.grad = try tensor.grad.map { previous throws(TensorError) in try previous + gradient } ?? gradient.detached()
                    continue
                }
                try OpProfile.rule(node.op.name, tensor.shape) { () throws(TensorError) in
                    let inputGrads = try Gradients.vjp(node.op, inputs: node.inputs, output: tensor, gradient: gradient)
                    for (input, inputGrad) in zip(node.inputs, inputGrads) where input.requiresGrad {
                        guard let inputGrad else { continue }
                        guard inputGrad.shape == input.shape else {
                            throw .gradient("rule for \(node.op.name) gave shape \(inputGrad.shape) for an input of shape \(input.shape)")
                        }
                        let id = ObjectIdentifier(input)
                        grads[id] = try grads[id].map { previous throws(TensorError) in try previous + inputGrad } ?? inputGrad
                    }
                }
                tensor.node = nil // free what the rule needed as soon as it has run
            }
        }
    }
}
