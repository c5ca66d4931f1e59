import LVDKernels

/// Forward 3×3 convolution with stride 1 and padding 1 by Winograd's minimal filtering
/// (kernels.c): F(2×2, 3×3) (4×4 tiles, 16 GEMMs, 2.25× fewer multiplications than direct) or
/// F(4×4, 3×3) (6×6 tiles, 36 GEMMs, 4× fewer) — each GEMM between one plane of transformed
/// weights and the same plane of transformed input tiles. Used by conv2d when `applies` holds,
/// and for its weight gradient (`weightGradient`, the adjoint of the same products).
enum Winograd {
    /// Output tile side: 2 for F(2×2, 3×3), 4 for F(4×4, 3×3).
    enum Tile: Int { case two = 2, four = 4 }

    /// 3×3, stride 1, padding 1, and GEMMs wide enough (≥ 512 F(2×2) tile columns over the
    /// batch) to hide the transforms; narrower ones are faster by im2col (`lvd bench ops`).
    static func applies(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 1 && g.groups == 1
            && g.c >= 8 && g.o >= 8 && g.h >= 4 && g.w >= 4 && g.n * ((g.h + 1) / 2) * ((g.w + 1) / 2) >= 512
    }

    /// F(4×4) where its tiles still give the GEMMs ≥ 256 columns and planes of 8 or more, or
    /// ≥ 128 columns on planes of 16 or more (its transforms are larger and its rounding error a
    /// few times F(2×2)'s, still ~1e-6 relative); `Conv2dSettings.winogradTile` forces one.
    /// 8 images of 16×16 (128 tiles): F(4×4) 15–21 % faster than F(2×2) with SkylakeX kernels,
    /// 24–30 % with Haswell (640 and 1280 channels, forward and input gradient).
    static func tile(_ g: ConvGeometry) -> Tile {
        if let forced = Conv2dSettings.winogradTile.flatMap(Tile.init) { return forced }
        let tiles = g.n * ((g.h + 3) / 4) * ((g.w + 3) / 4)
        return g.h >= 8 && g.w >= 8 && tiles >= 256 || g.h >= 16 && g.w >= 16 && tiles >= 128 ? .four : .two
    }

    /// Floats between the starts of two planes of `size` floats: past the next multiple of 1024
    /// (4 KiB) by one cache line, so consecutive planes start on different cache sets (kernels.c).
    static func planeStride(_ size: Int) -> Int { (size + 1023) / 1024 * 1024 + 16 }

    /// With `flipped`, `weight` is the (C, K, 3, 3) kernel of the convolution whose input gradient
    /// this is, used flipped in space with its channels swapped (read in place, not copied).
    static func forward(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry, flipped: Bool = false,
                        into output: Tensor) throws(TensorError) {
        let (k, c, h, w) = (g.o, g.c, g.h, g.w)
        let tile = tile(g), m = tile.rawValue
        let planes = (m + 2) * (m + 2)
        let tiles = ((h + m - 1) / m) * ((w + m - 1) / m)
        let us = planeStride(k * c)
        let u = try Tensor.empty([planes * us])
        let pw = weight.floats, puw = u.floats
        Parallel.forEachChunk(k, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            switch tile {
            case .two: lvdk_winograd_weights(pw, k, c, flipped ? 1 : 0, range.lowerBound, range.upperBound, puw, us)
            case .four: lvdk_winograd43_weights(pw, k, c, flipped ? 1 : 0, range.lowerBound, range.upperBound, puw, us)
            }
        }
        try forEachImageChunk(x, g, tile) { first, images, v, vs throws(TensorError) in
            let ld = images * tiles, ms = planeStride(k * ld)
            let product = try Tensor.empty([planes * ms])
            let pv = v.floats, pm = product.floats, pu = u.floats, out = output.floats
            for i in 0..<planes {
                BLAS.gemm(transA: false, transB: false, m: k, n: ld, k: c, a: pu + i * us, lda: c,
                          b: pv + i * vs, ldb: ld, c: pm + i * ms, ldc: ld)
            }
            // Output tiles, threaded over (image, output channel).
            Parallel.forEachChunk(images * k, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
                for index in range {
                    let image = index / k, channel = index % k, target = out + (first + image) * k * h * w
                    switch tile {
                    case .two: lvdk_winograd_output(pm, ld, image * tiles, h, w, channel, channel + 1, target, ms)
                    case .four: lvdk_winograd43_output(pm, ld, image * tiles, h, w, channel, channel + 1, target, ms)
                    }
                }
            }
        }
    }

    /// Calls `body(first, count, V, plane stride of V)` for consecutive chunks of the batch's
    /// images, as many at a time as `Conv2dSettings.winogradBudget` allows for their transformed
    /// tiles and products, with V the chunk's transformed input tiles.
    private static func forEachImageChunk(_ x: Tensor, _ g: ConvGeometry, _ tile: Tile,
                                          _ body: (Int, Int, Tensor, Int) throws(TensorError) -> Void) throws(TensorError) {
        let m = tile.rawValue, planes = (m + 2) * (m + 2)
        let tiles = ((g.h + m - 1) / m) * ((g.w + m - 1) / m)
        let perImage = planes * (g.c + g.o) * tiles * 4
        let chunk = Swift.max(1, Swift.min(g.n, Conv2dSettings.winogradBudget / Swift.max(perImage, 1)))
        for first in stride(from: 0, to: g.n, by: chunk) {
            let images = Swift.min(chunk, g.n - first)
            let (v, vs) = try inputTiles(x, g, tile, images: first..<(first + images))
            try body(first, images, v, vs)
        }
    }

    /// Bᵀ d B of every input tile of `images`, as V[(m+2)²][C][images · tiles] with its plane
    /// stride, threaded over (image, channel).
    private static func inputTiles(_ x: Tensor, _ g: ConvGeometry, _ tile: Tile, images: Range<Int>) throws(TensorError) -> (Tensor, Int) {
        let (c, h, w, m) = (g.c, g.h, g.w, tile.rawValue)
        let tiles = ((h + m - 1) / m) * ((w + m - 1) / m), ld = images.count * tiles
        let vs = planeStride(c * ld)
        let v = try Tensor.empty([(m + 2) * (m + 2) * vs])
        let px = x.floats, pv = v.floats
        Parallel.forEachChunk(images.count * c, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
            for index in range {
                let image = index / c, channel = index % c, source = px + (images.lowerBound + image) * c * h * w
                switch tile {
                case .two: lvdk_winograd_input(source, h, w, channel, channel + 1, pv, ld, image * tiles, vs)
                case .four: lvdk_winograd43_input(source, h, w, channel, channel + 1, pv, ld, image * tiles, vs)
                }
            }
        }
        return (v, vs)
    }

    /// ∂L/∂weight (O, C, 3, 3) of the convolution of `x` given ∂L/∂Y `dy` (both contiguous):
    /// ∂U_i = Σ over tiles (A ∂Y Aᵀ)_i · V_iᵀ, one GEMM per plane accumulated over image chunks,
    /// then ∂g = Gᵀ ∂U G — 4× (F(4×4)) or 2.25× (F(2×2)) fewer multiplications than im2col's.
    static func weightGradient(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry) throws(TensorError) -> Tensor {
        let (k, c, h, w) = (g.o, g.c, g.h, g.w)
        let tile = tile(g), m = tile.rawValue
        let planes = (m + 2) * (m + 2)
        let tiles = ((h + m - 1) / m) * ((w + m - 1) / m)
        let us = planeStride(k * c)
        let du = try Tensor.empty([planes * us])
        try forEachImageChunk(x, g, tile) { first, images, v, vs throws(TensorError) in
            let ld = images * tiles, zs = planeStride(k * ld)
            let z = try Tensor.empty([planes * zs])
            let pdy = dy.floats, pz = z.floats, pv = v.floats, pu = du.floats
            Parallel.forEachChunk(images * k, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
                for index in range {
                    let image = index / k, channel = index % k
                    lvdk_winograd_output_adjoint(pdy + (first + image) * k * h * w, h, w, m, channel, channel + 1,
                                                 pz, ld, image * tiles, zs)
                }
            }
            for i in 0..<planes {
                BLAS.gemm(transA: false, transB: true, m: k, n: c, k: ld, a: pz + i * zs, lda: ld,
                          b: pv + i * vs, ldb: ld, beta: first == 0 ? 0 : 1, c: pu + i * us, ldc: c)
            }
        }
        let dw = try Tensor.empty([k, c, 3, 3])
        let pu = du.floats, pw = dw.floats
        Parallel.forEachChunk(k, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            lvdk_winograd_weights_adjoint(pu, c, m, range.lowerBound, range.upperBound, pw, us)
        }
        return dw
    }

    /// UNet3D's temporal convolution as conv2d sees it — kernel (3, 1), padding (1, 0), stride 1,
    /// over four frames or more — by F(4, 3) along the frames (kernels.c): half the multiplications
    /// of the shifted-row GEMMs.
    static func appliesAlongRows(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 0 && g.groups == 1
            && g.h >= 4 && g.c >= 8 && g.o >= 8 && g.w >= 16
    }

    /// The (3, 1) convolution of `x` (N, C, F, P) into `output` (N, O, F, P), bias added: per
    /// image, the 6 transformed frame groups, 6 GEMMs of (O × C) by (C × T·P), the output transform.
    static func forwardAlongRows(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?, _ g: ConvGeometry, into output: Tensor) throws(TensorError) {
        let (o, c, f, p) = (g.o, g.c, g.h, g.w)
        let ld = ((f + 3) / 4) * p
        let u = try Tensor.empty([6, o, c])
        let pw = weight.floats, pu = u.floats
        Parallel.forEachChunk(o, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            lvdk_winograd1d_weights(pw, o, c, range.lowerBound, range.upperBound, pu)
        }
        let v = try Tensor.empty([6, c, ld]), product = try Tensor.empty([6, o, ld])
        let px = x.floats, pv = v.floats, pm = product.floats, out = output.floats
        let pb: UnsafePointer<Float>? = bias.map { UnsafePointer($0.floats) }
        for image in 0..<g.n {
            let source = px + image * c * f * p, target = out + image * o * f * p
            Parallel.forEachChunk(c, grain: Swift.max(1, 16_384 / Swift.max(ld, 1))) { range in
                lvdk_winograd1d_input(source, c, f, p, range.lowerBound, range.upperBound, pv)
            }
            for i in 0..<6 {
                BLAS.gemm(transA: false, transB: false, m: o, n: ld, k: c, a: pu + i * o * c, lda: c,
                          b: pv + i * c * ld, ldb: ld, c: pm + i * o * ld, ldc: ld)
            }
            Parallel.forEachChunk(o, grain: Swift.max(1, 16_384 / Swift.max(f * p, 1))) { range in
                lvdk_winograd1d_output(pm, o, f, p, range.lowerBound, range.upperBound, pb, target)
            }
        }
    }

    /// ∂L/∂weight (O, C, 3, 1) of `forwardAlongRows` given ∂L/∂Y `dy` (both contiguous): per image
    /// the input's and ∂Y's frame-tile transforms, 6 GEMMs accumulated over the images, then Gᵀ ∂U.
    static func weightGradientAlongRows(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry) throws(TensorError) -> Tensor {
        let (o, c, f, p) = (g.o, g.c, g.h, g.w)
        let ld = ((f + 3) / 4) * p
        let du = try Tensor.empty([6, o, c])
        let v = try Tensor.empty([6, c, ld]), z = try Tensor.empty([6, o, ld])
        let px = x.floats, pdy = dy.floats, pv = v.floats, pz = z.floats, pu = du.floats
        for image in 0..<g.n {
            let source = px + image * c * f * p, gradient = pdy + image * o * f * p
            // Both transforms in one pass over the channels: input channels, then output channels.
            Parallel.forEachChunk(c + o, grain: Swift.max(1, 16_384 / Swift.max(ld, 1))) { range in
                let inputs = range.clamped(to: 0..<c), outputs = range.clamped(to: c..<(c + o))
                if !inputs.isEmpty { lvdk_winograd1d_input(source, c, f, p, inputs.lowerBound, inputs.upperBound, pv) }
                if !outputs.isEmpty {
                    lvdk_winograd1d_output_adjoint(gradient, o, f, p, outputs.lowerBound - c, outputs.upperBound - c, pz)
                }
            }
            for i in 0..<6 {
                BLAS.gemm(transA: false, transB: true, m: o, n: c, k: ld, a: pz + i * o * ld, lda: ld,
                          b: pv + i * c * ld, ldb: ld, beta: image == 0 ? 0 : 1, c: pu + i * o * c, ldc: c)
            }
        }
        let dw = try Tensor.empty([o, c, 3, 1])
        let pw = dw.floats
        Parallel.forEachChunk(o, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            lvdk_winograd1d_weights_adjoint(pu, o, c, range.lowerBound, range.upperBound, pw)
        }
        return dw
    }
}
