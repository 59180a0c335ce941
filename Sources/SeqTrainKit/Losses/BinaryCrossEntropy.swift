import Foundation

/// Sigmoid + binary cross-entropy on raw logits, PyTorch's `F.binary_cross_entropy_with_logits` with
/// `pos_weight`: the multi-label loss (one independent yes/no per class). Legend: N rows, C labels.
///
///     loss = p_c y softplus(−x) + (1 − y) softplus(x),   ∂loss/∂x = (1 − y) σ(x) − p_c y (1 − σ(x))
/// Mean over counted elements: count = (rows counted) · C.
public struct BinaryCrossEntropyLoss {
    public var positiveWeights: [Float]?

    public init(positiveWeights: [Float]? = nil) throws {
        if let w = positiveWeights, w.contains(where: { !($0 >= 0) || !$0.isFinite }) {
            throw SeqTrainError("pos_weight must be finite and non-negative")
        }
        self.positiveWeights = positiveWeights
    }

    public func evaluate(_ dLogits: UnsafeMutablePointer<Float>?, logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                         mask: RowMask = nil, rows n: Int, classes c: Int) throws -> LossTotal {
        if let w = positiveWeights, w.count != c {
            throw SeqTrainError("pos_weight has \(w.count) entries for \(c) labels; give one per label")
        }
        for i in 0..<(n * c) where !(targets[i] >= 0 && targets[i] <= 1) {
            throw SeqTrainError("target \(targets[i]) at row \(i / c), label \(i % c) is not in [0, 1]")
        }
        var total = LossTotal()
        positiveWeights.withUnsafeBufferPointerOrNil { pw in
            for r in 0..<n {
                let rowWeight = mask?[r] ?? 1
                let x = logits + r * c, y = targets + r * c
                var rowSum: Double = 0
                for k in 0..<c {
                    let p = pw?[k] ?? 1
                    rowSum += Double(p * y[k] * softplus(-x[k]) + (1 - y[k]) * softplus(x[k]))
                    if let d = dLogits {
                        let s = sigmoid(x[k])
                        d[r * c + k] = rowWeight * ((1 - y[k]) * s - p * y[k] * (1 - s))
                    }
                }
                total.sum += Double(rowWeight) * rowSum
                total.count += Double(rowWeight) * Double(c)
            }
        }
        return total
    }
}
