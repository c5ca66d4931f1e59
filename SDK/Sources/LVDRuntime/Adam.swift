/// Adam (Kingma & Ba), as torch.optim.Adam with bias correction and L2 `weightDecay` added to
/// the gradient; for training adapters. Updates parameters in place.
public final class Adam {
    public let parameters: [Tensor]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private var firstMoments: [[Float]]
    private var secondMoments: [[Float]]
    public private(set) var steps = 0

    public init(parameters: [Tensor], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 0) throws(TensorError) {
        for p in parameters where !p.isContiguous || p.dtype != .f32 {
            throw .invalidArgument(op: "adam", "parameters must be contiguous f32, got \(p.dtype) \(p.shape)")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        (beta1, beta2) = betas
        self.eps = eps
        self.weightDecay = weightDecay
        firstMoments = parameters.map { [Float](repeating: 0, count: $0.count) }
        secondMoments = parameters.map { [Float](repeating: 0, count: $0.count) }
    }

    /// One update from the parameters' `.grad` (parameters without one are skipped).
    public func step() throws(TensorError) {
        steps += 1
        let correction1 = 1 - Float.pow(beta1, steps), correction2 = 1 - Float.pow(beta2, steps)
        for (index, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            let g = try grad.contiguous().toArray()
            guard g.allSatisfy(\.isFinite) else { throw .nonFinite(op: "adam: gradient of parameter \(index)") }
            let values = parameter.floats
            for i in 0..<g.count {
                let gi = g[i] + weightDecay * values[i]
                firstMoments[index][i] = beta1 * firstMoments[index][i] + (1 - beta1) * gi
                secondMoments[index][i] = beta2 * secondMoments[index][i] + (1 - beta2) * gi * gi
                let mHat = firstMoments[index][i] / correction1, vHat = secondMoments[index][i] / correction2
                values[i] -= learningRate * mHat / (vHat.squareRoot() + eps)
            }
        }
    }

    public func zeroGrad() { for parameter in parameters { parameter.grad = nil } }
}

extension Float {
    static func pow(_ base: Float, _ exponent: Int) -> Float {
        var result: Float = 1
        for _ in 0..<exponent { result *= base }
        return result
    }
}
