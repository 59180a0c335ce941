import Foundation

/// Softmax cross-entropy on raw logits, PyTorch's `F.cross_entropy` with `weight`, `ignore_index`
/// and `label_smoothing`, fused with its gradient. Legend: N rows, C classes.
///
/// Per counted row with target y, log-probabilities ℓ = logits − logsumexp(logits), ε the smoothing:
///     loss = (1 − ε) w_y (−ℓ_y) + (ε / C) Σ_c w_c (−ℓ_c),   count = w_y
///     ∂loss/∂z_k = (1 − ε) w_y (p_k − [k = y]) + (ε / C) (W p_k − w_k),   W = Σ_c w_c
/// There is deliberately no softmax layer before it: probabilities exist only at inference.
public struct CrossEntropyLoss {
    public var classWeights: [Float]?
    public var ignoreIndex: Int32
    public var labelSmoothing: Float

    public init(classWeights: [Float]? = nil, ignoreIndex: Int32 = -100, labelSmoothing: Float = 0) throws {
        guard (0...1).contains(labelSmoothing) else {
            throw SeqTrainError("label_smoothing must be in [0, 1], got \(labelSmoothing)")
        }
        if let w = classWeights, w.contains(where: { !($0 >= 0) || !$0.isFinite }) {
            throw SeqTrainError("class weights must be finite and non-negative")
        }
        self.classWeights = classWeights
        self.ignoreIndex = ignoreIndex
        self.labelSmoothing = labelSmoothing
    }

    /// dLogits (N, C) ← ∂sum/∂logits (when given); returns the sum and count.
    public func evaluate(_ dLogits: UnsafeMutablePointer<Float>?, logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                         mask: RowMask = nil, rows n: Int, classes c: Int) throws -> LossTotal {
        if let w = classWeights, w.count != c {
            throw SeqTrainError("cross-entropy has \(w.count) class weights for \(c) classes; give one weight per class")
        }
        for r in 0..<n where targets[r] != ignoreIndex && (targets[r] < 0 || Int(targets[r]) >= c) {
            throw SeqTrainError("class id \(targets[r]) at row \(r) is outside 0..<\(c) (and is not ignore_index \(ignoreIndex))")
        }
        let eps = labelSmoothing
        let weightSum: Float = classWeights?.reduce(0, +) ?? Float(c)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: c)  // (C): e^(z − max) of one row
        defer { scratch.deallocate() }
        var total = LossTotal()
        classWeights.withUnsafeBufferPointerOrNil { w in
            for r in 0..<n {
                let z = logits + r * c
                let rowWeight = mask?[r] ?? 1
                let y = targets[r]
                if y == ignoreIndex || rowWeight == 0 {
                    dLogits?.advanced(by: r * c).update(repeating: 0, count: c)
                    continue
                }
                let m = maximum(z, count: c)
                expShifted(scratch, z, by: m, count: c)
                let s = sum(scratch, count: c)
                let logSum = logf(s), lse = m + logSum
                let wy = (w?[Int(y)] ?? 1) * rowWeight
                var rowLoss = Double(1 - eps) * Double(wy) * Double(lse - z[Int(y)])
                if eps > 0 {
                    var smooth: Double = 0
                    for k in 0..<c { smooth += Double(w?[k] ?? 1) * Double(lse - z[k]) }
                    rowLoss += Double(eps / Float(c)) * Double(rowWeight) * smooth
                }
                total.sum += rowLoss
                total.count += Double(wy)
                if let d = dLogits?.advanced(by: r * c) {
                    let inverseSum = 1 / s
                    let hard = (1 - eps) * wy
                    if eps > 0 {
                        let smoothScale = eps / Float(c) * rowWeight
                        for k in 0..<c {
                            let p = scratch[k] * inverseSum
                            d[k] = hard * p + smoothScale * (weightSum * p - (w?[k] ?? 1))
                        }
                    } else {
                        for k in 0..<c { d[k] = hard * scratch[k] * inverseSum }
                    }
                    d[Int(y)] -= hard
                }
            }
        }
        return total
    }
}

extension Optional where Wrapped == [Float] {
    /// Runs `body` with a pointer to the array's floats, or nil.
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        guard let array = self else { return try body(nil) }
        return try array.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}
