// 2-D convolution on sgemm (im2col), NCHW input, OIHW weight, as torch.nn.Conv2d.
// The temporal (3,1,1) convolution of UNet3D is this op on (B, C, F, H·W) with kernel (3, 1).

struct ConvGeometry: Equatable {
    var n, c, h, w: Int          // input
    var o, kh, kw: Int           // output channels, kernel
    var sh, sw, ph, pw: Int      // stride, padding
    var groups: Int
    var oh: Int { (h + 2 * ph - kh) / sh + 1 }
    var ow: Int { (w + 2 * pw - kw) / sw + 1 }
    var cg: Int { c / groups }
    var og: Int { o / groups }
    /// Rows of a column matrix: input channels of one group × kernel positions.
    var k: Int { cg * kh * kw }
    var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 }
}

extension Tensor {
    /// torch.nn.functional.conv2d: input (N, C, H, W), weight (O, C/groups, kh, kw), bias (O).
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                       groups: Int = 1) throws(TensorError) -> Tensor {
        try requireF32("conv2d")
        try weight.requireF32("conv2d")
        guard rank == 4, weight.rank == 4 else {
            throw .invalidArgument(op: "conv2d", "needs input (N, C, H, W) and weight (O, C/g, kh, kw), got \(shape) and \(weight.shape)")
        }
        let g = ConvGeometry(n: shape[0], c: shape[1], h: shape[2], w: shape[3], o: weight.shape[0],
                             kh: weight.shape[2], kw: weight.shape[3], sh: stride.0, sw: stride.1,
                             ph: padding.0, pw: padding.1, groups: groups)
        guard groups >= 1, g.c % groups == 0, g.o % groups == 0, weight.shape[1] == g.cg else {
            throw .shapeMismatch(op: "conv2d", "input \(shape), weight \(weight.shape), groups \(groups)")
        }
        guard g.sh >= 1, g.sw >= 1, g.ph >= 0, g.pw >= 0, g.oh >= 1, g.ow >= 1 else {
            throw .invalidArgument(op: "conv2d", "stride \(stride), padding \(padding) on \(shape) with kernel \(g.kh)×\(g.kw)")
        }
        if let bias, bias.shape != [g.o] { throw .shapeMismatch(op: "conv2d", "bias \(bias.shape) for \(g.o) channels") }

        let x = try GradMode.withoutGrad { () throws(TensorError) in try self.detached().contiguous() }
        let wt = try GradMode.withoutGrad { () throws(TensorError) in try weight.detached().contiguous() }
        let b = try bias.map { bias throws(TensorError) in try GradMode.withoutGrad { () throws(TensorError) in try bias.detached().contiguous() } }
        let output = try Tensor.empty([g.n, g.o, g.oh, g.ow])
        let plane = g.oh * g.ow
        if Winograd.applies(g) && Conv2dSettings.winograd {
            try Winograd.forward(x, wt, g, into: output)
            if let b { addChannelBias(b, output, g) }
        } else if Winograd.appliesAlongRows(g) && Conv2dSettings.winograd {
            try Winograd.forwardAlongRows(x, wt, b, g, into: output)
        } else if g.groups == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pw == 0 && g.kh > 1 {
            try conv2dShiftedRows(x, wt, b, g, into: output)
        } else if g.groups == 1 && plane < Conv2dSettings.batchedPlane && g.n > 1 {
            try conv2dBatched(x, wt, b, g, into: output)
        } else {
            let column: Tensor? = g.isPointwise ? nil : try Tensor.empty([g.k, plane])
            for image in 0..<g.n {
                for group in 0..<g.groups {
                    let input = x.floats + (image * g.c + group * g.cg) * g.h * g.w
                    let cols: UnsafePointer<Float>
                    if let column {
                        im2col(input, g, column.floats, ld: plane)
                        cols = UnsafePointer(column.floats)
                    } else {
                        cols = UnsafePointer(input)
                    }
                    BLAS.gemm(transA: false, transB: false, m: g.og, n: plane, k: g.k,
                              a: wt.floats + group * g.og * g.k, lda: g.k, b: cols, ldb: plane,
                              c: output.floats + (image * g.o + group * g.og) * plane, ldc: plane)
                }
            }
            if let b { addChannelBias(b, output, g) }
        }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        return Tensor.record(output, .conv2d(g), inputs)
    }
}

/// Adds bias[o] to every value of output channel o (output (N, O, oh, ow), contiguous).
private func addChannelBias(_ bias: Tensor, _ output: Tensor, _ g: ConvGeometry) {
    let plane = g.oh * g.ow, out = output.floats, pb = bias.floats
    Parallel.forEachChunk(g.n * g.o, grain: Swift.max(1, 32_768 / plane)) { range in
        for index in range {
            let value = pb[index % g.o], row = out + index * plane
            for j in 0..<plane { row[j] += value }
        }
    }
}

/// Kernels (kh × 1) with stride 1 and no padding across columns — UNet3D's temporal (3, 1, 1)
/// convolution on (B, C, F, H·W): each tap is one GEMM of the tap's (O × C) weights with the
/// input's rows shifted by the tap, added onto the output (which starts as the bias). No column
/// matrix: im2col would copy the input kh times.
private func conv2dShiftedRows(_ x: Tensor, _ wt: Tensor, _ bias: Tensor?, _ g: ConvGeometry, into output: Tensor) throws(TensorError) {
    let plane = g.oh * g.ow, w = g.w
    // (O, C, kh, 1) -> taps (kh, O, C)
    let taps = try Tensor.empty([g.kh, g.o, g.c])
    let src = wt.floats, dst = taps.floats
    Parallel.forEachChunk(g.o, grain: Swift.max(1, 16_384 / Swift.max(g.c * g.kh, 1))) { range in
        for o in range {
            for c in 0..<g.c {
                for ky in 0..<g.kh { dst[(ky * g.o + o) * g.c + c] = src[(o * g.c + c) * g.kh + ky] }
            }
        }
    }
    let out = output.floats
    Parallel.forEachChunk(g.n * g.o, grain: Swift.max(1, 32_768 / plane)) { range in
        for index in range {
            let row = out + index * plane
            if let bias { row.initialize(repeating: bias.floats[index % g.o], count: plane) } else { row.initialize(repeating: 0, count: plane) }
        }
    }
    for image in 0..<g.n {
        for ky in 0..<g.kh {
            // Output rows oy read input row y = oy − ph + ky; keep those with 0 ≤ y < h.
            let first = Swift.max(0, g.ph - ky), last = Swift.min(g.oh, g.h + g.ph - ky)
            guard last > first else { continue }
            BLAS.gemm(transA: false, transB: false, m: g.o, n: (last - first) * w, k: g.c,
                      a: taps.floats + ky * g.o * g.c, lda: g.c,
                      b: x.floats + image * g.c * g.h * w + (first - g.ph + ky) * w, ldb: g.h * w, beta: 1,
                      c: out + image * g.o * plane + first * w, ldc: plane)
        }
    }
}

/// Small planes (the 4×4 and 8×8 levels of a UNet): one GEMM over a block of images, its
/// columns side by side, instead of a GEMM per image whose N would be the plane (16 or 64
/// columns, far from BLAS's rate). The product (O, images·plane) is then laid out per image,
/// with the bias.
private func conv2dBatched(_ x: Tensor, _ wt: Tensor, _ bias: Tensor?, _ g: ConvGeometry, into output: Tensor) throws(TensorError) {
    let plane = g.oh * g.ow
    let images = Swift.max(1, Swift.min(g.n, Conv2dSettings.columnBudget / Swift.max(4 * (g.k + g.o) * plane, 1)))
    let column = try Tensor.empty([g.k, images * plane]), product = try Tensor.empty([g.o, images * plane])
    var first = 0
    while first < g.n {
        let count = Swift.min(images, g.n - first), ld = count * plane
        for image in 0..<count {
            im2col(x.floats + (first + image) * g.c * g.h * g.w, g, column.floats + image * plane, ld: ld)
        }
        BLAS.gemm(transA: false, transB: false, m: g.o, n: ld, k: g.k, a: wt.floats, lda: g.k,
                  b: column.floats, ldb: ld, c: product.floats, ldc: ld)
        let pp = product.floats, out = output.floats
        Parallel.forEachChunk(count * g.o, grain: Swift.max(1, 32_768 / plane)) { range in
            for index in range {
                let image = index / g.o, o = index % g.o
                let from = pp + o * ld + image * plane, to = out + ((first + image) * g.o + o) * plane
                let value = bias?.floats[o] ?? 0
                for j in 0..<plane { to[j] = from[j] + value }
            }
        }
        first += count
    }
}

/// Unfolds one group's channels of one image into a (cg·kh·kw) × (oh·ow) matrix whose rows are
/// `ld` apart (≥ oh·ow; wider when several images share one column matrix); threaded over rows.
func im2col(_ input: UnsafePointer<Float>, _ g: ConvGeometry, _ column: UnsafeMutablePointer<Float>, ld: Int) {
    let oh = g.oh, ow = g.ow
    Parallel.forEachChunk(g.k, grain: Swift.max(1, 16_384 / (oh * ow))) { rows in
        for row in rows {
            let c = row / (g.kh * g.kw), ky = (row / g.kw) % g.kh, kx = row % g.kw
            let plane = input + c * g.h * g.w
            let out = column + row * ld
            for oy in 0..<oh {
                let y = oy * g.sh - g.ph + ky
                let line = out + oy * ow
                guard y >= 0, y < g.h else { line.initialize(repeating: 0, count: ow); continue }
                let source = plane + y * g.w
                if g.sw == 1 {
                    // Contiguous run: zeros where x falls outside, a copy in between.
                    let first = Swift.max(0, g.pw - kx), last = Swift.min(ow, g.w + g.pw - kx)
                    if first > 0 { line.initialize(repeating: 0, count: Swift.min(first, ow)) }
                    if last > first { (line + first).update(from: source + first - g.pw + kx, count: last - first) }
                    if last < ow { (line + Swift.max(last, 0)).initialize(repeating: 0, count: ow - Swift.max(last, 0)) }
                } else {
                    for ox in 0..<ow {
                        let x = ox * g.sw - g.pw + kx
                        line[ox] = x >= 0 && x < g.w ? source[x] : 0
                    }
                }
            }
        }
    }
}

/// Adds a column matrix back into one group's channels of an image (the adjoint of im2col);
/// threaded over channels so no two threads write the same plane.
func col2im(_ column: UnsafePointer<Float>, _ g: ConvGeometry, _ input: UnsafeMutablePointer<Float>) {
    let oh = g.oh, ow = g.ow
    Parallel.forEachChunk(g.cg, grain: 1) { channels in
        for c in channels {
            let plane = input + c * g.h * g.w
            for ky in 0..<g.kh {
                for kx in 0..<g.kw {
                    let row = column + ((c * g.kh + ky) * g.kw + kx) * oh * ow
                    for oy in 0..<oh {
                        let y = oy * g.sh - g.ph + ky
                        guard y >= 0, y < g.h else { continue }
                        let target = plane + y * g.w, line = row + oy * ow
                        if g.sw == 1 {
                            // x = ox − pw + kx over the valid run of ox.
                            let first = Swift.max(0, g.pw - kx), last = Swift.min(ow, g.w + g.pw - kx)
                            if last > first {
                                let to = target + (first - g.pw + kx), from = line + first
                                for j in 0..<(last - first) { to[j] += from[j] }
                            }
                        } else {
                            for ox in 0..<ow {
                                let x = ox * g.sw - g.pw + kx
                                if x >= 0 && x < g.w { target[x] += line[ox] }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Gradients of conv2d with respect to its input and weight (dY is (N, O, oh, ow), contiguous).
func conv2dBackward(_ g: ConvGeometry, x: Tensor, weight: Tensor, dy: Tensor, needInput: Bool, needWeight: Bool)
    throws(TensorError) -> (dx: Tensor?, dw: Tensor?) {
    let x = try x.detached().contiguous(), w = try weight.detached().contiguous(), dy = try dy.contiguous()
    let plane = g.oh * g.ow
    // For 3×3, stride 1, padding 1, dX is itself such a convolution: of dY with the kernel
    // flipped in space and with input and output channels swapped — so Winograd applies.
    // The same holds for the temporal (3, 1) kernel with padding (1, 0).
    var swapped = g
    (swapped.c, swapped.o) = (g.o, g.c)
    let flippedInputGrad = needInput && Conv2dSettings.winograd
        && ((Winograd.applies(g) && Winograd.applies(swapped)) || (Winograd.appliesAlongRows(g) && Winograd.appliesAlongRows(swapped)))
    var dxWinograd: Tensor?
    if flippedInputGrad && Winograd.applies(swapped) {
        let dx = try Tensor.empty([g.n, g.c, g.h, g.w])
        try Winograd.forward(dy, w, swapped, flipped: true, into: dx)
        dxWinograd = dx
    } else if flippedInputGrad {
        // w (o, c, kh, kw) -> w' (c, o, kh, kw) with w'[c][o][i][j] = w[o][c][kh-1-i][kw-1-j]
        let taps = g.kh * g.kw
        let flipped = try Tensor.empty([g.c, g.o, g.kh, g.kw])
        let src = w.floats, dst = flipped.floats
        for o in 0..<g.o {
            for c in 0..<g.c {
                for i in 0..<taps { dst[(c * g.o + o) * taps + i] = src[(o * g.c + c) * taps + (taps - 1 - i)] }
            }
        }
        dxWinograd = try dy.conv2d(weight: flipped, padding: (g.ph, g.pw))
    }
    let winogradWeight = needWeight && Conv2dSettings.winograd && (Winograd.applies(g) || Winograd.appliesAlongRows(g))
    let dwWinograd = !winogradWeight ? nil
        : Winograd.applies(g) ? try Winograd.weightGradient(x, dy, g) : try Winograd.weightGradientAlongRows(x, dy, g)
    let dx = needInput && !flippedInputGrad ? try Tensor.zeros([g.n, g.c, g.h, g.w]) : nil
    let dw = needWeight && !winogradWeight ? try Tensor.zeros([g.o, g.cg, g.kh, g.kw]) : nil
    // Nothing left for the im2col loop when Winograd gave what is wanted.
    guard dx != nil || dw != nil else { return (dxWinograd, dwWinograd) }
    let column = try Tensor.empty([g.k, plane])
    for image in 0..<g.n {
        for group in 0..<g.groups {
            let gradOut = dy.floats + (image * g.o + group * g.og) * plane
            if let dw {
                let input = x.floats + (image * g.c + group * g.cg) * g.h * g.w
                let cols: UnsafePointer<Float>
                if g.isPointwise { cols = UnsafePointer(input) } else { im2col(input, g, column.floats, ld: plane); cols = UnsafePointer(column.floats) }
                // dW_g += dY_g · colᵀ
                BLAS.gemm(transA: false, transB: true, m: g.og, n: g.k, k: plane, a: gradOut, lda: plane,
                          b: cols, ldb: plane, beta: 1, c: dw.floats + group * g.og * g.k, ldc: g.k)
            }
            if let dx {
                let target = dx.floats + (image * g.c + group * g.cg) * g.h * g.w
                if g.isPointwise {
                    // dX_g += W_gᵀ · dY_g directly.
                    BLAS.gemm(transA: true, transB: false, m: g.k, n: plane, k: g.og, a: w.floats + group * g.og * g.k,
                              lda: g.k, b: gradOut, ldb: plane, beta: 1, c: target, ldc: plane)
                } else {
                    BLAS.gemm(transA: true, transB: false, m: g.k, n: plane, k: g.og, a: w.floats + group * g.og * g.k,
                              lda: g.k, b: gradOut, ldb: plane, c: column.floats, ldc: plane)
                    col2im(column.floats, g, target)
                }
            }
        }
    }
    return (dxWinograd ?? dx, dwWinograd ?? dw)
}

extension Tensor {
    /// UNet3D's temporal convolution: input (B, C, F, H, W), weight (O, C, kt, 1, 1) as
    /// torch.nn.Conv3d stores it, zero padding `padding` frames on each side in time. Runs as
    /// conv2d on (B, C, F, H·W) with kernel (kt, 1).
    public func conv3dTemporal(weight: Tensor, bias: Tensor? = nil, padding: Int) throws(TensorError) -> Tensor {
        guard rank == 5, weight.rank == 5, weight.shape[3] == 1, weight.shape[4] == 1 else {
            throw .invalidArgument(op: "conv3d_temporal", "needs input (B, C, F, H, W) and weight (O, C, kt, 1, 1), got \(shape) and \(weight.shape)")
        }
        let (b, f, h, w) = (shape[0], shape[2], shape[3], shape[4])
        // (b, c, f, h, w) -> (b, c, f, h·w); weight (o, c, kt, 1, 1) -> (o, c, kt, 1)
        let planes = try reshaped([b, shape[1], f, h * w])
        let kernel = try weight.reshaped([weight.shape[0], weight.shape[1], weight.shape[2], 1])
        let out = try planes.conv2d(weight: kernel, bias: bias, padding: (padding, 0))
        // (b, o, f', h·w) -> (b, o, f', h, w)
        return try out.reshaped([b, weight.shape[0], out.shape[2], h, w])
    }
}

/// Switches for benchmarks and tests.
public enum Conv2dSettings {
    /// Use Winograd F(2×2, 3×3) for eligible 3×3 convolutions (LVD_WINOGRAD=0 turns it off).
    nonisolated(unsafe) public static var winograd: Bool = ProcessInfo.processInfo.environment["LVD_WINOGRAD"] != "0"
    /// Output tile of every Winograd convolution: 2 for F(2×2, 3×3), 4 for F(4×4, 3×3)
    /// (LVD_WINOGRAD_TILE); nil chooses by shape.
    nonisolated(unsafe) public static var winogradTile: Int? = ProcessInfo.processInfo.environment["LVD_WINOGRAD_TILE"].flatMap { Int($0) }
    /// Bytes of transformed tiles and products a Winograd convolution keeps at once (images are
    /// processed in chunks of this size).
    nonisolated(unsafe) public static var winogradBudget = 256 << 20
    /// Output planes below this many values are convolved several images per GEMM.
    nonisolated(unsafe) public static var batchedPlane = 256
    /// Bytes of column matrix and product a batched convolution keeps at once.
    nonisolated(unsafe) public static var columnBudget = 64 << 20
}

import Foundation
