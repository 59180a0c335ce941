/// Every key an experiment config may hold: its section, type, default, what it accepts and what it
/// does. Validation, `--set` overrides, the resolved config written into the run directory, and the
/// README's key table all come from this one list.
public enum ConfigValue: Equatable, CustomStringConvertible {
    case integer(Int)
    case number(Double)
    case boolean(Bool)
    case text(String)
    case texts([String])
    case integers([Int])
    case numbers([Double])
    /// A layer stack (`[[model.layers]]`), already checked entry by entry.
    case layers([LayerSpec])

    public var description: String {
        switch self {
        case .integer(let v): return String(v)
        case .number(let v): return tomlNumber(v)
        case .boolean(let v): return v ? "true" : "false"
        case .text(let v): return tomlString(v)
        case .texts(let v): return "[" + v.map(tomlString).joined(separator: ", ") + "]"
        case .integers(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .numbers(let v): return "[" + v.map(tomlNumber).joined(separator: ", ") + "]"
        case .layers(let v): return "[" + v.map(LayerStackConfig.inlineTable).joined(separator: ", ") + "]"
        }
    }
}

func tomlString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += String(format: "\\u%04X", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

func tomlNumber(_ v: Double) -> String {
    if v == v.rounded() && abs(v) < 1e15 { return String(format: "%.1f", v) }
    return "\(v)"
}

/// What a key accepts. `describe` is the "expected …" part of an error message.
public enum ConfigType: Equatable {
    case positiveInteger
    case nonNegativeInteger
    case integer
    case positiveNumber
    case nonNegativeNumber
    case fraction            // [0, 1)
    case openFraction        // (0, 1)
    case boolean
    case text
    case choice([String])
    /// One of the options or a list of distinct ones, in order.
    case blocks([String])
    case texts
    /// A list of positive integers (may be empty).
    case positiveIntegers
    /// A list of strings or of 0-based integers (column names or indices).
    case columns
    /// One of the words, or a list of non-negative numbers (one per class).
    case weights([String])
    /// "auto" or a positive integer.
    case autoOrPositiveInteger
    /// A positive integer (the shorthand's layer count) or an array of layer tables.
    case layerStack
    /// An array of layer tables, or none (empty: the shorthand keys give the stack).
    case optionalLayerStack

    var isLayerStack: Bool { self == .layerStack || self == .optionalLayerStack }

    public var describe: String {
        switch self {
        case .positiveInteger: return "a positive integer"
        case .nonNegativeInteger: return "a non-negative integer"
        case .integer: return "an integer"
        case .positiveNumber: return "a positive number"
        case .nonNegativeNumber: return "a non-negative number"
        case .fraction: return "a number in [0, 1)"
        case .openFraction: return "a number in (0, 1)"
        case .boolean: return "true or false"
        case .text: return "a string"
        case .choice(let options): return "one of " + options.map { "\"\($0)\"" }.joined(separator: ", ")
        case .blocks(let options):
            return "a list of distinct " + options.map { "\"\($0)\"" }.joined(separator: ", ") + " (or one of them)"
        case .texts: return "a list of strings (or one string)"
        case .positiveIntegers: return "a list of positive integers"
        case .columns: return "a list of column names or 0-based indices"
        case .weights(let words): return words.map { "\"\($0)\"" }.joined(separator: ", ") + " or a list of non-negative numbers"
        case .autoOrPositiveInteger: return "\"auto\" or a positive integer"
        case .layerStack:
            return "a positive integer (the shorthand's layer count) or a layer stack ([[model.layers]] tables: "
                + "lstm, gru, rnn, conv1d, dense, dropout)"
        case .optionalLayerStack:
            return "a layer stack (an array of tables: lstm, gru, rnn, conv1d, dense, dropout), "
                + "or [] for the shorthand keys"
        }
    }

    /// The value in canonical form, or nil when `raw` is not accepted.
    func accept(_ raw: ConfigValue) -> ConfigValue? {
        switch (self, raw) {
        case (.positiveInteger, .integer(let v)): return v > 0 ? raw : nil
        case (.nonNegativeInteger, .integer(let v)): return v >= 0 ? raw : nil
        case (.integer, .integer): return raw
        case (.positiveNumber, _), (.nonNegativeNumber, _), (.fraction, _), (.openFraction, _):
            let v: Double
            switch raw {
            case .integer(let i): v = Double(i)
            case .number(let d): v = d
            default: return nil
            }
            guard v.isFinite else { return nil }
            switch self {
            case .positiveNumber: return v > 0 ? .number(v) : nil
            case .nonNegativeNumber: return v >= 0 ? .number(v) : nil
            case .fraction: return v >= 0 && v < 1 ? .number(v) : nil
            default: return v > 0 && v < 1 ? .number(v) : nil
            }
        case (.boolean, .boolean): return raw
        case (.text, .text): return raw
        case (.choice(let options), .text(let v)): return options.contains(v) ? raw : nil
        case (.texts, .texts): return raw
        case (.blocks(let options), .text(let v)): return options.contains(v) ? .texts([v]) : nil
        case (.blocks(let options), .texts(let v)):
            return !v.isEmpty && Set(v).count == v.count && v.allSatisfy(options.contains) ? raw : nil
        case (.texts, .text(let v)): return .texts([v])
        case (.positiveIntegers, .integers(let v)): return v.allSatisfy { $0 > 0 } ? raw : nil
        case (.positiveIntegers, .integer(let v)): return v > 0 ? .integers([v]) : nil
        case (.columns, .texts): return raw
        case (.columns, .text(let v)): return .texts([v])
        case (.columns, .integers(let v)): return v.allSatisfy { $0 >= 0 } ? .texts(v.map(String.init)) : nil
        case (.columns, .integer(let v)): return v >= 0 ? .texts([String(v)]) : nil
        case (.weights(let words), .text(let v)): return words.contains(v) ? raw : nil
        case (.weights, .integers(let v)): return v.allSatisfy { $0 >= 0 } ? .numbers(v.map(Double.init)) : nil
        case (.weights, .numbers(let v)): return v.allSatisfy { $0 >= 0 && $0.isFinite } ? raw : nil
        case (.autoOrPositiveInteger, .text("auto")): return raw
        case (.autoOrPositiveInteger, .integer(let v)): return v > 0 ? raw : nil
        case (.layerStack, .integer(let v)): return v > 0 ? raw : nil
        case (.layerStack, .layers(let v)): return v.isEmpty ? nil : raw
        case (.optionalLayerStack, .layers): return raw
        case (.optionalLayerStack, .texts([])): return .layers([])
        default: return nil
        }
    }
}

public struct ConfigKey {
    public let section: String
    public let name: String
    public let type: ConfigType
    public let defaultValue: ConfigValue
    public let help: String
    public var path: String { "\(section).\(name)" }

    /// The model's stack keys of a kind that reads `[[model.layers]]`: `model.layers` (the stack, or the
    /// shorthand's count) and the shorthand's one recurrent entry (`model.cell`, `hidden`, `dropout`),
    /// with the kind's defaults. `holds` says what the kind's stack may hold ("; every entry keeps the steps").
    static func modelStack(cells: [RecurrentCell] = RecurrentCell.allCases, hidden: Int, layers: Int,
                           holds: String = "") -> [ConfigKey] {
        let rnn = cells.contains(.rnn) ? " (rnn: nn.RNN, tanh)" : ""
        return [
            ConfigKey(section: "model", name: "cell", type: .choice(cells.map(\.rawValue)), defaultValue: .text("lstm"),
                      help: "Shorthand stack: the recurrent cell\(rnn)."),
            ConfigKey(section: "model", name: "hidden", type: .positiveInteger, defaultValue: .integer(hidden),
                      help: "Shorthand stack: hidden width H of every layer."),
            ConfigKey(section: "model", name: "layers", type: .layerStack, defaultValue: .integer(layers),
                      help: "The layer stack ([[model.layers]] tables, README \"Layer stacks\"\(holds)), or the "
                          + "shorthand's count of stacked recurrent layers of model.cell and model.hidden."),
            ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0),
                      help: "Shorthand stack: dropout between recurrent layers during training (nn.LSTM's dropout)."),
        ]
    }
}

/// The config keys: those every experiment kind shares (`common`), and each kind's own, which the
/// kind declares (`ExperimentKind.configKeys`). A config's kind is its `model.kind`; `[data]`,
/// `[model]` and the other sections accept the common keys and the chosen kind's.
public enum ConfigSchema {
    /// Every section a config may have, in the order the resolved config writes them.
    public static let allSections = ["job", "data", "model", "training", "training.early_stopping", "loss", "optimizer",
                                     "lr_scheduler", "checkpoint", "metrics", "eval", "doctor"]

    /// The kind of a config that does not name one.
    public static let defaultKind = "char_lm"

    public static let common: [ConfigKey] = [
        ConfigKey(section: "job", name: "name", type: .text, defaultValue: .text("experiment"), help: "Name of the experiment, shown in logs."),
        ConfigKey(section: "job", name: "seed", type: .nonNegativeInteger, defaultValue: .integer(1234),
                  help: "Seeds initialization, dropout, shuffling: the same seed gives the same run on any number of ranks."),
        ConfigKey(section: "job", name: "run_dir", type: .text, defaultValue: .text(""),
                  help: "Where config, metrics and checkpoints go; empty means runs/<name>."),

        ConfigKey(section: "model", name: "kind", type: .choice(ExperimentRegistry.kinds.map(\.name)), defaultValue: .text(defaultKind),
                  help: "The experiment kind; it decides which other keys [data], [model], [training], [loss] and [eval] accept."),

        ConfigKey(section: "training", name: "batch_size", type: .positiveInteger, defaultValue: .integer(32),
                  help: "Global batch: lanes (stateful) or samples per step, shared out over the ranks."),
        ConfigKey(section: "training", name: "epochs", type: .autoOrPositiveInteger, defaultValue: .text("auto"),
                  help: "Passes over the training data; auto: 1, or no limit when training.max_steps is set. "
                      + "With both set, the first limit reached ends the run."),
        ConfigKey(section: "training", name: "max_steps", type: .nonNegativeInteger, defaultValue: .integer(0),
                  help: "Stop after this many optimizer steps; 0 means no limit."),
        ConfigKey(section: "training", name: "eval_every", type: .nonNegativeInteger, defaultValue: .integer(100),
                  help: "Validate every this many steps (and at the end); 0: only at the end."),
        ConfigKey(section: "training", name: "clip_norm", type: .nonNegativeNumber, defaultValue: .number(5),
                  help: "Clip the global gradient norm to this (clip_grad_norm_); 0 turns it off."),
        ConfigKey(section: "training", name: "clip_value", type: .nonNegativeNumber, defaultValue: .number(0),
                  help: "Clamp every gradient into [-v, v] (clip_grad_value_); 0 turns it off."),
        ConfigKey(section: "training", name: "on_nonfinite", type: .choice(["stop", "skip"]), defaultValue: .text("stop"),
                  help: "A step whose loss or gradient norm is NaN or infinite: stop the run, or skip its update (every rank alike) and go on."),
        ConfigKey(section: "training", name: "max_skipped_steps", type: .positiveInteger, defaultValue: .integer(10),
                  help: "skip: the run stops after this many skipped steps in a row."),
        ConfigKey(section: "training", name: "collective_timeout_s", type: .positiveNumber, defaultValue: .number(300),
                  help: "Multi-rank runs: end the job when a collective waits longer than this."),
        ConfigKey(section: "training", name: "workers", type: .autoOrPositiveInteger, defaultValue: .text("auto"),
                  help: "Model replicas on threads of each process, each with its share of the batch; auto: one per core this process may use (affinity, cgroup quota, ranks on the node, BLAS threads per worker), a divisor of the batch share."),

        ConfigKey(section: "training.early_stopping", name: "patience", type: .nonNegativeInteger, defaultValue: .integer(0),
                  help: "Stop after this many validations without improvement of `monitor` (Keras EarlyStopping); "
                      + "0: early stopping is off."),
        ConfigKey(section: "training.early_stopping", name: "monitor", type: .text, defaultValue: .text("val_loss"),
                  help: "The validation figure watched, as metrics.jsonl names it: val_loss or one of the kind's "
                      + "(val_accuracy, val_macro_f1, val_rmse, ...); it also picks the best checkpoint."),
        ConfigKey(section: "training.early_stopping", name: "mode", type: .choice(["auto", "min", "max"]), defaultValue: .text("auto"),
                  help: "Whether lower or higher is better; auto: higher for accuracy, F1 and match rates, lower for losses and errors."),
        ConfigKey(section: "training.early_stopping", name: "min_delta", type: .nonNegativeNumber, defaultValue: .number(0),
                  help: "A change of `monitor` smaller than this is no improvement."),
        ConfigKey(section: "training.early_stopping", name: "restore_best", type: .boolean, defaultValue: .boolean(true),
                  help: "The run ends with the weights of the best validation (the last checkpoint holds them; "
                      + "metrics.jsonl says so), also when it reaches its step limit first."),

        ConfigKey(section: "optimizer", name: "kind", type: .choice(OptimizerKind.allCases.map(\.rawValue)), defaultValue: .text("adam"),
                  help: "torch.optim's SGD, Adam, AdamW, RMSprop or Adagrad."),
        ConfigKey(section: "optimizer", name: "lr", type: .nonNegativeNumber, defaultValue: .number(2e-3), help: "Base learning rate."),
        ConfigKey(section: "optimizer", name: "weight_decay", type: .nonNegativeNumber, defaultValue: .number(0),
                  help: "L2 penalty (decoupled for adamw); when not given, 0, or 0.01 for adamw."),
        ConfigKey(section: "optimizer", name: "momentum", type: .nonNegativeNumber, defaultValue: .number(0), help: "sgd and rmsprop momentum."),
        ConfigKey(section: "optimizer", name: "nesterov", type: .boolean, defaultValue: .boolean(false), help: "sgd: Nesterov momentum."),
        ConfigKey(section: "optimizer", name: "beta1", type: .fraction, defaultValue: .number(0.9), help: "adam, adamw."),
        ConfigKey(section: "optimizer", name: "beta2", type: .fraction, defaultValue: .number(0.999), help: "adam, adamw."),
        ConfigKey(section: "optimizer", name: "eps", type: .positiveNumber, defaultValue: .number(1e-8),
                  help: "Denominator term; when not given, 1e-8, or 1e-10 for adagrad."),
        ConfigKey(section: "optimizer", name: "alpha", type: .fraction, defaultValue: .number(0.99), help: "rmsprop smoothing."),
        ConfigKey(section: "optimizer", name: "centered", type: .boolean, defaultValue: .boolean(false), help: "rmsprop: centered variant."),

        ConfigKey(section: "lr_scheduler", name: "kind", type: .choice(["constant", "step", "cosine", "plateau"]), defaultValue: .text("constant"),
                  help: "constant; step decay; cosine to min_lr; reduce-on-plateau of the validation loss."),
        ConfigKey(section: "lr_scheduler", name: "warmup_steps", type: .nonNegativeInteger, defaultValue: .integer(0),
                  help: "Linear warm-up from lr/warmup_steps to lr over this many steps (any kind)."),
        ConfigKey(section: "lr_scheduler", name: "step_size", type: .positiveInteger, defaultValue: .integer(1000), help: "step: steps between decays."),
        ConfigKey(section: "lr_scheduler", name: "gamma", type: .openFraction, defaultValue: .number(0.5), help: "step: decay factor."),
        ConfigKey(section: "lr_scheduler", name: "min_lr", type: .nonNegativeNumber, defaultValue: .number(0),
                  help: "cosine: the final rate; plateau: the floor."),
        ConfigKey(section: "lr_scheduler", name: "factor", type: .openFraction, defaultValue: .number(0.5), help: "plateau: rate multiplier on a plateau."),
        ConfigKey(section: "lr_scheduler", name: "patience", type: .nonNegativeInteger, defaultValue: .integer(2),
                  help: "plateau: validations without improvement before the rate drops."),
        ConfigKey(section: "lr_scheduler", name: "threshold", type: .nonNegativeNumber, defaultValue: .number(1e-4),
                  help: "plateau: relative improvement that counts."),

        ConfigKey(section: "checkpoint", name: "interval", type: .nonNegativeInteger, defaultValue: .integer(500),
                  help: "Write a checkpoint every this many steps (and at the end); 0: only at the end."),
        ConfigKey(section: "checkpoint", name: "every_seconds", type: .nonNegativeNumber, defaultValue: .number(600),
                  help: "Also write a checkpoint once this many seconds passed since the last one (rank 0's clock), "
                      + "whatever `checkpoint.interval` says; 0: off."),
        ConfigKey(section: "checkpoint", name: "keep_last", type: .positiveInteger, defaultValue: .integer(3), help: "Checkpoints kept; older ones are deleted."),
        ConfigKey(section: "checkpoint", name: "keep_best", type: .boolean, defaultValue: .boolean(true),
                  help: "Also write a checkpoint at every validation that improves training.early_stopping.monitor and keep "
                      + "the best one beside the last ones (RUN_DIR/best_checkpoint.json names it); eval, predict, ... use it."),

        ConfigKey(section: "metrics", name: "log_every", type: .positiveInteger, defaultValue: .integer(10),
                  help: "Write a metrics line (and a progress line) every this many steps."),
        ConfigKey(section: "metrics", name: "timeline", type: .boolean, defaultValue: .boolean(false),
                  help: "Every rank writes RUN_DIR/timeline-rank-R.json: each step's phases as a Chrome trace (chrome://tracing, ui.perfetto.dev)."),
        ConfigKey(section: "metrics", name: "tensorboard", type: .boolean, defaultValue: .boolean(false),
                  help: "Rank 0 also writes TensorBoard event files (every scalar of metrics.jsonl, the resolved config as text) under RUN_DIR/tensorboard."),
        ConfigKey(section: "metrics", name: "progress", type: .choice(ProgressStyle.allCases.map(\.rawValue)), defaultValue: .text("auto"),
                  help: "auto: a redrawn bar for one process on a terminal, plain lines under mpirun, Slurm or into a file; bar; lines; none."),

        ConfigKey(section: "doctor", name: "silence", type: .texts, defaultValue: .texts([]),
                  help: "Doctor rules that watch training whose warning is not wanted: frozen_learning, overfitting, "
                      + "chance_level, posterior_collapse (--no-doctor silences every warning)."),
    ]

    /// The common keys and the kind's, section by section (common keys first within a section).
    public static func keys(for kind: String) -> [ConfigKey] {
        let own = ExperimentRegistry.kind(named: kind)?.configKeys ?? []
        return allSections.flatMap { section in
            common.filter { $0.section == section } + own.filter { $0.section == section }
        }
    }

    /// The keys of a config of the default kind.
    public static var keys: [ConfigKey] { keys(for: defaultKind) }

    /// The sections a config of `kind` may have.
    public static func sections(for kind: String) -> [String] {
        let present = Set(keys(for: kind).map(\.section))
        return allSections.filter { present.contains($0) }
    }

    public static func key(_ path: String, kind: String = defaultKind) -> ConfigKey? { keys(for: kind).first { $0.path == path } }

    /// The kinds (other than `kind`) that accept `path`.
    static func kindsAccepting(_ path: String, other kind: String) -> [String] {
        ExperimentRegistry.kinds.map(\.name).filter { $0 != kind && key(path, kind: $0) != nil }
    }

    /// One table of keys with what they accept, their default and meaning.
    static func table(_ keys: [ConfigKey]) -> String {
        var rows = ["| key | accepts | default | meaning |", "| --- | --- | --- | --- |"]
        for key in keys { rows.append("| `\(key.path)` | \(key.type.describe) | `\(key.defaultValue)` | \(key.help) |") }
        return rows.joined(separator: "\n")
    }

    /// The README's tables: the common keys, then each kind's own (or only those of `kind`).
    public static func markdownTable(kind: String? = nil) -> String {
        let kinds = ExperimentRegistry.kinds.filter { kind == nil || $0.name == kind }
        var parts: [String] = []
        if kind == nil { parts.append("Every kind:\n\n" + table(common)) }
        for k in kinds {
            let own = allSections.flatMap { section in k.configKeys.filter { $0.section == section } }
            parts.append("`model.kind = \"\(k.name)\"` (\(k.summary)):\n\n" + table(kind == nil ? own : keys(for: k.name)))
        }
        return parts.joined(separator: "\n\n")
    }

    public static var markdownTable: String { markdownTable() }
}
