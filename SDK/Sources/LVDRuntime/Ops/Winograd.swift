import LVDKernels

/// Forward 3×3 convolution with stride 1 and padding 1 by Winograd's minimal filtering
/// (kernels.c): F(2×2, 3×3) (4×4 tiles, 16 GEMMs, 2.25× fewer multiplications than direct) or
/// F(4×4, 3×3) (6×6 tiles, 36 GEMMs, 4× fewer) — each GEMM between one plane of transformed
/// weights and the same plane of transformed input tiles. Used by conv2d when `applies` holds;
/// the weight gradient is the im2col one (the same function, differentiated exactly).
enum Winograd {
    /// Output tile side: 2 for F(2×2, 3×3), 4 for F(4×4, 3×3).
    enum Tile: Int { case two = 2, four = 4 }

    /// 3×3, stride 1, padding 1, and GEMMs wide enough (≥ 512 F(2×2) tile columns over the
    /// batch) to hide the transforms; narrower ones are faster by im2col (`lvd bench ops`).
    static func applies(_ g: ConvGeometry) -> Bool {
        g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 1 && g.groups == 1
            && g.c >= 8 && g.o >= 8 && g.h >= 4 && g.w >= 4 && g.n * ((g.h + 1) / 2) * ((g.w + 1) / 2) >= 512
    }

    /// F(4×4) where its tiles still give the GEMMs ≥ 256 columns and planes of 8 or more (its
    /// transforms are larger and its rounding error a few times F(2×2)'s, still ~1e-6 relative);
    /// `Conv2dSettings.winogradTile` forces one.
    static func tile(_ g: ConvGeometry) -> Tile {
        if let forced = Conv2dSettings.winogradTile.flatMap(Tile.init) { return forced }
        return g.h >= 8 && g.w >= 8 && g.n * ((g.h + 3) / 4) * ((g.w + 3) / 4) >= 256 ? .four : .two
    }

    /// Bytes of transformed input and products kept at once (images are processed in chunks).
    static let budget = 256 << 20

    static func forward(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry, into output: Tensor) throws(TensorError) {
        let (k, c, h, w) = (g.o, g.c, g.h, g.w)
        let tile = tile(g), m = tile.rawValue
        let planes = (m + 2) * (m + 2)
        let tiles = ((h + m - 1) / m) * ((w + m - 1) / m)
        let u = try Tensor.empty([planes, k, c])
        let pw = weight.floats, puw = u.floats
        Parallel.forEachChunk(k, grain: Swift.max(1, 4096 / Swift.max(c, 1))) { range in
            switch tile {
            case .two: lvdk_winograd_weights(pw, k, c, range.lowerBound, range.upperBound, puw)
            case .four: lvdk_winograd43_weights(pw, k, c, range.lowerBound, range.upperBound, puw)
            }
        }
        let perImage = planes * (c + k) * tiles * 4
        let chunk = Swift.max(1, Swift.min(g.n, budget / Swift.max(perImage, 1)))
        var first = 0
        while first < g.n {
            let images = Swift.min(chunk, g.n - first)
            let ld = images * tiles
            let v = try Tensor.empty([planes, c, ld]), product = try Tensor.empty([planes, k, ld])
            let px = x.floats, pv = v.floats, pm = product.floats, pu = u.floats, out = output.floats
            // Input tiles, threaded over (image, channel).
            Parallel.forEachChunk(images * c, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
                for index in range {
                    let image = index / c, channel = index % c, source = px + (first + image) * c * h * w
                    switch tile {
                    case .two: lvdk_winograd_input(source, c, h, w, channel, channel + 1, pv, ld, image * tiles)
                    case .four: lvdk_winograd43_input(source, c, h, w, channel, channel + 1, pv, ld, image * tiles)
                    }
                }
            }
            for i in 0..<planes {
                BLAS.gemm(transA: false, transB: false, m: k, n: ld, k: c, a: pu + i * k * c, lda: c,
                          b: pv + i * c * ld, ldb: ld, c: pm + i * k * ld, ldc: ld)
            }
            // Output tiles, threaded over (image, output channel).
            Parallel.forEachChunk(images * k, grain: Swift.max(1, 4096 / Swift.max(tiles, 1))) { range in
                for index in range {
                    let image = index / k, channel = index % k, target = out + (first + image) * k * h * w
                    switch tile {
                    case .two: lvdk_winograd_output(pm, k, ld, image * tiles, h, w, channel, channel + 1, target)
                    case .four: lvdk_winograd43_output(pm, k, ld, image * tiles, h, w, channel, channel + 1, target)
                    }
                }
            }
            first += images
        }
    }
}
