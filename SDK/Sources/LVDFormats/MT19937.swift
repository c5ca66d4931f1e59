/// The 32-bit Mersenne Twister (MT19937) seeded by init_genrand: std::mt19937, torch's
/// at::mt19937 (the runtime's torch-compatible randn) and NumPy's legacy generator (the
/// benchmark's prompt list).
@frozen
public struct MT19937: Sendable {
    @usableFromInline var state: [UInt32]
    @usableFromInline var index = 624

    @inlinable
    public init(seed: UInt32) {
        state = [UInt32](repeating: 0, count: 624)
        state[0] = seed
        for i in 1..<624 { state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i) }
    }

    @inlinable
    public mutating func next() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        return y ^ (y >> 18)
    }

    @inlinable
    mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        index = 0
    }
}
