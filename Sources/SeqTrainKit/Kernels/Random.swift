import Foundation

/// What a random number is for; part of the key, so the streams of different purposes never overlap.
public enum RandomPurpose: UInt32 {
    case initialization = 1, dropout = 2, shuffle = 3, sampling = 4, synthetic = 5, noise = 6, sweep = 7
}

/// Counter-based generator (Philox4x32-10): a number is a pure function of
/// (seed, purpose, stream, index), so it is the same on any machine, rank count or call order.
/// `stream` names a sequence (a parameter, a training step and layer); `index` an element in it.
public struct CounterRandom {
    public let seed: UInt64
    public let purpose: RandomPurpose

    public init(seed: UInt64, purpose: RandomPurpose) {
        self.seed = seed
        self.purpose = purpose
    }

    /// Four independent 32-bit words for one (stream, index).
    @inline(__always)
    public func words(stream: UInt64, index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: index), c1 = UInt32(truncatingIfNeeded: index >> 32)
        var c2 = UInt32(truncatingIfNeeded: stream), c3 = UInt32(truncatingIfNeeded: stream >> 32)
        var k0 = UInt32(truncatingIfNeeded: seed) ^ (purpose.rawValue &* 0x85EB_CA6B)
        var k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    /// Uniform in [0, 1), 24 bits.
    @inline(__always)
    public func uniform(stream: UInt64, index: UInt64) -> Float {
        Float(words(stream: stream, index: index).0 >> 8) * (1.0 / 16_777_216.0)
    }

    /// Standard normal by Box–Muller on two words of the same counter.
    public func normal(stream: UInt64, index: UInt64) -> Float {
        let w = words(stream: stream, index: index)
        let u1 = (Double(w.0) + 1) / 4_294_967_297.0
        let u2 = Double(w.1) / 4_294_967_296.0
        return Float(sqrt(-2 * log(u1)) * cos(2 * Double.pi * u2))
    }

    /// A uniform integer in 0..<n (n > 0), from 64 bits so the bias is negligible.
    public func integer(below n: Int, stream: UInt64, index: UInt64) -> Int {
        let w = words(stream: stream, index: index)
        let x = (UInt64(w.0) << 32) | UInt64(w.1)
        return Int(x.multipliedFullWidth(by: UInt64(n)).high)
    }

    /// The permutation of 0..<n that (stream) names: Fisher–Yates with counter draws.
    public func permutation(_ n: Int, stream: UInt64) -> [Int] {
        var order = Array(0..<n)
        var i = n - 1
        while i > 0 {
            let j = integer(below: i + 1, stream: stream, index: UInt64(i))
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }
}
