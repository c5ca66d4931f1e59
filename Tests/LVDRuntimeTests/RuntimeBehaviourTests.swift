import LVDRuntime
import XCTest

/// What the runtime promises beyond op values: views, errors, the tape, precision, Adam.
final class RuntimeBehaviourTests: XCTestCase {
    func testViewsShareStorageAndContiguousCopies() throws {
        let x = try Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let r = try x.reshaped([6, 4])
        XCTAssertTrue(r.storage === x.storage, "reshape of contiguous data is a view")
        let p = try x.permuted([2, 0, 1])
        XCTAssertTrue(p.storage === x.storage)
        XCTAssertFalse(p.isContiguous)
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(try p.contiguous().toArray()[0...3], [0, 4, 8, 12])
        let s = try x.sliced(axis: 2, start: 1, end: 4, step: 2)
        XCTAssertTrue(s.storage === x.storage)
        XCTAssertEqual(s.toArray(), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23])
        let e = try Tensor([1, 2], shape: [2, 1]).expanded([2, 3])
        XCTAssertEqual(e.strides, [1, 0])
        XCTAssertEqual(e.toArray(), [1, 1, 1, 2, 2, 2])
    }

    func testBadInputThrowsErrorsThatNameTheOpAndValues() throws {
        let a = try Tensor.zeros([2, 3]), b = try Tensor.zeros([4])
        XCTAssertThrowsError(try a + b) { XCTAssertEqual("\($0)", "add: shape mismatch: [2, 3] and [4] do not broadcast") }
        XCTAssertThrowsError(try a.sum(axes: [2])) { XCTAssertEqual("\($0)", "sum: axis 2 is out of range for rank 2") }
        XCTAssertThrowsError(try a.softmax(axis: -3)) { XCTAssertEqual("\($0)", "softmax: axis -3 is out of range for rank 2") }
        XCTAssertThrowsError(try a.matmul(a)) { XCTAssertEqual("\($0)", "matmul: shape mismatch: [2, 3] × [2, 3]: inner extents 3 and 2") }
        XCTAssertThrowsError(try a.reshaped([5])) { XCTAssertTrue("\($0)".contains("reshape: shape mismatch: [2, 3] (6 elements) to [5]")) }
        XCTAssertThrowsError(try a.topK(0)) { XCTAssertTrue("\($0)".contains("topk: k = 0 must be in 1...3")) }
        XCTAssertThrowsError(try Tensor.zeros([1 << 30, 1 << 30])) { XCTAssertTrue("\($0)".contains("more than 2^40 elements")) }
        XCTAssertThrowsError(try a.conv2d(weight: b)) { XCTAssertTrue("\($0)".hasPrefix("conv2d: needs input (N, C, H, W)")) }
        let half = try Tensor.zeros([2], dtype: .f16)
        XCTAssertThrowsError(try half.exp()) { XCTAssertEqual("\($0)", "exp: needs f32, got f16") }
    }

    func testBackwardNeedsAScalarOrSeedAndAFiniteRoot() throws {
        let x = try Tensor([1, 2, 3], shape: [3]).requiringGrad()
        let y = try x * x
        XCTAssertThrowsError(try y.backward()) { XCTAssertEqual("\($0)", "backward: gradient of a non-scalar tensor of shape [3] needs a seed") }
        try y.backward(seed: Tensor([1, 1, 1], shape: [3]))
        XCTAssertEqual(x.grad?.toArray(), [2, 4, 6])
        XCTAssertThrowsError(try Tensor.zeros([1]).backward()) { XCTAssertTrue("\($0)".contains("does not require grad")) }
        let bad = try (x * Float.nan).sum()
        XCTAssertThrowsError(try bad.backward()) { XCTAssertTrue("\($0)".contains("non-finite"), "\($0)") }
    }

    func testGradientsAccumulateOverUsesAndCalls() throws {
        let x = try Tensor([3], shape: [1]).requiringGrad()
        try (x * x + x).sum().backward() // d/dx (x² + x) = 2x + 1 = 7
        XCTAssertEqual(x.grad?.toArray(), [7])
        try (x * 2).sum().backward()
        XCTAssertEqual(x.grad?.toArray(), [9], "a second backward adds to .grad")
    }

    func testCheckpointedFunctionsGiveTheSameGradientsAndKeepLess() throws {
        let w = try Tensor((0..<256).map { Float($0 % 13) / 40 - 0.15 }, shape: [16, 16]).requiringGrad()
        let other = try Tensor((0..<64).map { Float($0 % 5) / 4 }, shape: [4, 16])
        let projection = try Tensor((0..<64).map { Float($0 % 7) - 3 }, shape: [4, 16])
        // Two outputs; a captured parameter (w); an input that needs no gradient (other).
        let f: ([Tensor]) throws(TensorError) -> [Tensor] = { t throws(TensorError) in
            [try t[0].matmul(w).gelu().matmul(w).tanh(), try (t[0] * t[1]).softmax(axis: 1)]
        }
        func gradients(_ checkpoint: Bool) throws -> (x: [Float], w: [Float], outputs: [[Float]]) {
            w.grad = nil
            let x = try Tensor((0..<64).map { Float($0 % 9) / 8 - 0.5 }, shape: [4, 16]).requiringGrad()
            let outputs = checkpoint ? try Tensor.checkpointed([x, other], f) : try f([x, other])
            try (outputs[0].sum() + (outputs[1] * projection).sum()).backward()
            return (try XCTUnwrap(x.grad).toArray(), try XCTUnwrap(w.grad).toArray(), outputs.map { $0.toArray() })
        }
        let plain = try gradients(false), checkpointed = try gradients(true)
        XCTAssertEqual(checkpointed.outputs, plain.outputs, "the same values")
        for (ours, theirs) in [(checkpointed.x, plain.x), (checkpointed.w, plain.w)] {
            XCTAssertLessThanOrEqual(zip(ours, theirs).map { Swift.abs($0 - $1) }.max()!, 1e-6, "the same gradients")
        }
        XCTAssertGreaterThan(plain.x.map(Swift.abs).max()!, 0)

        // A chain of ten layers: the tape keeps every intermediate buffer; checkpoints keep one per layer.
        func liveAfterChain(_ checkpoint: Bool) throws -> Int {
            let baseline = Storage.liveCount
            var h = try Tensor.full([4, 16], 0.5).requiringGrad()
            let layer: ([Tensor]) throws(TensorError) -> [Tensor] = { t throws(TensorError) in [try t[0].matmul(w).gelu().matmul(w).tanh()] }
            for _ in 0..<10 { h = checkpoint ? try Tensor.checkpointed([h], layer)[0] : try layer([h])[0] }
            let live = Storage.liveCount - baseline
            try h.sum().backward()
            return live
        }
        let kept = try liveAfterChain(true), tape = try liveAfterChain(false)
        XCTAssertLessThan(kept * 3, tape * 2, "checkpointing keeps fewer buffers alive (\(kept) vs \(tape))")
    }

    /// Inference attention runs in blocks of query rows (scores never whole); it must equal the
    /// one-shot attention the tape uses, with and without a mask.
    func testBlockedInferenceAttentionEqualsTheWholeComputation() throws {
        func values(_ n: Int, _ salt: Int) -> [Float] { (0..<n).map { Float(($0 * 7919 + salt * 104729) % 997) / 997 - 0.5 } }
        let (b, lq, lk, d) = (3, 1536, 1024, 16) // 3 · 1536 · 1024 > 4 Mi elements: blocked when not recording
        let q = try Tensor(values(b * lq * d, 1), shape: [b, lq, d])
        let k = try Tensor(values(b * lk * d, 2), shape: [b, lk, d])
        let v = try Tensor(values(b * lk * d, 3), shape: [b, lk, d])
        let mask = try Tensor((0..<(lq * lk)).map { $0 % 5 == 0 ? -1e9 : 0 }, shape: [1, lq, lk])
        for m in [nil, mask] {
            let blocked = try GradMode.withoutGrad { try Tensor.attention(query: q, key: k, value: v, mask: m).output.toArray() }
            // With q requiring grad the tape's path runs: the whole scores at once (one node
            // without a mask, the composed ops with one).
            let whole = try Tensor.attention(query: q.detached().requiringGrad(), key: k, value: v, mask: m).output.toArray()
            let worst = zip(blocked, whole).map { Swift.abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-6, m == nil ? "no mask" : "with a mask")
        }
    }

    /// Recorded attention without mask or capture is one tape node with its own backward; its
    /// output and gradients must equal those of the composed ops (scale, matmuls, softmax —
    /// checked against torch by the harness), which run when the probabilities are returned.
    /// Cases: batches one at a time with threaded products (1 and 3 batches), batches spread
    /// over the threads, a heads view of a (n, L, heads, d) projection, and some inputs only.
    func testAttentionNodeMatchesTheComposedOps() throws {
        let cases: [(q: [Int], k: [Int], headsView: Bool, needs: [Bool])] = [
            ([1, 40, 24], [1, 33, 24], false, [true, true, true]),
            ([3, 7, 4], [3, 5, 4], false, [true, true, true]),
            ([6, 9, 8], [6, 7, 8], false, [true, false, true]),
            ([2, 9, 3, 8], [2, 6, 3, 8], true, [false, true, true]),
            ([5, 16, 16], [5, 16, 16], false, [true, false, false]),
        ]
        for (index, c) in cases.enumerated() {
            func operand(_ shape: [Int], _ seed: UInt64) throws -> Tensor {
                let t = try Noise.randn(shape, seed: seed)
                return c.headsView ? try t.permuted([0, 2, 1, 3]) : t
            }
            let q = try operand(c.q, 20 + UInt64(index)), k = try operand(c.k, 30 + UInt64(index))
            let v = try operand(c.k, 40 + UInt64(index))
            let probe = try GradMode.withoutGrad { try Tensor.attention(query: q, key: k, value: v).output }
            let seed = try Noise.randn(probe.shape, seed: 50 + UInt64(index))
            func run(composed: Bool) throws -> [[Float]] {
                let inputs = [q, k, v].enumerated().map { $0.element.detached().requiringGrad(c.needs[$0.offset]) }
                let out = try Tensor.attention(query: inputs[0], key: inputs[1], value: inputs[2], returnProbabilities: composed).output
                try out.backward(seed: seed)
                return try [out.toArray()] + inputs.map { try $0.grad?.toArray() ?? [] }
            }
            let node = try run(composed: false), composed = try run(composed: true)
            for (which, (a, b)) in zip(["output", "dq", "dk", "dv"], zip(node, composed)) {
                XCTAssertEqual(a.count, b.count, "case \(index) \(which)")
                guard !b.isEmpty else { continue }
                let scale = Swift.max(b.map(Swift.abs).max()!, 1e-6)
                XCTAssertLessThan(zip(a, b).map { Swift.abs($0 - $1) }.max()! / scale, 1e-5, "case \(index) \(which)")
            }
        }
    }

    func testNoGradRecordsNothingAndFreesAsItGoes() throws {
        let w = try Tensor.full([64, 64], 0.01).requiringGrad()
        let x = try Tensor.full([8, 64], 1)
        let baseline = Tensor.liveCount
        try GradMode.withoutGrad {
            var h = x
            for _ in 0..<10 { h = try h.matmul(w).gelu() }
            XCTAssertFalse(h.requiresGrad)
            XCTAssertLessThanOrEqual(Tensor.liveCount, baseline + 3, "intermediates are freed, no tape holds them")
        }
        let recorded = try x.matmul(w).gelu()
        XCTAssertTrue(recorded.requiresGrad, "with the tape on, the same op records")
    }

    func testBufferPoolReusesLargeBuffersAndDrains() throws {
        BufferPool.shared.drain()
        XCTAssertEqual(BufferPool.shared.cachedBytes, 0)
        var address: UnsafeMutableRawPointer?
        do {
            let big = try Tensor.zeros([1 << 18]) // 1 MiB: large enough to be kept
            address = big.storage.bytes
        }
        XCTAssertEqual(BufferPool.shared.cachedBytes, 1 << 20, "freed large buffers are cached")
        let again = try Tensor.empty([1 << 18])
        XCTAssertEqual(again.storage.bytes, address, "the same size is served from the cache")
        XCTAssertEqual(BufferPool.shared.cachedBytes, 0)
        BufferPool.shared.drain()
    }

    func testHalfPrecisionConversions() throws {
        let values: [Float] = [1, -2.5, 65504, 1e-8, 0.1]
        let x = try Tensor(values, shape: [5])
        XCTAssertEqual(try x.to(.f16).to(.f32).toArray(), [1, -2.5, 65504, 0, Float(Float16(0.1))])
        let bf = try x.to(.bf16)
        XCTAssertEqual(bf.dtype, .bf16)
        XCTAssertEqual(try bf.to(.f32).toArray()[0...1], [1, -2.5])
        XCTAssertEqual(try bf.to(.f32).toArray()[4], 0.10009765625, "round to nearest even")
        XCTAssertEqual(try Tensor([-3, 12.7, 300], shape: [3]).to(.u8).to(.f32).toArray(), [0, 12, 255], "clamp, then truncate")
    }

    func testBoxDiffGaussianKernelValues() {
        // METHODS.md §8.1: corners 0.044919, edges 0.122103, centre 0.331911.
        let kernel = Tensor.boxDiffGaussianKernel(size: 3, sigma: 0.5)
        XCTAssertEqual(kernel[0], 0.044919, accuracy: 1e-6)
        XCTAssertEqual(kernel[1], 0.122103, accuracy: 1e-6)
        XCTAssertEqual(kernel[4], 0.331911, accuracy: 1e-6)
    }

    func testAdamMatchesTheClosedFormFirstStepsAndMinimises() throws {
        // With constant gradient g, Adam's bias-corrected first step is lr · g / (|g| + eps) = lr · sign(g).
        let p = try Tensor([1, -1], shape: [2]).requiringGrad()
        let adam = try Adam(parameters: [p], learningRate: 0.1)
        try (p * 3).sum().backward()
        try adam.step()
        XCTAssertEqual(p.toArray()[0], 0.9, accuracy: 1e-6)
        XCTAssertEqual(p.toArray()[1], -1.1, accuracy: 1e-6)
        // And it finds the minimum of a quadratic.
        let q = try Tensor([5, -3], shape: [2]).requiringGrad()
        let optimiser = try Adam(parameters: [q], learningRate: 0.1)
        for _ in 0..<500 {
            optimiser.zeroGrad()
            try ((q - Tensor([1, 2], shape: [2])).pow(2)).sum().backward()
            try optimiser.step()
        }
        XCTAssertEqual(q.toArray()[0], 1, accuracy: 1e-2)
        XCTAssertEqual(q.toArray()[1], 2, accuracy: 1e-2)
    }

    func testBLASKernelChoiceFollowsTheCPU() {
        let library = BLAS.library
        if BLAS.cpuHasAVX512 && library.reason == "cpuid reports AVX-512" {
            XCTAssertEqual(library.coreName.lowercased(), "skylakex")
        }
        XCTAssertFalse(library.coreName.isEmpty)
    }
}

/// Shapes large enough for the threaded paths (row-split GEMMs, batch-parallel GEMMs), against
/// plain double-precision loops.
final class ThreadedKernelTests: XCTestCase {
    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 31 + seed) * 0.37)) }
    }

    private func reference(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var total = 0.0
                for p in 0..<k { total += Double(a[i * k + p]) * Double(b[p * n + j]) }
                c[i * n + j] = Float(total)
            }
        }
        return c
    }

    func testRowSplitGEMMMatchesReferenceIncludingTransposedReads() throws {
        let (m, k, n) = (300, 200, 100)
        XCTAssertGreaterThanOrEqual(m * n * k, 1 << 21, "large enough to split")
        let a = values(m * k, seed: 1), b = values(k * n, seed: 2)
        let expected = reference(a, b, m: m, k: k, n: n)
        let direct = try Tensor(a, shape: [m, k]).matmul(Tensor(b, shape: [k, n])).toArray()
        // The same A stored transposed (k × m) and read through a transposed view.
        var stored = [Float](repeating: 0, count: m * k)
        for i in 0..<m { for p in 0..<k { stored[p * m + i] = a[i * k + p] } }
        let viaView = try Tensor(stored, shape: [k, m]).transposed(0, 1).matmul(Tensor(b, shape: [k, n])).toArray()
        for (label, result) in [("direct", direct), ("transposed view", viaView)] {
            let worst = zip(result, expected).map { Swift.abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-3, label)
        }
    }

    func testBatchParallelGEMMsMatchReference() throws {
        let (batch, m, k, n) = (7, 40, 24, 30)
        let a = values(batch * m * k, seed: 3), b = values(batch * k * n, seed: 4)
        let result = try Tensor(a, shape: [batch, m, k]).matmul(Tensor(b, shape: [batch, k, n])).toArray()
        for index in 0..<batch {
            let expected = reference(Array(a[(index * m * k)..<((index + 1) * m * k)]), Array(b[(index * k * n)..<((index + 1) * k * n)]), m: m, k: k, n: n)
            let worst = zip(result[(index * m * n)..<((index + 1) * m * n)], expected).map { Swift.abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-4, "batch \(index)")
        }
    }
}

final class WinogradGradientTests: XCTestCase {
    /// Guidance's case: frozen weights, gradient to the input only — dX via Winograd (a flipped
    /// convolution: 3×3, and the temporal (3, 1) kernel along frames) against the im2col path.
    func testInputOnlyGradientMatchesIm2col() throws {
        for (xs, ws, padding) in [([26, 8, 7, 9], [8, 8, 3, 3], (1, 1)), ([2, 8, 7, 24], [10, 8, 3, 1], (1, 0))] {
            let x = try Noise.randn(xs, seed: 1), w = try Noise.randn(ws, seed: 2)
            let seed = try Noise.randn([xs[0], ws[0], xs[2], xs[3]], seed: 3)
            func inputGradient(winograd: Bool) throws -> [Float] {
                Conv2dSettings.winograd = winograd
                defer { Conv2dSettings.winograd = true }
                let input = x.detached().requiringGrad()
                try input.conv2d(weight: w, padding: padding).backward(seed: seed)
                XCTAssertNil(w.grad, "the weight needs no gradient")
                return try XCTUnwrap(input.grad).toArray()
            }
            let fast = try inputGradient(winograd: true), reference = try inputGradient(winograd: false)
            let scale = reference.map(Swift.abs).max()!
            XCTAssertLessThan(zip(fast, reference).map { Swift.abs($0 - $1) }.max()! / scale, 1e-5, "\(xs) * \(ws)")
        }
    }

    /// Training's case: the weight gradient through the Winograd adjoints (both tiles, partial
    /// tiles at the edges, several image chunks) against im2col's dY · colᵀ.
    func testWeightGradientMatchesIm2col() throws {
        func weightGradient(_ xs: [Int], _ ws: [Int], winograd: Bool) throws -> [Float] {
            Conv2dSettings.winograd = winograd
            defer { Conv2dSettings.winograd = true }
            let x = try Noise.randn(xs, seed: 4), w = try Noise.randn(ws, seed: 5).requiringGrad()
            let seed = try Noise.randn([xs[0], ws[0], xs[2], xs[3]], seed: 6)
            try x.conv2d(weight: w, padding: (1, ws[3] / 2)).backward(seed: seed)
            return try XCTUnwrap(w.grad).toArray()
        }
        let budget = Conv2dSettings.winogradBudget
        defer { Conv2dSettings.winogradTile = nil; Conv2dSettings.winogradBudget = budget }
        for (tile, chunkBytes) in [(2, budget), (4, budget), (4, 200_000)] {
            Conv2dSettings.winogradTile = tile
            Conv2dSettings.winogradBudget = chunkBytes   // 200 kB: a few images per chunk
            for (xs, ws) in [([26, 8, 7, 9], [10, 8, 3, 3]), ([9, 12, 16, 12], [8, 12, 3, 3]), ([64, 9, 4, 5], [8, 9, 3, 3]),
                             ([3, 8, 6, 20], [9, 8, 3, 1]), ([2, 10, 8, 16], [8, 10, 3, 1])] {   // temporal: along frames
                let fast = try weightGradient(xs, ws, winograd: true), reference = try weightGradient(xs, ws, winograd: false)
                XCTAssertEqual(fast.count, reference.count)
                // Relative to the largest entry (sums over thousands of products).
                let scale = reference.map(Swift.abs).max()!
                XCTAssertLessThan(zip(fast, reference).map { Swift.abs($0 - $1) }.max()! / scale, 1e-5, "tile \(tile), \(xs) * \(ws)")
            }
        }
    }

    /// Shapes the small cases above do not reach: weights transformed 64 input channels at a time
    /// (80 = a block and a part, with streaming stores as 80 is a multiple of 16; 72 for the flipped
    /// convolution of dX, without), and ∂Y planes taken in several strips of tile rows (72 wide,
    /// 64 high). Forward, dX and dW, both tiles, against im2col. Both have the ≥ 512 F(2×2) tile
    /// columns Winograd asks for (16 · 6 · 6 = 576, 32 · 36 = 1152).
    func testChannelBlocksAndPlaneStrips() throws {
        defer { Conv2dSettings.winogradTile = nil }
        for tile in [2, 4] {
            Conv2dSettings.winogradTile = tile
            for (xs, ws) in [([16, 80, 12, 12], [72, 80, 3, 3]), ([1, 8, 64, 72], [8, 8, 3, 3])] {
                let x = try Noise.randn(xs, seed: 7), w = try Noise.randn(ws, seed: 8)
                let seed = try Noise.randn([xs[0], ws[0], xs[2], xs[3]], seed: 9)
                func run(winograd: Bool) throws -> [[Float]] {
                    Conv2dSettings.winograd = winograd
                    defer { Conv2dSettings.winograd = true }
                    let input = x.detached().requiringGrad(), weight = w.detached().requiringGrad()
                    let y = try input.conv2d(weight: weight, padding: (1, 1))
                    try y.backward(seed: seed)
                    return [try y.toArray(), try XCTUnwrap(input.grad).toArray(), try XCTUnwrap(weight.grad).toArray()]
                }
                let fast = try run(winograd: true), reference = try run(winograd: false)
                for (name, (a, b)) in zip(["output", "dX", "dW"], zip(fast, reference)) {
                    let scale = b.map(Swift.abs).max()!
                    XCTAssertLessThan(zip(a, b).map { Swift.abs($0 - $1) }.max()! / scale, 1e-5, "tile \(tile), \(xs) * \(ws): \(name)")
                }
            }
        }
    }
}

/// The forward convolution's paths (per-image im2col, images batched into one GEMM for small
/// planes, shifted-row GEMMs for (kh × 1) kernels) against a direct six-loop convolution.
final class ConvolutionPathTests: XCTestCase {
    private func direct(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: Int, padding: (Int, Int)) throws -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + 2 * padding.0 - kh) / stride + 1, ow = (wd + 2 * padding.1 - kw) / stride + 1
        let xs = try x.toArray(), ws = try w.toArray(), bs = try b?.toArray()
        var out = [Float](repeating: 0, count: n * o * oh * ow)
        for i in 0..<n { for k in 0..<o { for y in 0..<oh { for z in 0..<ow {
            var total = bs?[k] ?? 0
            for ch in 0..<c { for dy in 0..<kh { for dz in 0..<kw {
                let iy = y * stride - padding.0 + dy, iz = z * stride - padding.1 + dz
                guard iy >= 0, iy < h, iz >= 0, iz < wd else { continue }
                total += xs[((i * c + ch) * h + iy) * wd + iz] * ws[((k * c + ch) * kh + dy) * kw + dz]
            } } }
            out[((i * o + k) * oh + y) * ow + z] = total
        } } } }
        return out
    }

    private func check(_ xs: [Int], _ ws: [Int], stride: Int = 1, padding: (Int, Int), bias: Bool = true,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try Noise.randn(xs, seed: 11), w = try Noise.randn(ws, seed: 12)
        let b = bias ? try Noise.randn([ws[0]], seed: 13) : nil
        let fast = try x.conv2d(weight: w, bias: b, stride: (stride, stride), padding: padding).toArray()
        let reference = try direct(x, w, b, stride: stride, padding: padding)
        XCTAssertEqual(fast.count, reference.count, file: file, line: line)
        // Relative to the largest output: Winograd's transforms round differently (F(4×4) most).
        let scale = Swift.max(1, reference.map(Swift.abs).max()!)
        XCTAssertLessThan(zip(fast, reference).map { Swift.abs($0 - $1) }.max()! / scale, 1e-5, "\(xs) * \(ws)", file: file, line: line)
    }

    func testShiftedRowKernels() throws {
        try check([3, 5, 6, 7], [4, 5, 3, 1], padding: (1, 0))            // temporal (3,1,1): 3 videos
        try check([2, 4, 5, 3], [6, 4, 2, 1], padding: (0, 0), bias: false)
        try check([2, 3, 4, 6], [5, 3, 5, 1], padding: (2, 0))            // taps reaching past both ends
    }

    func testSmallPlanesBatchedIntoOneProduct() throws {
        try check([5, 6, 4, 4], [7, 6, 3, 3], padding: (1, 1))
        try check([4, 6, 8, 8], [5, 6, 3, 3], stride: 2, padding: (1, 1), bias: false)
        try check([3, 8, 2, 3], [4, 8, 1, 1], padding: (0, 0))
        // A column budget of a few images: the batch runs in several blocks.
        let budget = Conv2dSettings.columnBudget
        Conv2dSettings.columnBudget = 4 * (6 * 9 + 7) * 16 * 2
        defer { Conv2dSettings.columnBudget = budget }
        try check([5, 6, 4, 4], [7, 6, 3, 3], padding: (1, 1))
    }

    func testWinogradTilesTwoAndFour() throws {
        defer { Conv2dSettings.winogradTile = nil }
        for tile in [2, 4] {
            Conv2dSettings.winogradTile = tile
            try check([26, 8, 7, 9], [8, 8, 3, 3], padding: (1, 1))      // partial tiles at both edges
            try check([9, 12, 16, 12], [10, 12, 3, 3], padding: (1, 1))
            try check([64, 8, 4, 5], [9, 8, 3, 3], padding: (1, 1), bias: false)
        }
    }

    func testTemporalKernelByWinogradAlongFrames() throws {
        try check([2, 8, 6, 20], [9, 8, 3, 1], padding: (1, 0))              // 6 frames: a part-filled tile
        try check([3, 10, 4, 16], [8, 10, 3, 1], padding: (1, 0), bias: false)
        try check([1, 8, 16, 17], [12, 8, 3, 1], padding: (1, 0))
        try check([2, 9, 9, 16], [8, 9, 3, 1], padding: (1, 0))
    }

    func testLargePlanesPerImage() throws {
        try check([2, 3, 20, 20], [4, 3, 3, 3], padding: (1, 1))
        try check([1, 3, 20, 20], [2, 3, 5, 5], padding: (2, 2))
    }
}

/// Inference attention (one fused kernel, output in the query's layout) against the recorded
/// path (scores, softmax and products as separate ops on the tape).
final class FusedAttentionTests: XCTestCase {
    private func compare(_ q: Tensor, _ k: Tensor, _ v: Tensor, file: StaticString = #filePath, line: UInt = #line) throws {
        let fused = try GradMode.withoutGrad { try Tensor.attention(query: q, key: k, value: v).output }
        let taped = try Tensor.attention(query: q.detached().requiringGrad(), key: k, value: v).output
        XCTAssertTrue(taped.requiresGrad, file: file, line: line)
        XCTAssertEqual(fused.shape, taped.shape, file: file, line: line)
        let (a, b) = (try fused.toArray(), try taped.toArray())
        XCTAssertLessThan(zip(a, b).map { Swift.abs($0 - $1) }.max()!, 1e-5, file: file, line: line)
    }

    func testHeadsReadInPlaceAndOutputInTheQueryLayout() throws {
        // (n, L, heads, d) projections seen as (n, heads, L, d), as the UNet's attention makes them.
        let (n, l, s, heads, d) = (4, 300, 7, 8, 8)
        let q = try Noise.randn([n, l, heads, d], seed: 1).permuted([0, 2, 1, 3])
        let k = try Noise.randn([n, s, heads, d], seed: 2).permuted([0, 2, 1, 3])
        let v = try Noise.randn([n, s, heads, d], seed: 3).permuted([0, 2, 1, 3])
        try compare(q, k, v)
        let out = try GradMode.withoutGrad { try Tensor.attention(query: q, key: k, value: v).output }
        XCTAssertTrue(try out.permuted([0, 2, 1, 3]).isContiguous, "merging the heads back needs no copy")
        // Self-attention with more keys than fit one block of scores.
        let x = try Noise.randn([4, 700, 8, 4], seed: 4).permuted([0, 2, 1, 3])
        try compare(x, x, x)
    }

    func testContiguousAndBroadcastFreeBatches() throws {
        try compare(Noise.randn([8, 4, 33, 5], seed: 5), Noise.randn([8, 4, 40, 5], seed: 6), Noise.randn([8, 4, 40, 6], seed: 7))
        try compare(Noise.randn([32, 9, 16], seed: 8), Noise.randn([32, 9, 16], seed: 9), Noise.randn([32, 9, 16], seed: 10))
        // A key read transposed (last stride ≠ 1) is not the fused kernel's: the general path.
        let keyT = try Noise.randn([2, 3, 8, 50], seed: 12).transposed(-2, -1)
        try compare(Noise.randn([2, 3, 40, 8], seed: 11), keyT, Noise.randn([2, 3, 50, 8], seed: 13))
    }

    /// The softmax's one-pass path (no shift by the row's maximum) holds for moderate scores; rows
    /// whose maximum is large, or very negative, or that hold −∞ take the shifted path. Each row
    /// against a softmax in Double, for 16, 77 (padded to 80 in the fused kernel) and 64 values.
    func testSoftmaxOfEveryRangeOfScores() throws {
        for n in [16, 77, 64] {
            var rows: [[Float]] = []
            let ranges: [(offset: Float, spread: Float)] = [(0, 4), (55, 8), (100, 4), (-50, 4), (-29, 2), (300, 50), (0, 0)]
            for (r, range) in ranges.enumerated() {
                rows.append((0..<n).map { (j: Int) -> Float in
                    let wave = Float(sin(Double(r * 131 + j * 17)))
                    return range.offset + range.spread * wave
                })
            }
            var masked = (0..<n).map { 3 * Float(cos(Double($0))) }
            masked[n / 2] = -.infinity
            rows.append(masked)
            let x = try Tensor(rows.flatMap { $0 }, shape: [rows.count, n])
            let y = try GradMode.withoutGrad { try x.softmax() }.toArray()
            for (r, row) in rows.enumerated() {
                let top = row.map(Double.init).max()!
                let e = row.map { exp(Double($0) - top) }, total = e.reduce(0, +)
                for j in 0..<n {
                    XCTAssertEqual(Double(y[r * n + j]), e[j] / total, accuracy: 2e-6 * Swift.max(1, e[j] / total * 10),
                                   "n \(n), row \(r) (max \(top)), value \(j)")
                }
            }
            // In the fused attention: one query whose scores against n keys are the rows (q·k with
            // q = (1, 0, …) and keys' first components the scores), values the identity.
            for row in rows {
                let q = try Tensor([1] + [Float](repeating: 0, count: 3), shape: [1, 1, 4])
                let k = try Tensor(row.flatMap { [$0, 0, 0, 0] }, shape: [1, n, 4])
                let v = try Tensor((0..<n).flatMap { i in (0..<n).map { Float($0 == i ? 1 : 0) } }, shape: [1, n, n])
                let fused = try GradMode.withoutGrad { try Tensor.attention(query: q, key: k, value: v, scale: 1).output }.toArray()
                let top = row.map(Double.init).max()!
                let e = row.map { exp(Double($0) - top) }, total = e.reduce(0, +)
                for j in 0..<n { XCTAssertEqual(Double(fused[j]), e[j] / total, accuracy: 2e-6 * Swift.max(1, e[j] / total * 10)) }
            }
        }
    }

    /// Batches of every size (one head to thousands of short temporal sequences), key
    /// sequences of one to several hundred, odd row counts and widths.
    func testShortAndLongKeySequences() throws {
        for (lq, lk, d, dv) in [(16, 16, 64, 64), (33, 1, 8, 20), (7, 17, 12, 3), (5, 64, 16, 16), (5, 65, 16, 16), (3, 100, 9, 33)] {
            try compare(Noise.randn([3, 2, lq, d], seed: UInt64(lq)), Noise.randn([3, 2, lk, d], seed: UInt64(lk)), Noise.randn([3, 2, lk, dv], seed: UInt64(dv)))
        }
    }
}

final class OpProfileTests: XCTestCase {
    func testChargesEachOpToItsNameAndShape() throws {
        let was = OpProfile.enabled
        OpProfile.enabled = true
        defer { OpProfile.enabled = was; OpProfile.reset() }
        OpProfile.reset()
        let a = try Noise.randn([64, 32], seed: 1), b = try Noise.randn([32, 16], seed: 2)
        for _ in 0..<3 { _ = try a.matmul(b).exp() }
        let entries = OpProfile.entries()
        let matmul = try XCTUnwrap(entries.first { $0.op == "matmul" })
        XCTAssertEqual(matmul.shape, [64, 16])
        XCTAssertEqual(matmul.calls, 3)
        XCTAssertEqual(entries.first { $0.op == "exp" }?.calls, 3)
        XCTAssertTrue(entries.allSatisfy { $0.seconds >= 0 })
        XCTAssertTrue(OpProfile.report().contains("matmul [64, 16]"))
        OpProfile.enabled = false
        _ = try a.matmul(b)
        XCTAssertEqual(OpProfile.entries().first { $0.op == "matmul" }?.calls, 3, "nothing charged while off")
    }

    /// A backward pass is charged rule by rule, under the forward op's name and output shape:
    /// the products a matmul's rule runs ([64, 32]·… for the input, …·[64, 16] for the weight)
    /// and the copy a permute's rule makes are not charged as ops of their own.
    func testBackwardChargesEachRuleToItsForwardOp() throws {
        let was = OpProfile.enabled
        defer { OpProfile.enabled = was; OpProfile.reset() }
        let a = try Noise.randn([32, 64], seed: 1), b = try Noise.randn([32, 16], seed: 2)
        a.requiresGrad = true
        b.requiresGrad = true
        let loss = try a.transposed(0, 1).matmul(b).sum()
        OpProfile.enabled = true
        OpProfile.reset()
        try loss.backward()
        let entries = OpProfile.entries()
        XCTAssertEqual(Set(entries.map(\.op)), ["sum", "matmul", "permute"], "\(entries.map { "\($0.op) \($0.shape)" })")
        XCTAssertEqual(entries.first { $0.op == "matmul" }.map { [$0.shape, [$0.calls]] }, [[64, 16], [1]])
        XCTAssertEqual(entries.first { $0.op == "permute" }.map { [$0.shape, [$0.calls]] }, [[64, 32], [1]])
        XCTAssertEqual(entries.first { $0.op == "sum" }?.calls, 1)
        XCTAssertNotNil(a.grad)
        XCTAssertNotNil(b.grad)
        // A checkpoint's rule runs a backward pass of its own (of the recomputed exp): all of it
        // is the checkpoint's, none charged to the rules inside.
        let x = try Noise.randn([8, 8], seed: 3)
        x.requiresGrad = true
        let total = try Tensor.checkpointed([x]) { inputs throws(TensorError) in [try inputs[0].exp()] }[0].sum()
        OpProfile.reset()
        try total.backward()
        XCTAssertEqual(Set(OpProfile.entries().map(\.op)).subtracting(["sum", "checkpoint", "slice", "reshape"]), [],
                       "\(OpProfile.entries().map { "\($0.op) \($0.shape)" })")
        XCTAssertEqual(OpProfile.entries().first { $0.op == "checkpoint" }?.calls, 1)
        XCTAssertNotNil(x.grad)
    }
}

/// Inference group norm (statistics, affine and SiLU in one kernel) against the recorded path
/// (normalise, then multiply, add and SiLU as separate ops on the tape).
final class GroupNormInferenceTests: XCTestCase {
    func testOneKernelMatchesTheRecordedOps() throws {
        let x = try Noise.randn([2, 12, 3, 5, 7], seed: 1) * 3 + 1
        let weight = try Noise.randn([12], seed: 2), bias = try Noise.randn([12], seed: 3)
        for (w, b) in [(weight, bias), (nil, nil), (weight, nil)] as [(Tensor?, Tensor?)] {
            for silu in [false, true] {
                let fused = try GradMode.withoutGrad { try x.groupNorm(groups: 4, weight: w, bias: b, eps: 1e-5, thenSiLU: silu) }
                let taped = try x.detached().requiringGrad().groupNorm(groups: 4, weight: w, bias: b, eps: 1e-5, thenSiLU: silu)
                XCTAssertTrue(taped.requiresGrad)
                XCTAssertEqual(fused.shape, taped.shape)
                let (a, c) = (try fused.toArray(), try taped.toArray())
                XCTAssertLessThan(zip(a, c).map { Swift.abs($0 - $1) }.max()!, 1e-5, "weight \(w != nil), bias \(b != nil), silu \(silu)")
            }
        }
        // A permuted (non-contiguous) input, as the temporal transformer's norm sees it.
        let view = try x.permuted([0, 2, 1, 3, 4])
        let fused = try GradMode.withoutGrad { try view.groupNorm(groups: 3, weight: nil, bias: nil) }
        let taped = try view.detached().requiringGrad().groupNorm(groups: 3, weight: nil, bias: nil)
        XCTAssertLessThan(zip(try fused.toArray(), try taped.toArray()).map { Swift.abs($0 - $1) }.max()!, 1e-5)
    }
}
