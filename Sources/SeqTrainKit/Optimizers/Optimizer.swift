import Foundation

public enum OptimizerKind: String, Codable, CaseIterable {
    case sgd, adam, adamw, rmsprop, adagrad
}

/// Hyper-parameters with PyTorch's names and defaults (torch.optim).
public struct OptimizerSettings: Equatable, Codable {
    public var kind: OptimizerKind
    public var learningRate: Float
    public var momentum: Float = 0            // sgd, rmsprop
    public var dampening: Float = 0           // sgd
    public var nesterov = false               // sgd
    public var weightDecay: Float             // L2 added to the gradient; adamw: decoupled, default 0.01
    public var beta1: Float = 0.9             // adam, adamw
    public var beta2: Float = 0.999           // adam, adamw
    public var epsilon: Float                 // 1e-8; adagrad 1e-10
    public var alpha: Float = 0.99            // rmsprop smoothing
    public var centered = false               // rmsprop
    public var learningRateDecay: Float = 0   // adagrad
    public var initialAccumulator: Float = 0  // adagrad

    public init(_ kind: OptimizerKind, learningRate: Float? = nil) {
        self.kind = kind
        self.learningRate = learningRate ?? OptimizerSettings.defaultLearningRate(kind)
        weightDecay = kind == .adamw ? 0.01 : 0
        epsilon = kind == .adagrad ? 1e-10 : 1e-8
    }

    public static func defaultLearningRate(_ kind: OptimizerKind) -> Float {
        switch kind {
        case .sgd, .adam, .adamw: return 1e-3
        case .rmsprop, .adagrad: return 1e-2
        }
    }

    /// Names of the per-parameter state buffers, as PyTorch's optimizer state_dict calls them.
    public var stateNames: [String] {
        switch kind {
        case .sgd: return momentum != 0 ? ["momentum_buffer"] : []
        case .adam, .adamw: return ["exp_avg", "exp_avg_sq"]
        case .rmsprop: return ["square_avg"] + (momentum > 0 ? ["momentum_buffer"] : []) + (centered ? ["grad_avg"] : [])
        case .adagrad: return ["sum"]
        }
    }
}

/// An optimizer over the whole parameter arena: every state buffer has the arena's layout, and one
/// step is a handful of loops over flat memory.
public final class Optimizer {
    public let settings: OptimizerSettings
    /// Steps taken (PyTorch's `state["step"]`).
    public var stepCount = 0
    /// State buffers by name, each (arena count).
    public let state: [String: FloatBuffer]

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        var state = [String: FloatBuffer]()
        for name in settings.stateNames { state[name] = FloatBuffer(count: parameterCount) }
        if settings.kind == .adagrad { state["sum"]!.pointer.update(repeating: settings.initialAccumulator, count: parameterCount) }
        self.state = state
    }

    /// One update of every parameter from its gradient, at learning rate `lr`.
    public func step(_ arena: ParameterArena, learningRate lr: Float) {
        stepCount += 1
        let s = settings, n = arena.count
        let p = arena.values.pointer, g = arena.gradients.pointer
        let wd = s.weightDecay
        switch s.kind {
        case .sgd:
            let buf = state["momentum_buffer"]?.pointer
            for i in 0..<n {
                var d = g[i] + wd * p[i]
                if let buf {
                    buf[i] = stepCount == 1 ? d : s.momentum * buf[i] + (1 - s.dampening) * d
                    d = s.nesterov ? d + s.momentum * buf[i] : buf[i]
                }
                p[i] -= lr * d
            }
        case .adam, .adamw:
            let m = state["exp_avg"]!.pointer, v = state["exp_avg_sq"]!.pointer
            let t = Double(stepCount)
            let bc1 = 1 - pow(Double(s.beta1), t), bc2 = 1 - pow(Double(s.beta2), t)
            let stepSize = Float(Double(lr) / bc1), bc2Root = Float(bc2.squareRoot())
            let (b1, b2, eps) = (s.beta1, s.beta2, s.epsilon)
            if s.kind == .adamw {
                // Decoupled weight decay: the parameter shrinks, the gradient is left alone.
                let shrink = 1 - lr * wd
                for i in 0..<n { p[i] *= shrink }
            } else if wd != 0 {
                for i in 0..<n { g[i] += wd * p[i] }
            }
            for i in 0..<n {
                let d = g[i]
                let mi = m[i] + (d - m[i]) * (1 - b1)
                let vi = b2 * v[i] + (1 - b2) * d * d
                m[i] = mi
                v[i] = vi
                p[i] -= stepSize * mi / (vi.squareRoot() / bc2Root + eps)
            }
        case .rmsprop:
            let sq = state["square_avg"]!.pointer
            let buf = state["momentum_buffer"]?.pointer, avg = state["grad_avg"]?.pointer
            for i in 0..<n {
                let d = g[i] + wd * p[i]
                sq[i] = s.alpha * sq[i] + (1 - s.alpha) * d * d
                var denom: Float
                if let avg {
                    avg[i] += (d - avg[i]) * (1 - s.alpha)
                    denom = (sq[i] - avg[i] * avg[i]).squareRoot() + s.epsilon
                } else {
                    denom = sq[i].squareRoot() + s.epsilon
                }
                if let buf {
                    buf[i] = s.momentum * buf[i] + d / denom
                    p[i] -= lr * buf[i]
                } else {
                    p[i] -= lr * d / denom
                }
            }
        case .adagrad:
            let sum = state["sum"]!.pointer
            let clr = lr / (1 + Float(stepCount - 1) * s.learningRateDecay)
            for i in 0..<n {
                let d = g[i] + wd * p[i]
                sum[i] += d * d
                p[i] -= clr * d / (sum[i].squareRoot() + s.epsilon)
            }
        }
    }
}

/// Gradient clipping over the whole arena.
public enum GradientClipping {
    /// `torch.nn.utils.clip_grad_norm_`: scales all gradients by max/(norm + 1e-6) when that is below 1.
    /// Returns the global 2-norm before clipping.
    @discardableResult
    public static func clipNorm(_ arena: ParameterArena, maxNorm: Float) -> Float {
        let norm = Float(sumOfSquares(arena.gradients.pointer, count: arena.count).squareRoot())
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 { scaleInPlace(arena.gradients.pointer, by: coefficient, count: arena.count) }
        return norm
    }

    /// The global 2-norm of the gradients, unchanged.
    public static func norm(_ arena: ParameterArena) -> Float {
        Float(sumOfSquares(arena.gradients.pointer, count: arena.count).squareRoot())
    }

    /// `torch.nn.utils.clip_grad_value_`: clamps every gradient into [−clip, clip].
    public static func clipValue(_ arena: ParameterArena, clip: Float) {
        let g = arena.gradients.pointer
        for i in 0..<arena.count { g[i] = min(max(g[i], -clip), clip) }
    }
}
