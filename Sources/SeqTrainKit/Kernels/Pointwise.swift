import CKernels
import Foundation

// Fused elementwise passes shared by layers and losses. Everything takes raw pointers and a count so
// the loops compile to straight-line code; shapes are the callers' business.

/// e^x for the hot loops: range reduction x = n ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r
/// and 2^n built in the exponent bits. Relative error about 2e-7 on [-87, 88] (inputs are clamped
/// there). Branch-free and without libm calls, so loops over it vectorize.
@inline(__always) public func fastExp(_ x: Float) -> Float {
    let clamped = min(max(x, -87), 88)
    let shifted = clamped * 1.442695041 + 12_582_912  // 1.5·2^23: rounds n into the low mantissa bits
    let n = shifted - 12_582_912
    let r = (clamped - n * 0.693145752) - n * 1.428606765e-6
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
    return p * scale
}

@inline(__always) public func sigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// tanh as 2σ(2x) − 1: within 2e-7 of tanhf, and vectorizable.
@inline(__always) public func fastTanh(_ x: Float) -> Float { 2 / (1 + fastExp(-2 * x)) - 1 }

/// x[i] ← σ(x[i]) for n values (the C kernel, AVX2 where the CPU has it).
@inline(__always) public func applySigmoid(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    st_sigmoid_inplace(x, Int64(n))
}

/// y[i] ← tanh(x[i]) for n values; y may be x.
@inline(__always) public func applyTanh(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    st_tanh(y, x, Int64(n))
}

/// log(1 + e^x) without overflow.
@inline(__always) public func softplus(_ x: Float) -> Float {
    x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))
}

/// y[i] ← e^(x[i] − shift) for n values; y may be x.
@inline(__always) public func expShifted(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, by shift: Float, count n: Int) {
    st_exp_shifted(y, x, shift, Int64(n))
}

/// Largest of n ≥ 1 values; eight running maxima so the loop vectorizes.
@inline(__always) public func maximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0]
    var i = 0
    while i + 4 <= n {
        m0 = x[i] > m0 ? x[i] : m0
        m1 = x[i + 1] > m1 ? x[i + 1] : m1
        m2 = x[i + 2] > m2 ? x[i + 2] : m2
        m3 = x[i + 3] > m3 ? x[i + 3] : m3
        i += 4
    }
    while i < n { m0 = x[i] > m0 ? x[i] : m0; i += 1 }
    return max(max(m0, m1), max(m2, m3))
}

/// Sum of n values with eight running sums, so the loop vectorizes (the order differs from a
/// sequential sum by rounding only).
@inline(__always) public func sum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var lanes = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n {
        lanes += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        i += 8
    }
    var s = lanes.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// `out[i] += x[i]`.
@inline(__always) public func addInPlace(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { out[i] += x[i] }
}

/// `out[i] *= s`.
@inline(__always) public func scaleInPlace(_ out: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
    for i in 0..<count { out[i] *= s }
}

/// Adds each row of `rows` (n, width) into `sums` (width): the bias gradient of a linear map.
@inline(__always) public func addColumnSums(_ sums: UnsafeMutablePointer<Float>, _ rows: UnsafePointer<Float>,
                                            rowCount n: Int, width: Int, rowStride: Int? = nil) {
    let stride = rowStride ?? width
    for r in 0..<n {
        let row = rows + r * stride
        for j in 0..<width { sums[j] += row[j] }
    }
}

/// Writes `bias` (width) into each of the n rows of `rows`: the start of `x W^T + b` before a gemm with beta 1.
@inline(__always) public func broadcastRows(_ rows: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>,
                                            rowCount n: Int, width: Int) {
    for r in 0..<n { (rows + r * width).update(from: bias, count: width) }
}

/// Sum of squares in double, for norms that must not lose precision over millions of terms.
@inline(__always) public func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var total: Double = 0
    var i = 0
    // Blocks of 4096 in float, accumulated in double: fast and accurate.
    while i < count {
        let end = min(i + 4096, count)
        var j = i
        while j + 4 <= end {
            s0 += x[j] * x[j]; s1 += x[j + 1] * x[j + 1]; s2 += x[j + 2] * x[j + 2]; s3 += x[j + 3] * x[j + 3]
            j += 4
        }
        while j < end { s0 += x[j] * x[j]; j += 1 }
        total += Double(s0) + Double(s1) + Double(s2) + Double(s3)
        s0 = 0; s1 = 0; s2 = 0; s3 = 0
        i = end
    }
    return total
}
