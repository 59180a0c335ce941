import Foundation

/// `[training.early_stopping]` and `checkpoint.keep_best`, decoded once when the trainer is made.
/// Keras's `EarlyStopping` is the anchor: `monitor`, `mode`, `patience`, `min_delta`,
/// `restore_best_weights` (here `restore_best`).
public struct EarlyStoppingSettings: Equatable {
    public enum Mode: String { case min, max }

    /// The validation figure watched: "val_loss" or one of the kind's metrics.jsonl names.
    public let monitor: String
    public let mode: Mode
    /// Validations without improvement before the run stops; 0: early stopping is off.
    public let patience: Int
    public let minDelta: Double
    public let restoreBest: Bool
    /// `checkpoint.keep_best`: the best checkpoint is kept beside the last ones.
    public let keepBest: Bool

    public var isEnabled: Bool { patience > 0 }
    /// Whether a checkpoint is written (and protected from `keep_last`) at every new best:
    /// restoring the best weights needs it too, also after a `--resume`.
    public var keepsBestCheckpoint: Bool { keepBest || (isEnabled && restoreBest) }

    /// The settings of `config`, the monitor checked against what the kind logs (`validationMetricNames`).
    public init(_ config: ExperimentConfig, validationMetricNames: [String]) throws {
        let names = ["val_loss"] + validationMetricNames
        monitor = config.text("training.early_stopping.monitor")
        guard names.contains(monitor) else {
            throw SeqTrainError("training.early_stopping.monitor = \(tomlString(monitor)): model.kind = \"\(config.kind)\""
                + " logs no such validation figure; use one of \(names.joined(separator: ", "))")
        }
        let requested = config.text("training.early_stopping.mode")
        mode = requested == "auto" ? Self.automaticMode(monitor) : Mode(rawValue: requested) ?? .min
        patience = config.integer("training.early_stopping.patience")
        minDelta = config.number("training.early_stopping.min_delta")
        restoreBest = config.boolean("training.early_stopping.restore_best")
        keepBest = config.boolean("checkpoint.keep_best")
    }

    /// Keras's "auto": higher is better for accuracy, F1, AUC and match rates; lower for losses and errors.
    public static func automaticMode(_ monitor: String) -> Mode {
        let higher = ["accuracy", "f1", "auc", "exact_match", "precision", "recall", "variance_ratio"]
        return higher.contains { monitor.contains($0) } ? .max : .min
    }
}

/// The best monitored figure so far and how many validations passed without beating it. Every
/// replica observes the same all-reduced validation figures, so every replica decides alike.
/// Saved in the checkpoint's state (`checkpointText`), so a resumed run stops where the
/// uninterrupted one did.
public struct BestTracker: Equatable {
    public var best: Double
    /// The step of the best validation; nil before the first finite one.
    public var bestStep: Int?
    /// Validations since the best (Keras's `wait`).
    public var wait = 0
    /// Early stopping ended the run at `stoppedStep`.
    public var stoppedStep: Int?

    public init(mode: EarlyStoppingSettings.Mode) { best = mode == .min ? .infinity : -.infinity }

    /// Counts one validation; true when `value` improves the best by more than `minDelta`.
    public mutating func observe(_ value: Double, step: Int, settings: EarlyStoppingSettings) -> Bool {
        let improved = value.isFinite && (settings.mode == .min ? value + settings.minDelta < best
                                                                 : value - settings.minDelta > best)
        if improved {
            best = value
            bestStep = step
            wait = 0
        } else {
            wait += 1
        }
        return improved
    }

    /// "best bestStep wait stoppedStep", -1 for what is not set.
    var checkpointText: String { "\(best) \(bestStep ?? -1) \(wait) \(stoppedStep ?? -1)" }

    /// From `checkpointText`; nil when `text` is not one.
    init?(checkpointText text: String) {
        let parts = text.split(separator: " ").map(String.init)
        guard parts.count == 4, let best = Double(parts[0]), let bestStep = Int(parts[1]), let wait = Int(parts[2]),
              let stopped = Int(parts[3]) else { return nil }
        self.best = best
        self.bestStep = bestStep >= 0 ? bestStep : nil
        self.wait = wait
        stoppedStep = stopped >= 0 ? stopped : nil
    }

    /// The figure of a validation the tracker watches.
    static func value(of result: ValidationResult, monitor: String) -> Double? {
        monitor == "val_loss" ? result.loss : result.metrics.first { $0.name == monitor }?.value
    }
}

/// `RUN/best_checkpoint.json`: which checkpoint holds the best monitored figure. Written by the
/// trainer after that checkpoint is complete; read by the inference commands (`--checkpoint best`).
public struct BestCheckpointRecord: Equatable {
    public static let fileName = "best_checkpoint.json"

    public let step: Int
    public let monitor: String
    public let mode: String
    public let value: Double

    public init(step: Int, monitor: String, mode: String, value: Double) {
        self.step = step
        self.monitor = monitor
        self.mode = mode
        self.value = value
    }

    public static func path(_ runDirectory: String) -> String { "\(runDirectory)/\(fileName)" }

    /// The best checkpoint's weights file.
    public func weightsPath(_ runDirectory: String) -> String { Checkpoint.weightsPath(runDirectory, step: step) }

    func write(_ runDirectory: String) throws {
        let object: [String: Any] = [
            "step": step, "monitor": monitor, "mode": mode, "value": value.isFinite ? value : NSNull(),
            "checkpoint": (Checkpoint.weightsPath(runDirectory, step: step) as NSString).lastPathComponent,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try DurableFile.write(data + Data("\n".utf8), to: Self.path(runDirectory))
    }

    /// The record of a run directory; nil when there is none; an error when the file is not one.
    public static func read(_ runDirectory: String) throws -> BestCheckpointRecord? {
        let path = path(runDirectory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let step = object["step"] as? Int, step >= 0, let monitor = object["monitor"] as? String else {
            throw SeqTrainError("\(path): not the best-checkpoint record seqtrain writes (step, monitor, value);"
                + " delete it, or pass --checkpoint last")
        }
        return BestCheckpointRecord(step: step, monitor: monitor, mode: object["mode"] as? String ?? "min",
                                    value: object["value"] as? Double ?? .nan)
    }
}

/// Which checkpoint of a run directory an inference command uses (`--checkpoint last|best|PATH`).
public enum CheckpointChoice: Equatable {
    case last, best
    /// A checkpoint file, a checkpoint's name in RUN/checkpoints, or a step number.
    case path(String)

    public init(_ text: String) {
        switch text {
        case "last": self = .last
        case "best": self = .best
        default: self = .path(text)
        }
    }
}

extension Checkpoint {
    /// The checkpoint `path` (a file or a run directory) and `choice` name, loaded and checked, with
    /// a note saying which one it is. `choice` nil: the best when the run has one, else the newest.
    public static func select(_ path: String, choice: CheckpointChoice?) throws
        -> (path: String, weights: SafetensorsFile, note: String?) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SeqTrainError("\(path): no such checkpoint file or run directory")
        }
        guard isDirectory.boolValue else {
            if let choice {
                throw SeqTrainError("--checkpoint \(describe(choice)): \(path) is a checkpoint file, not a run directory;"
                    + " --checkpoint chooses among a run directory's checkpoints (drop it, or give the run directory)")
            }
            return (path, try load(path, state: false).weights, nil)
        }
        func name(_ file: String) -> String { ((file as NSString).lastPathComponent as NSString).deletingPathExtension }
        func newest(_ why: String?) throws -> (String, SafetensorsFile, String?) {
            guard let found = try newestValid(path, state: false, warn: printWarning) else {
                throw SeqTrainError("\(path): the run directory has no checkpoints yet (looked in \(path)/checkpoints)")
            }
            return (found.path, found.weights, "using checkpoint \(name(found.path)) (the newest\(why.map { "; \($0)" } ?? ""))")
        }
        switch choice {
        case .last:
            return try newest(nil)
        case .path(let given):
            let candidates = [given, "\(path)/checkpoints/\(given)", "\(path)/checkpoints/\(given).safetensors"]
                + (Int(given).map { [weightsPath(path, step: $0)] } ?? [])
            guard let file = candidates.first(where: { FileManager.default.fileExists(atPath: $0) && !$0.hasSuffix("/") }) else {
                let known = list(path).map(name)
                throw SeqTrainError("--checkpoint \(given): no such checkpoint in \(path)/checkpoints (it has "
                    + (known.isEmpty ? "none" : known.joined(separator: ", ")) + "); give last, best, a file, a name or a step")
            }
            return (file, try load(file, state: false).weights, "using checkpoint \(name(file))")
        case .best, nil:
            let explicit = choice != nil
            let record: BestCheckpointRecord?
            do {
                record = try BestCheckpointRecord.read(path)
            } catch let error as SeqTrainError where !explicit {
                printWarning(error.message)
                return try newest("the best-checkpoint record is unreadable")
            }
            guard let record else {
                if explicit {
                    throw SeqTrainError("--checkpoint best: \(path) has no best checkpoint (no best_checkpoint.json: the run"
                        + " had no validation, or checkpoint.keep_best = false); use --checkpoint last")
                }
                return try newest("no best checkpoint recorded")
            }
            let file = record.weightsPath(path)
            do {
                let weights = try load(file, state: false).weights
                return (file, weights, "using checkpoint \(name(file)) (best \(record.monitor) \(String(format: "%.6g", record.value)))")
            } catch let error as SeqTrainError where !explicit {
                printWarning("the best checkpoint cannot be used: \(error.message)")
                return try newest("the best one is missing or damaged")
            }
        }
    }

    static func describe(_ choice: CheckpointChoice) -> String {
        switch choice {
        case .last: return "last"
        case .best: return "best"
        case .path(let text): return text
        }
    }
}
