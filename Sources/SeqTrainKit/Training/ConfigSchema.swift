/// Every key an experiment config may hold: its section, type, default, what it accepts and what it
/// does. Validation, `--set` overrides, the resolved config written into the run directory, and the
/// README's key table all come from this one list.
public enum ConfigValue: Equatable, CustomStringConvertible {
    case integer(Int)
    case number(Double)
    case boolean(Bool)
    case text(String)
    case texts([String])

    public var description: String {
        switch self {
        case .integer(let v): return String(v)
        case .number(let v): return tomlNumber(v)
        case .boolean(let v): return v ? "true" : "false"
        case .text(let v): return tomlString(v)
        case .texts(let v): return "[" + v.map(tomlString).joined(separator: ", ") + "]"
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
    case texts

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
        case .texts: return "a list of strings (or one string)"
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
        case (.texts, .text(let v)): return .texts([v])
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
}

public enum ConfigSchema {
    public static let sections = ["job", "data", "model", "training", "optimizer", "lr_scheduler", "checkpoint", "metrics"]

    public static let keys: [ConfigKey] = [
        ConfigKey(section: "job", name: "name", type: .text, defaultValue: .text("experiment"), help: "Name of the experiment, shown in logs."),
        ConfigKey(section: "job", name: "seed", type: .nonNegativeInteger, defaultValue: .integer(1234),
                  help: "Seeds initialization, dropout, shuffling: the same seed gives the same run on any number of ranks."),
        ConfigKey(section: "job", name: "run_dir", type: .text, defaultValue: .text(""),
                  help: "Where config, metrics and checkpoints go; empty means runs/<name>."),

        ConfigKey(section: "data", name: "paths", type: .texts, defaultValue: .texts(["Sources/**/*.swift"]),
                  help: "Text files or globs (`*`, `?`, `**`), relative to the working directory, read as UTF-8 in sorted order."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.05),
                  help: "Share of the text, taken from its end, held out for validation."),
        ConfigKey(section: "data", name: "vocabulary", type: .text, defaultValue: .text(""),
                  help: "The characters of the vocabulary; empty means every character of the training text."),
        ConfigKey(section: "data", name: "unknown", type: .choice(["skip", "error"]), defaultValue: .text("skip"),
                  help: "Characters outside the vocabulary in validation, eval and prime text: skipped (and counted) or an error."),

        ConfigKey(section: "model", name: "kind", type: .choice(["char_lm"]), defaultValue: .text("char_lm"), help: "The experiment kind."),
        ConfigKey(section: "model", name: "cell", type: .choice(["lstm", "gru"]), defaultValue: .text("lstm"), help: "Recurrent cell."),
        ConfigKey(section: "model", name: "embedding", type: .positiveInteger, defaultValue: .integer(64), help: "Embedding width E."),
        ConfigKey(section: "model", name: "hidden", type: .positiveInteger, defaultValue: .integer(256), help: "Hidden width H of every layer."),
        ConfigKey(section: "model", name: "layers", type: .positiveInteger, defaultValue: .integer(2), help: "Stacked recurrent layers."),
        ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0),
                  help: "Dropout between recurrent layers during training (nn.LSTM's dropout)."),

        ConfigKey(section: "training", name: "batch_size", type: .positiveInteger, defaultValue: .integer(32),
                  help: "Global batch: lanes (stateful) or windows per step, shared out over the ranks."),
        ConfigKey(section: "training", name: "seq_len", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Steps of truncated back-propagation through time per batch."),
        ConfigKey(section: "training", name: "stateful", type: .boolean, defaultValue: .boolean(true),
                  help: "Carry each lane's state to its next batch (reset every epoch); false: independent shuffled windows."),
        ConfigKey(section: "training", name: "epochs", type: .positiveInteger, defaultValue: .integer(1), help: "Passes over the training text."),
        ConfigKey(section: "training", name: "max_steps", type: .nonNegativeInteger, defaultValue: .integer(0),
                  help: "Stop after this many optimizer steps; 0 means no limit."),
        ConfigKey(section: "training", name: "eval_every", type: .nonNegativeInteger, defaultValue: .integer(100),
                  help: "Validate every this many steps (and at the end); 0: only at the end."),
        ConfigKey(section: "training", name: "clip_norm", type: .nonNegativeNumber, defaultValue: .number(5),
                  help: "Clip the global gradient norm to this (clip_grad_norm_); 0 turns it off."),
        ConfigKey(section: "training", name: "clip_value", type: .nonNegativeNumber, defaultValue: .number(0),
                  help: "Clamp every gradient into [-v, v] (clip_grad_value_); 0 turns it off."),
        ConfigKey(section: "training", name: "collective_timeout_s", type: .positiveNumber, defaultValue: .number(300),
                  help: "Multi-rank runs: end the job when a collective waits longer than this."),

        ConfigKey(section: "optimizer", name: "kind", type: .choice(OptimizerKind.allCases.map(\.rawValue)), defaultValue: .text("adam"),
                  help: "torch.optim's SGD, Adam, AdamW, RMSprop or Adagrad."),
        ConfigKey(section: "optimizer", name: "lr", type: .positiveNumber, defaultValue: .number(2e-3), help: "Base learning rate."),
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
        ConfigKey(section: "checkpoint", name: "keep_last", type: .positiveInteger, defaultValue: .integer(3), help: "Checkpoints kept; older ones are deleted."),

        ConfigKey(section: "metrics", name: "log_every", type: .positiveInteger, defaultValue: .integer(10),
                  help: "Write a metrics line (and a progress line) every this many steps."),
    ]

    public static func key(_ path: String) -> ConfigKey? { keys.first { $0.path == path } }

    /// Every key with what it accepts, its default and its meaning: the README's table.
    public static var markdownTable: String {
        var rows = ["| key | accepts | default | meaning |", "| --- | --- | --- | --- |"]
        for key in keys { rows.append("| `\(key.path)` | \(key.type.describe) | `\(key.defaultValue)` | \(key.help) |") }
        return rows.joined(separator: "\n")
    }
}
