import Foundation

/// Checks before training for what is probably wrong (warnings with the reason and the fix);
/// what is certainly wrong is refused where the experiment is made. Each kind adds its own
/// (`Experiment.diagnoses`).
public enum TrainingDoctor {
    /// The learning rates people use with each optimizer (PyTorch's and Keras's defaults sit
    /// inside), and the factor outside of which a rate is "far" from them.
    static let usualRates: [String: ClosedRange<Double>] = [
        "adam": 1e-5...1e-2, "adamw": 1e-5...1e-2, "rmsprop": 1e-5...1e-2, "sgd": 1e-4...1, "adagrad": 1e-4...1,
    ]
    static let farFactor = 10.0

    public static func examine(_ config: ExperimentConfig) -> [String] {
        var found: [String] = []
        let kind = config.text("optimizer.kind"), lr = config.number("optimizer.lr")
        if let usual = usualRates[kind] {
            if lr > usual.upperBound * farFactor {
                found.append("optimizer.lr = \(lr) is far above the usual range for \(kind) (\(usual.lowerBound) to \(usual.upperBound)): expect the loss to jump about or diverge. Try \(kind == "sgd" || kind == "adagrad" ? "0.01 to 0.1" : "1e-3"), with training.clip_norm and lr_scheduler.warmup_steps")
            } else if lr > 0 && lr < usual.lowerBound / farFactor {
                found.append("optimizer.lr = \(lr) is far below the usual range for \(kind) (\(usual.lowerBound) to \(usual.upperBound)): the model will barely move. Try \(kind == "sgd" || kind == "adagrad" ? "0.01 to 0.1" : "1e-3")")
            } else if lr == 0 {
                found.append("optimizer.lr = 0: the weights will not change")
            }
        }
        return found
    }
}

/// Watches training for learning that has stopped: over a window of steps the weights barely
/// moved and the loss did not fall. Reports once, with the likely causes.
struct FrozenLearningDetector {
    var window = 100
    var start: [Float] = []
    var startStep = 0
    var losses: [Double] = []
    var reported = false

    init(window: Int = 100) { self.window = window }

    mutating func observe(step: Int, loss: Double, parameters: ParameterArena) -> String? {
        guard !reported else { return nil }
        if start.isEmpty {
            start = parameters.values.array
            startStep = step - 1
            losses = []
        }
        losses.append(loss)
        guard losses.count >= window else { return nil }
        defer { start = []; losses = [] }
        let now = parameters.values.array
        var moved = 0.0, size = 0.0
        for (a, b) in zip(start, now) {
            moved += Double(b - a) * Double(b - a)
            size += Double(a) * Double(a)
        }
        let relative = moved.squareRoot() / max(size.squareRoot(), 1e-30)
        let half = losses.count / 2
        let early = losses[..<half].reduce(0, +) / Double(half), late = losses[half...].reduce(0, +) / Double(losses.count - half)
        let improvement = (early - late) / max(abs(early), 1e-30)
        // Weights that do not move at all are frozen whatever the loss does from batch to batch;
        // weights that move very little are frozen when the loss does not fall either.
        guard relative < 1e-7 || (relative < 1e-5 && improvement < 1e-3) else { return nil }
        reported = true
        return String(format: "learning looks frozen: over steps %d to %d the weights moved by %.1e of their size and the loss stayed at %.4f. Likely causes: a learning rate of 0 or far too low (optimizer.lr, the schedule's warm-up or minimum), gradients that vanish (saturated activations, very long sequences read without pooling), or clipping far too strict (training.clip_norm, training.clip_value)",
                      startStep + 1, step, relative, late)
    }
}
