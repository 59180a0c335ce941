/// Regression losses on (N, F) predictions: mean squared error and mean absolute error, PyTorch's
/// `F.mse_loss` and `F.l1_loss` with mean reduction, over counted rows. count = (rows counted) · F.
public enum RegressionLoss: String, Codable {
    case mse, l1

    public func evaluate(_ dPrediction: UnsafeMutablePointer<Float>?, prediction: UnsafePointer<Float>, target: UnsafePointer<Float>,
                         mask: RowMask = nil, rows n: Int, features f: Int) -> LossTotal {
        var total = LossTotal()
        for r in 0..<n {
            let rowWeight = mask?[r] ?? 1
            var rowSum: Double = 0
            for k in r * f..<(r + 1) * f {
                let d = prediction[k] - target[k]
                switch self {
                case .mse:
                    rowSum += Double(d * d)
                    dPrediction?[k] = rowWeight * 2 * d
                case .l1:
                    rowSum += Double(abs(d))
                    dPrediction?[k] = rowWeight * (d > 0 ? 1 : d < 0 ? -1 : 0)
                }
            }
            total.sum += Double(rowWeight) * rowSum
            total.count += Double(rowWeight) * Double(f)
        }
        return total
    }
}
