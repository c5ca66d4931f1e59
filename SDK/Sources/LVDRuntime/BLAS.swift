import Foundation

/// OpenBLAS, opened at first use rather than linked: OPENBLAS_CORETYPE must be set before the
/// library initialises, and Debian's OpenBLAS 0.3.21 picks its Haswell kernels on AVX-512 CPUs,
/// half the sgemm rate of its SkylakeX kernels (DESIGN.md §4). SkylakeX is chosen only when the
/// CPU and kernel report AVX-512 (otherwise those kernels die on an illegal instruction); a
/// value the user already set is respected.
public enum BLAS {
    public typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                             UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
                                             Float, UnsafeMutablePointer<Float>?, Int32) -> Void

    public struct Library: @unchecked Sendable {
        public let sgemm: SGEMM
        /// "SkylakeX", "Haswell", … as OpenBLAS reports it.
        public let coreName: String
        /// Why that core: "cpuid: AVX-512", "OPENBLAS_CORETYPE set by the user", …
        public let reason: String
        public let path: String
    }

    public static let library: Library = load()

    /// Whether /proc/cpuinfo lists AVX-512 Foundation (set only when the kernel enables its state).
    public static var cpuHasAVX512: Bool {
        guard let handle = FileHandle(forReadingAtPath: "/proc/cpuinfo") else { return false }
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        guard let flags = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        return flags.split(separator: " ").contains("avx512f")
    }

    private static func load() -> Library {
        var reason: String
        if let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            reason = "OPENBLAS_CORETYPE=\(user) set by the user"
            if cpuHasAVX512, !["skylakex", "cooperlake", "sapphirerapids"].contains(user.lowercased()) {
                reason += "; this CPU has AVX-512: unset it for the SkylakeX kernels, about twice the sgemm rate"
            }
        } else if cpuHasAVX512 {
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
            reason = "cpuid reports AVX-512"
        } else {
            reason = "no AVX-512: OpenBLAS's own choice"
        }
        let candidates = ["libopenblas.so.0", "libopenblas.so", "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"]
        for name in candidates {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL), let symbol = dlsym(handle, "cblas_sgemm") else { continue }
            var core = "unknown"
            if let coreSymbol = dlsym(handle, "openblas_get_corename") {
                typealias CoreName = @convention(c) () -> UnsafePointer<CChar>?
                core = unsafeBitCast(coreSymbol, to: CoreName.self)().map { String(cString: $0) } ?? core
            }
            // OpenBLAS runs single-threaded; the runtime splits the work itself (row blocks of a
            // large GEMM, or whole GEMMs of a batch), which costs less per call than OpenBLAS's
            // own threading on the many small GEMMs of attention.
            if let threads = dlsym(handle, "openblas_set_num_threads") {
                typealias SetThreads = @convention(c) (Int32) -> Void
                unsafeBitCast(threads, to: SetThreads.self)(1)
            }
            return Library(sgemm: unsafeBitCast(symbol, to: SGEMM.self), coreName: core, reason: reason, path: name)
        }
        // No OpenBLAS: a plain kernel keeps every op working (slowly); `lvd bench ops` shows it.
        reason = "OpenBLAS not found (install libopenblas0): reference kernel"
        return Library(sgemm: referenceSGEMM, coreName: "reference", reason: reason, path: "")
    }

    // CBLAS constants.
    static let rowMajor: Int32 = 101
    static let noTrans: Int32 = 111
    static let trans: Int32 = 112

    /// Work (m·n·k) below which a GEMM runs on one thread.
    static let splitThreshold = 1 << 21

    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, row-major; large products are split
    /// into row blocks over the runtime's threads.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let threads = Parallel.threads
        guard threads > 1, m * n * k >= splitThreshold, m >= 32 * threads || n >= 64 * threads else {
            gemmOnOneThread(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        if n >= 8 * m && n >= 64 * threads {
            // Wide and short (a convolution's O × pixels): column blocks, so each thread packs
            // only its part of B rather than all of it.
            let block = ((n + threads - 1) / threads + 63) / 64 * 64
            DispatchQueue.concurrentPerform(iterations: (n + block - 1) / block) { index in
                let start = index * block, columns = Swift.min(block, n - start)
                // Column `start` of op(B): a column of B, or a row when B is read transposed.
                let bStart = transB ? b + start * ldb : b + start
                gemmOnOneThread(transA: transA, transB: transB, m: m, n: columns, k: k, alpha: alpha, a: a, lda: lda,
                                b: bStart, ldb: ldb, beta: beta, c: c + start, ldc: ldc)
            }
            return
        }
        // Row blocks, multiples of 16 rows so the kernels' panels stay whole.
        let block = ((m + threads - 1) / threads + 15) / 16 * 16
        DispatchQueue.concurrentPerform(iterations: (m + block - 1) / block) { index in
            let start = index * block, rows = Swift.min(block, m - start)
            // Row `start` of op(A): a row of A, or a column when A is read transposed.
            let aStart = transA ? a + start : a + start * lda
            gemmOnOneThread(transA: transA, transB: transB, m: rows, n: n, k: k, alpha: alpha, a: aStart, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c + start * ldc, ldc: ldc)
        }
    }

    /// One OpenBLAS call on the calling thread.
    @inline(__always)
    static func gemmOnOneThread(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        library.sgemm(rowMajor, transA ? trans : noTrans, transB ? trans : noTrans, Int32(m), Int32(n), Int32(k),
                      alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// A straightforward sgemm for machines without OpenBLAS.
private let referenceSGEMM: BLAS.SGEMM = { _, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
    let (m, n, k, lda, ldb, ldc) = (Int(m), Int(n), Int(k), Int(lda), Int(ldb), Int(ldc))
    let ta = transA == BLAS.trans, tb = transB == BLAS.trans
    for i in 0..<m {
        for j in 0..<n {
            var total: Float = 0
            for p in 0..<k {
                total += (ta ? a![p * lda + i] : a![i * lda + p]) * (tb ? b![j * ldb + p] : b![p * ldb + j])
            }
            c![i * ldc + j] = alpha * total + (beta == 0 ? 0 : beta * c![i * ldc + j])
        }
    }
}
