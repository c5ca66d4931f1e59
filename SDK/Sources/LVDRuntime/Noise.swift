import Foundation
import LVDFormats

/// Seeded Gaussian noise that follows PyTorch's CPU generator: `torch.manual_seed(seed);
/// torch.randn(shape)`. The uniform stream is bit-identical (MT19937 seeded with the low 32 bits
/// of the seed, 24-bit floats); the Box-Muller transform over blocks of 16 (pairs j, j + 8, the
/// last 16 values redrawn when the count is not a multiple of 16) is torch's, with the platform's
/// logf/cosf/sinf where torch's AVX2 path uses SLEEF — so values agree to about 1e-6, not always
/// bit for bit. Tensors of fewer than 16 elements use the same transform (torch uses another).
public enum Noise {
    public static func randn(_ shape: [Int], seed: UInt64) throws(TensorError) -> Tensor {
        let tensor = try Tensor.empty(shape)
        let count = tensor.count, data = tensor.floats
        var generator = MT19937(seed: UInt32(truncatingIfNeeded: seed))
        for i in 0..<count { data[i] = generator.nextFloat() }
        if count >= 16 {
            var i = 0
            while i + 16 <= count {
                boxMuller16(data + i)
                i += 16
            }
            if count % 16 != 0 {
                // Recompute the last 16 values from fresh uniforms, as torch does.
                let tail = data + count - 16
                for j in 0..<16 { tail[j] = generator.nextFloat() }
                boxMuller16(tail)
            }
        } else {
            for j in stride(from: 0, to: count, by: 2) {
                let u1 = 1 - data[j], u2 = j + 1 < count ? data[j + 1] : generator.nextFloat()
                let radius = (-2 * logf(u1)).squareRoot(), theta = Float(2 * Double.pi * Double(u2))
                data[j] = radius * cosf(theta)
                if j + 1 < count { data[j + 1] = radius * sinf(theta) }
            }
        }
        return tensor
    }

    /// torch's normal_fill_16: data[j], data[j + 8] from uniforms (u1 = 1 − data[j], u2 = data[j + 8]).
    private static func boxMuller16(_ data: UnsafeMutablePointer<Float>) {
        for j in 0..<8 {
            let u1 = 1 - data[j], u2 = data[j + 8]
            let radius = (-2 * logf(u1)).squareRoot()
            let theta = Float(2 * Double.pi * Double(u2))
            data[j] = radius * cosf(theta)
            data[j + 8] = radius * sinf(theta)
        }
    }
}

extension MT19937 {
    /// A float in [0, 1) from the low 24 bits, as torch's uniform_real_distribution<float>.
    mutating func nextFloat() -> Float { Float(next() & 0xFF_FFFF) * Float(1.0 / 16_777_216.0) }
}
