/// Gradient checkpointing: a function of some tensors whose intermediate results are not kept
/// on the tape; backward runs it again, with the tape on, from the saved inputs. Memory falls
/// to the inputs and outputs of each checkpointed function plus one function's tape at a
/// time, for one more forward pass of the work. The function must be deterministic. Leaves it
/// captures (parameters) receive their gradients during the recomputation; a captured tensor
/// that is itself the result of recorded ops must be passed in `inputs` instead.
final class Checkpoint {
    let body: ([Tensor]) throws(TensorError) -> [Tensor]

    init(_ body: @escaping ([Tensor]) throws(TensorError) -> [Tensor]) { self.body = body }

    /// Runs `body` again from detached copies of `inputs` with the tape on and backpropagates
    /// `gradient` (of the packed outputs) through it. Gradients of parameters the body uses
    /// accumulate as usual.
    func inputGradients(_ inputs: [Tensor], gradient: Tensor) throws(TensorError) -> [Tensor?] {
        let copies = inputs.map { $0.detached().requiringGrad($0.requiresGrad) }
        let depth = GradMode.noGradDepth
        GradMode.noGradDepth = 0
        defer { GradMode.noGradDepth = depth }
        let packed = try Tensor.pack(body(copies))
        if packed.requiresGrad { try packed.backward(seed: gradient) }
        return try copies.map { copy throws(TensorError) -> Tensor? in
            guard copy.requiresGrad else { return nil }
            if let grad = copy.grad { return grad }
            return try Tensor.zeros(copy.shape)
        }
    }
}

extension Tensor {
    /// `body(inputs)`, checkpointed when the tape is on and an input needs gradients (see
    /// `Checkpoint`); a plain call otherwise. The outputs are views of one recorded tensor, so
    /// gradients from all of them meet before the one recomputation.
    public static func checkpointed(_ inputs: [Tensor], _ body: @escaping ([Tensor]) throws(TensorError) -> [Tensor]) throws(TensorError) -> [Tensor] {
        guard GradMode.isEnabled, inputs.contains(where: \.requiresGrad) else { return try body(inputs) }
        let outputs = try GradMode.withoutGrad { () throws(TensorError) in try body(inputs) }
        let packed = try GradMode.withoutGrad { () throws(TensorError) in try pack(outputs) }
        record(packed, .checkpoint(Checkpoint(body)), inputs)
        var offset = 0
        return try outputs.map { output throws(TensorError) in
            defer { offset += output.count }
            return try packed.sliced(axis: 0, start: offset, end: offset + output.count).reshaped(output.shape)
        }
    }

    /// The outputs flattened and joined, in order.
    static func pack(_ outputs: [Tensor]) throws(TensorError) -> Tensor {
        try Tensor.concat(outputs.map { output throws(TensorError) in try output.reshaped([output.count]) }, axis: 0)
    }
}
