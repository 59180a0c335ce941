import Foundation

/// Learning-rate schedules, with an optional linear warm-up in front of any of them:
/// constant; step decay (StepLR); cosine to `minimum` over the run (CosineAnnealingLR after
/// warm-up); reduce-on-plateau of the validation loss (ReduceLROnPlateau, mode "min", relative threshold).
public struct LearningRateSchedule: Equatable {
    public enum Kind: String { case constant, step, cosine, plateau }

    public let kind: Kind
    public let base: Double
    public var warmupSteps = 0
    public var stepSize = 1000
    public var gamma = 0.5
    public var minimum = 0.0
    public var factor = 0.5
    public var patience = 2
    public var threshold = 1e-4
    /// Optimizer steps in the whole run (cosine's horizon).
    public var totalSteps = 1

    // Plateau state: part of the training state a checkpoint keeps.
    public var plateauScale = 1.0
    public var bestValidation = Double.infinity
    public var badValidations = 0

    public init(kind: Kind, base: Double) {
        self.kind = kind
        self.base = base
    }

    public init(config: ExperimentConfig, totalSteps: Int) {
        self.init(kind: Kind(rawValue: config.text("lr_scheduler.kind"))!, base: config.number("optimizer.lr"))
        warmupSteps = config.integer("lr_scheduler.warmup_steps")
        stepSize = config.integer("lr_scheduler.step_size")
        gamma = config.number("lr_scheduler.gamma")
        minimum = config.number("lr_scheduler.min_lr")
        factor = config.number("lr_scheduler.factor")
        patience = config.integer("lr_scheduler.patience")
        threshold = config.number("lr_scheduler.threshold")
        self.totalSteps = max(totalSteps, 1)
    }

    /// The rate for step `s` (0-based: the first optimizer step is 0).
    public func rate(step s: Int) -> Double {
        var lr: Double
        switch kind {
        case .constant: lr = base
        case .step: lr = base * pow(gamma, Double(s / stepSize))
        case .cosine:
            let span = max(totalSteps - warmupSteps, 1)
            let progress = min(max(Double(s - warmupSteps) / Double(span), 0), 1)
            lr = minimum + (base - minimum) * 0.5 * (1 + cos(Double.pi * progress))
        case .plateau: lr = max(base * plateauScale, minimum)
        }
        if s < warmupSteps { lr *= Double(s + 1) / Double(warmupSteps) }
        return lr
    }

    /// Feeds a validation loss to reduce-on-plateau (other kinds ignore it).
    public mutating func observe(validationLoss loss: Double) {
        guard kind == .plateau else { return }
        if loss < bestValidation * (1 - threshold) {
            bestValidation = loss
            badValidations = 0
        } else {
            badValidations += 1
            if badValidations > patience {
                plateauScale *= factor
                badValidations = 0
            }
        }
    }
}

/// Scheduled sampling (Bengio et al. 2015): ε_i, the probability that the decoder is fed the true
/// previous token at optimizer step i (0 for the first step) rather than its own. Each fed
/// position draws its own coin. With `start` s and the floor `minimum` m:
///   constant:         ε_i = s
///   linear:           ε_i = max(m, s − slope · i)
///   exponential:      ε_i = max(m, s · base^i)              (the paper's k^i, 0 < base < 1)
///   inverse_sigmoid:  ε_i = max(m, s · k / (k + e^(i / k)))  (k ≥ 1)
public struct TeacherForcingSchedule: Equatable {
    public enum Kind: String, CaseIterable { case constant, linear, exponential, inverseSigmoid = "inverse_sigmoid" }

    public var kind: Kind
    public var start = 1.0
    public var minimum = 0.0
    public var slope = 1e-4
    public var base = 0.999
    public var k = 1000.0

    public init(kind: Kind) { self.kind = kind }

    public init(config: ExperimentConfig) {
        kind = Kind(rawValue: config.text("training.teacher_forcing")) ?? .constant
        start = config.number("training.teacher_forcing_start")
        minimum = config.number("training.teacher_forcing_min")
        slope = config.number("training.teacher_forcing_slope")
        base = config.number("training.teacher_forcing_base")
        k = config.number("training.teacher_forcing_k")
    }

    public func probability(step i: Int) -> Double {
        let x = Double(i)
        switch kind {
        case .constant: return start
        case .linear: return max(minimum, start - slope * x)
        case .exponential: return max(minimum, start * pow(base, x))
        case .inverseSigmoid: return max(minimum, start * k / (k + exp(min(x / k, 700))))
        }
    }
}
