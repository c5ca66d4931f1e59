// The leaf layers of the diffusers / transformers models, parameters named as torch names them.

import LVDRuntime

public final class Linear: Module {
    @Key("weight") public var weight: Parameter
    @Key("bias") public var bias: Parameter?

    /// x · Wᵀ + b over the last axis.
    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        try x.linear(weight.tensor, bias: bias?.tensor)
    }

    public init(_ input: Int, _ output: Int, bias: Bool = true) {
        super.init()
        weight = Parameter([output, input])
        self.bias = bias ? Parameter([output]) : nil
    }
}

public final class Conv2d: Module {
    @Key("weight") public var weight: Parameter
    @Key("bias") public var bias: Parameter?
    public private(set) var stride = 1, padding = 0

    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        try x.conv2d(weight: weight.tensor, bias: bias?.tensor, stride: (stride, stride), padding: (padding, padding))
    }

    public init(_ input: Int, _ output: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        super.init()
        weight = Parameter([output, input, kernel, kernel])
        self.bias = bias ? Parameter([output]) : nil
        self.stride = stride
        self.padding = padding
    }
}

/// torch.nn.Conv3d with kernel (kt, 1, 1), as UNet3D's temporal convolutions.
public final class TemporalConv3d: Module {
    @Key("weight") public var weight: Parameter
    @Key("bias") public var bias: Parameter
    public private(set) var padding = 0

    /// Over (B, C, F, H, W).
    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        try x.conv3dTemporal(weight: weight.tensor, bias: bias.tensor, padding: padding)
    }

    public init(_ input: Int, _ output: Int, frames kernel: Int = 3, padding: Int = 1) {
        super.init()
        weight = Parameter([output, input, kernel, 1, 1])
        bias = Parameter([output])
        self.padding = padding
    }
}

public final class GroupNorm: Module {
    @Key("weight") public var weight: Parameter
    @Key("bias") public var bias: Parameter
    public private(set) var groups = 1, eps: Float = 1e-5

    /// Over (N, C, …): statistics per sample and group of channels, all further axes included.
    /// `thenSiLU`: SiLU of the result, folded into the normalisation's pass in inference.
    public func callAsFunction(_ x: Tensor, thenSiLU: Bool = false) throws(TensorError) -> Tensor {
        try x.groupNorm(groups: groups, weight: weight.tensor, bias: bias.tensor, eps: eps, thenSiLU: thenSiLU)
    }

    public init(groups: Int, channels: Int, eps: Float) {
        super.init()
        weight = Parameter([channels])
        bias = Parameter([channels])
        self.groups = groups
        self.eps = eps
    }
}

public final class LayerNorm: Module {
    @Key("weight") public var weight: Parameter
    @Key("bias") public var bias: Parameter
    public private(set) var eps: Float = 1e-5

    public func callAsFunction(_ x: Tensor) throws(TensorError) -> Tensor {
        try x.layerNorm(weight: weight.tensor, bias: bias.tensor, eps: eps)
    }

    public init(_ dim: Int, eps: Float = 1e-5) {
        super.init()
        weight = Parameter([dim])
        bias = Parameter([dim])
        self.eps = eps
    }
}

public final class Embedding: Module {
    @Key("weight") public var weight: Parameter

    public init(_ count: Int, _ dim: Int) { super.init(); weight = Parameter([count, dim]) }
}
