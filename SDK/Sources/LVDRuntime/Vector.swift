// Vectorised helpers for the hot elementwise loops.

/// e^x for eight lanes, relative error ≤ 1e-6: x·log2(e) is split into n + f by the
/// magic-number trick (adding 1.5·2^23 leaves round(v) in the low mantissa bits — Swift's
/// generic SIMD rounding and int conversion compile lane by lane and are several times slower
/// than scalar expf), e^(f·ln2) by the Cephes expf polynomial, 2^n from the exponent bits.
/// Saturates: below −87.3 gives 2^−126 (≈ 1.2e−38, not 0), above 88 gives 2^127·e^f.
@inline(__always)
func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    var v = x * 1.44269504088896341
    v = pointwiseMin(pointwiseMax(v, SIMD8(repeating: -126)), SIMD8(repeating: 127))
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let shifted = v + magic
    let n = shifted - magic
    let r = (v - n) * 0.693147180559945
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    let exponent = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- unsafeBitCast(magic, to: SIMD8<UInt32>.self)
    return p * unsafeBitCast((exponent &+ 127) &<< 23, to: SIMD8<Float>.self)
}

/// Applies `body` to `count` floats eight at a time, with a scalar-padded tail.
@inline(__always)
func forEach8(_ count: Int, _ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>,
              _ body: (SIMD8<Float>) -> SIMD8<Float>) {
    let raw = UnsafeRawPointer(source), out = UnsafeMutableRawPointer(target)
    var i = 0
    while i + 8 <= count {
        out.storeBytes(of: body(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)), toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    if i < count {
        var lanes = SIMD8<Float>()
        for j in 0..<(count - i) { lanes[j] = source[i + j] }
        let result = body(lanes)
        for j in 0..<(count - i) { target[i + j] = result[j] }
    }
}
