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
        // Keys given that have no effect come first: certainly true, though not an error.
        var found: [String] = config.warnings
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

/// The doctor's rules that watch training, by the name `doctor.silence` takes.
public enum DoctorRule: String, CaseIterable {
    case frozenLearning = "frozen_learning"
    case overfitting
    case chanceLevel = "chance_level"
    case posteriorCollapse = "posterior_collapse"

    /// The words that end each of the rule's warnings.
    var silencing: String { "(silence this with doctor.silence = [\"\(rawValue)\"])" }

    /// The rules `doctor.silence` names; an error for a name that is none.
    public static func silenced(_ config: ExperimentConfig) throws -> Set<DoctorRule> {
        try Set(config.texts("doctor.silence").map { name in
            guard let rule = DoctorRule(rawValue: name) else {
                throw SeqTrainError("doctor.silence: \(tomlString(name)) is not a doctor rule; the rules that can be"
                    + " silenced are " + allCases.map { tomlString($0.rawValue) }.joined(separator: ", "))
            }
            return rule
        })
    }
}

/// One warning of a rule that watches training.
public struct DoctorFinding: Equatable {
    public let rule: DoctorRule
    public let text: String

    public init(_ rule: DoctorRule, _ text: String) {
        self.rule = rule
        self.text = text + " " + rule.silencing
    }
}

/// Overfitting: the monitored validation figure got worse at `patience` validations in a row
/// while the mean training loss between them fell. Reports once.
public struct OverfittingDetector {
    public let monitor: String
    public let mode: EarlyStoppingSettings.Mode
    public let patience: Int
    /// What early stopping does about it: nothing (off), stops with the last weights, or stops
    /// with the best ones, in which case there is nothing to warn about.
    public enum Stopping { case off, stopsWithLastWeights, restoresBest }
    public let stopping: Stopping
    /// A worsening smaller than this share of the figure is noise, not a trend.
    static let minimumWorsening = 0.01
    var history: [(step: Int, value: Double, trainingLoss: Double)] = []
    var reported = false

    public init(monitor: String, mode: EarlyStoppingSettings.Mode, patience: Int, stopping: Stopping) {
        self.monitor = monitor
        self.mode = mode
        self.patience = max(1, patience)
        self.stopping = stopping
    }

    /// The patience of `settings` when early stopping is on, else 3 validations.
    public init(_ settings: EarlyStoppingSettings) {
        let stopping: Stopping = !settings.isEnabled ? .off
            : settings.restoreBest ? .restoresBest : .stopsWithLastWeights
        self.init(monitor: settings.monitor, mode: settings.mode, patience: settings.isEnabled ? settings.patience : 3,
                  stopping: stopping)
    }

    /// One validation: its monitored figure and the mean training loss of the steps since the last one.
    public mutating func observe(step: Int, value: Double, trainingLoss: Double) -> DoctorFinding? {
        guard !reported, stopping != .restoresBest else { return nil }
        guard value.isFinite, trainingLoss.isFinite else { history = []; return nil }
        history.append((step, value, trainingLoss))
        if history.count > patience + 1 { history.removeFirst() }
        guard history.count == patience + 1 else { return nil }
        let mode = self.mode
        let worse = { (later: Double, earlier: Double) in mode == .min ? later > earlier : later < earlier }
        let first = history[0], last = history[patience]
        guard zip(history.dropFirst(), history).allSatisfy({ worse($0.value, $1.value) }),
              abs(last.value - first.value) >= Self.minimumWorsening * max(abs(first.value), 1e-12),
              last.trainingLoss < first.trainingLoss else { return nil }
        reported = true
        let figures = history.map { String(format: "%.4g", $0.value) }.joined(separator: " → ")
        let advice: String
        switch stopping {
        case .stopsWithLastWeights:
            advice = "Early stopping ends the run here with these last, worse weights: set"
                + " training.early_stopping.restore_best = true (or evaluate with --checkpoint best)"
        case .off, .restoresBest:
            advice = "Stop at the best validation: [training.early_stopping] patience = \(patience)"
                + " with restore_best = true"
                + " (checkpoint.keep_best = true keeps the best checkpoint for eval and predict)"
        }
        return DoctorFinding(.overfitting, String(format: "the model looks overfitted: %@ got worse at %d"
            + " validations in a row (steps %d to %d: %@) while the training loss fell from %.4g to %.4g."
            + " The model learns its training set by heart: too many parameters for the data, too little"
            + " regularization, or simply too long a run. %@; or regularize: model.dropout,"
            + " optimizer.weight_decay (adamw), a smaller model, more data",
            monitor, patience, first.step, last.step, figures, first.trainingLoss, last.trainingLoss, advice))
    }
}

/// A classifier no better than chance after a third of the run: every validation figure given a
/// chance level (what a model that learned nothing but the class shares scores) is within
/// `margin` of it. Reports once.
public struct ChanceLevelDetector {
    public struct Figure {
        public let name: String
        public let value: Double
        public let chance: Double
        public init(name: String, value: Double, chance: Double) {
            self.name = name
            self.value = value
            self.chance = chance
        }
        var higherIsBetter: Bool { EarlyStoppingSettings.automaticMode(name) == .max }
    }
    /// Accuracies and F1 scores within 0.02 of chance, losses within 2% of it, count as chance.
    static let scoreMargin = 0.02, lossMargin = 0.02
    var reported = false

    static func atChance(_ figure: Figure) -> Bool {
        figure.higherIsBetter ? figure.value <= figure.chance + scoreMargin
                              : figure.value >= figure.chance * (1 - lossMargin)
    }

    /// One validation at `step` of `totalSteps`; `causes` names the kind's likely causes and their keys.
    public init() {}

    public mutating func observe(step: Int, totalSteps: Int, figures: [Figure], causes: String) -> DoctorFinding? {
        let known = figures.filter { $0.value.isFinite && $0.chance.isFinite }
        guard !reported, totalSteps > 0, 3 * step >= totalSteps, !known.isEmpty, known.allSatisfy(Self.atChance) else {
            return nil
        }
        reported = true
        let seen = known.map { String(format: "%@ %.4f (chance %.4f)", $0.name, $0.value, $0.chance) }
        return DoctorFinding(.chanceLevel, "the classifier is no better than chance at step \(step) of \(totalSteps): "
            + seen.joined(separator: ", ") + ". A model that learned nothing but the class shares scores this. "
            + causes)
    }
}

/// Posterior collapse in a variational model: after the KL warm-up the KL term stays below
/// `maximumKL` nats per sequence while the free-running outputs of different inputs are the same.
/// Per sequence, not per latent dimension: the KL averaged over the data bounds the information
/// the latent carries about its input, however wide the latent is; under 0.5 nats (0.7 bits) it
/// cannot even tell two inputs apart reliably. Reports once.
public struct PosteriorCollapseDetector {
    static let maximumKL = 0.5
    /// The share of pairs of different inputs whose free-running outputs are identical.
    static let minimumSameShare = 0.8
    var reported = false

    /// One validation: the KL per sequence, and of `pairs` pairs of different inputs, how many
    /// gave the same output. Watched from the end of the warm-up and a third of the run on, when
    /// a model that is not collapsed has had time to use its latent.
    public init() {}

    public mutating func observe(step: Int, totalSteps: Int, warmupSteps: Int, klPerSequence: Double,
                                 sameOutputPairs: Double, pairs: Double) -> DoctorFinding? {
        guard !reported, step >= warmupSteps, 3 * step >= totalSteps, pairs >= 5, klPerSequence.isFinite,
              klPerSequence < Self.maximumKL, sameOutputPairs >= Self.minimumSameShare * pairs else { return nil }
        reported = true
        let warmup = warmupSteps > 0
            ? "a longer loss.kl_warmup_steps (now \(warmupSteps); a few thousand steps, or half the run)"
            : "loss.kl_warmup_steps (the KL weight rises from 0, so the latent is used before the KL term pulls it"
                + " to the prior; try half the run)"
        return DoctorFinding(.posteriorCollapse, String(format: "posterior collapse: at step %d the KL term is"
            + " %.3f nats per sequence (the latent carries almost nothing about its input) and %.0f%% of the"
            + " validation inputs give the same free-running output as a different input next to them. The"
            + " decoder models the sequences alone and ignores the latent. Use %@; make the decoder weaker so it"
            + " needs the latent (a smaller model.hidden, more model.dropout, or teacher forcing that falls:"
            + " training.teacher_forcing)",
            step, klPerSequence, 100 * sameOutputPairs / pairs, warmup))
    }
}
