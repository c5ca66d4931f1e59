import LVDKernels

/// Forward 3×3 convolution with stride 1 and padding 1 by Winograd F(2×2, 3×3): 2.25× fewer
/// multiplications than direct convolution, as 16 GEMMs between transformed weights and
/// transformed input tiles (kernels.c). Used by conv2d when `isWinogradCase` holds; the
/// backward pass is the im2col one (the same function, differentiated exactly).
enum Winograd {
    /// 3×3, stride 1, padding 1, and GEMMs wide enough (≥ 512 tile columns over the batch) to
    /// hide the transforms; narrower ones are faster by im2col (measured by `lvd bench ops`).
    static func applies(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 1 && g.groups == 1
            && g.c >= 8 && g.o >= 8 && g.h >= 4 && g.w >= 4 && g.n * ((g.h + 1) / 2) * ((g.w + 1) / 2) >= 512
    }

    /// Bytes of transformed input and products kept at once (images are processed in chunks).
    static let budget = 256 << 20

    static func forward(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry, into output: Tensor) throws(TensorError) {
        let (k, c, h, w) = (g.o, g.c, g.h, g.w)
        let tiles = ((h + 1) / 2) * ((w + 1) / 2)
        let u = try Tensor.empty([16, k, c])
        let pw = weight.floats, puw = u.floats
        Parallel.forEachChunk(k, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            lvdk_winograd_weights(pw, k, c, range.lowerBound, range.upperBound, puw)
        }
        let perImage = 16 * (c + k) * tiles * 4
        let chunk = Swift.max(1, Swift.min(g.n, budget / Swift.max(perImage, 1)))
        var first = 0
        while first < g.n {
            let images = Swift.min(chunk, g.n - first)
            let ld = images * tiles
            let v = try Tensor.empty([16, c, ld]), m = try Tensor.empty([16, k, ld])
            let px = x.floats, pv = v.floats, pm = m.floats, pu = u.floats, out = output.floats
            // Input tiles, threaded over (image, channel).
            Parallel.forEachChunk(images * c, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
                for index in range {
                    let image = index / c, channel = index % c
                    lvdk_winograd_input(px + (first + image) * c * h * w, c, h, w, channel, channel + 1, pv, ld, image * tiles)
                }
            }
            for i in 0..<16 {
                BLAS.gemm(transA: false, transB: false, m: k, n: ld, k: c, a: pu + i * k * c, lda: c,
                          b: pv + i * c * ld, ldb: ld, c: pm + i * k * ld, ldc: ld)
            }
            // Output tiles, threaded over (image, output channel).
            Parallel.forEachChunk(images * k, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
                for index in range {
                    let image = index / k, channel = index % k
                    lvdk_winograd_output(pm, k, ld, image * tiles, h, w, channel, channel + 1, out + (first + image) * k * h * w)
                }
            }
            first += images
        }
    }
}
