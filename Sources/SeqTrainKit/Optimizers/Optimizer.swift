import CKernels
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
    /// State buffers by name, each (arena count); the worker threads of a process share one set.
    public private(set) var state: [String: FloatBuffer]

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        var state = [String: FloatBuffer]()
        for name in settings.stateNames { state[name] = FloatBuffer(count: parameterCount) }
        if settings.kind == .adagrad { state["sum"]!.pointer.update(repeating: settings.initialAccumulator, count: parameterCount) }
        self.state = state
    }

    /// The state buffers in name order (what the worker threads of a process share).
    public var stateBuffers: [FloatBuffer] { state.keys.sorted().map { state[$0]! } }

    /// Uses `shared` (in name order, as `stateBuffers`) from now on.
    public func useState(_ shared: [FloatBuffer]) {
        let names = state.keys.sorted()
        precondition(shared.count == names.count, "shared optimizer state of another kind")
        state = Dictionary(uniqueKeysWithValues: zip(names, shared))
    }

    /// One update of every parameter in `range` (all of them by default; a worker thread updates
    /// its slice of the shared arena) from its gradient times `gradientScale`, at learning rate
    /// `lr`. The scale folds the loss normalization and the clipping coefficient into this one
    /// pass, so the gradient arena is not rewritten before the update. Every rule is elementwise,
    /// so slices updated apart give what one pass over the arena gives.
    public func step(_ arena: ParameterArena, range: Range<Int>? = nil, learningRate lr: Float, gradientScale: Float = 1) {
        stepCount += 1
        let part = range ?? 0..<arena.count
        let s = settings, n = part.count
        let p = arena.values.pointer + part.lowerBound, g = arena.gradients.pointer + part.lowerBound
        let wd = s.weightDecay
        // The state buffers, at the same offset.
        func buffer(_ name: String) -> UnsafeMutablePointer<Float>? { state[name].map { $0.pointer + part.lowerBound } }
        if gradientScale != 1 && s.kind != .adam && s.kind != .adamw { scaleInPlace(g, by: gradientScale, count: n) }
        switch s.kind {
        case .sgd:
            let buf = buffer("momentum_buffer")
            for i in 0..<n {
                var d = g[i] + wd * p[i]
                if let buf {
                    buf[i] = stepCount == 1 ? d : s.momentum * buf[i] + (1 - s.dampening) * d
                    d = s.nesterov ? d + s.momentum * buf[i] : buf[i]
                }
                p[i] -= lr * d
            }
        case .adam, .adamw:
            let m = buffer("exp_avg")!, v = buffer("exp_avg_sq")!
            let t = Double(stepCount)
            let bc1 = 1 - pow(Double(s.beta1), t), bc2 = 1 - pow(Double(s.beta2), t)
            let stepSize = Float(Double(lr) / bc1), bc2Root = Float(bc2.squareRoot())
            // AdamW: decoupled weight decay, the parameter shrinks and the gradient is left alone;
            // Adam: weight decay is an L2 term added to the gradient. One fused pass (CKernels).
            let shrink: Float = s.kind == .adamw ? 1 - lr * wd : 1, l2: Float = s.kind == .adam ? wd : 0
            st_adam_update(p, g, m, v, Int64(n), gradientScale, l2, shrink, s.beta1, s.beta2, stepSize, bc2Root, s.epsilon)
        case .rmsprop:
            let sq = buffer("square_avg")!
            let buf = buffer("momentum_buffer"), avg = buffer("grad_avg")
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
            let sum = buffer("sum")!
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
        let (norm, coefficient) = clippingCoefficient(arena, gradientScale: 1, maxNorm: maxNorm)
        if coefficient < 1 { scaleInPlace(arena.gradients.pointer, by: coefficient, count: arena.count) }
        return norm
    }

    /// The global 2-norm of the gradients times `gradientScale`, and the factor clip_grad_norm_ would
    /// scale them by (1 when `maxNorm` is 0 or not exceeded), without touching the arena: the
    /// optimizer applies both in its pass.
    public static func clippingCoefficient(_ arena: ParameterArena, gradientScale: Float, maxNorm: Float) -> (norm: Float, coefficient: Float) {
        let norm = Float(sumOfSquares(arena.gradients.pointer, count: arena.count).squareRoot()) * gradientScale
        guard maxNorm > 0 else { return (norm, 1) }
        return (norm, min(1, maxNorm / (norm + 1e-6)))
    }

    /// The global 2-norm of the gradients, unchanged.
    public static func norm(_ arena: ParameterArena) -> Float {
        Float(sumOfSquares(arena.gradients.pointer, count: arena.count).squareRoot())
    }

    /// `torch.nn.utils.clip_grad_value_`: clamps every gradient in `range` (all by default) into [−clip, clip].
    public static func clipValue(_ arena: ParameterArena, range: Range<Int>? = nil, clip: Float) {
        let g = arena.gradients.pointer
        for i in range ?? 0..<arena.count { g[i] = min(max(g[i], -clip), clip) }
    }
}
