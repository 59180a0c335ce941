import Foundation

/// Elementwise activations with their derivatives. Backward gets both the input x and the output y
/// of forward and uses whichever is cheaper (ReLU, Tanh and Sigmoid use y; GELU uses x).
public enum Activation: String, Codable, CaseIterable {
    case identity, relu, tanh, sigmoid, gelu

    /// y (n) ← f(x) (n). y may alias x.
    public func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
        switch self {
        case .identity: if UnsafePointer(y) != x { y.update(from: x, count: n) }
        case .relu: for i in 0..<n { y[i] = max(x[i], 0) }
        case .tanh: for i in 0..<n { y[i] = fastTanh(x[i]) }
        case .sigmoid: for i in 0..<n { y[i] = SeqTrainKit.sigmoid(x[i]) }
        // PyTorch's default GELU is the exact one: x Φ(x).
        case .gelu: for i in 0..<n { y[i] = 0.5 * x[i] * (1 + erff(x[i] * 0.70710678)) }
        }
    }

    /// dx (n) ← dy ⊙ f′(x). dx may alias dy.
    public func backward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, y: UnsafePointer<Float>, count n: Int) {
        switch self {
        case .identity: if UnsafePointer(dx) != dy { dx.update(from: dy, count: n) }
        case .relu: for i in 0..<n { dx[i] = y[i] > 0 ? dy[i] : 0 }
        case .tanh: for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
        case .sigmoid: for i in 0..<n { dx[i] = dy[i] * y[i] * (1 - y[i]) }
        case .gelu:
            for i in 0..<n {
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * 0.70710678))
                let pdf = expf(-0.5 * v * v) * 0.39894228
                dx[i] = dy[i] * (cdf + v * pdf)
            }
        }
    }
}

/// Inverted dropout: kept elements are scaled by 1/(1-p) in training, so inference is the identity.
/// The mask of element (row, column) is drawn from (seed, step, layer, rowKey[row], column), where
/// the model gives each row a key from its global sample index and time step: the same on any
/// number of ranks.
public struct Dropout {
    public let probability: Float

    public init(probability: Float) { self.probability = probability }

    public struct Keys {
        public let random: CounterRandom
        public let stream: UInt64            // (training step, layer) packed by the model
        public let rowKeys: [UInt64]         // one per row
        public init(seed: UInt64, stream: UInt64, rowKeys: [UInt64]) {
            random = CounterRandom(seed: seed, purpose: .dropout)
            self.stream = stream
            self.rowKeys = rowKeys
        }
    }

    /// mask (rows, width) ← 0 or 1/(1-p); y ← x ⊙ mask. y may alias x.
    public func forward(_ y: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                        rows: Int, width: Int, keys: Keys) {
        let scale = 1 / (1 - probability)
        for r in 0..<rows {
            let base = keys.rowKeys[r] &* UInt64(width)
            for j in 0..<width {
                let u = keys.random.uniform(stream: keys.stream, index: base &+ UInt64(j))
                let m: Float = u >= probability ? scale : 0
                mask[r * width + j] = m
                y[r * width + j] = x[r * width + j] * m
            }
        }
    }

    /// dx ← dy ⊙ mask (n). dx may alias dy.
    public func backward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, mask: UnsafePointer<Float>, count n: Int) {
        for i in 0..<n { dx[i] = dy[i] * mask[i] }
    }
}
