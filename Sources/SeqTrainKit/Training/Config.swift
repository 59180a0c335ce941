import Foundation
import TOMLKit

/// An experiment's resolved configuration: every key of `ConfigSchema`, from (in increasing
/// precedence) the defaults, the TOML file, and `--set section.key=value` overrides.
///
/// TOMLKit's decoder reports a type mismatch as "key not found", so the parsed table is walked and
/// validated here, and errors name the file, the line, the key path and what is accepted.
public struct ExperimentConfig: Equatable {
    public private(set) var values: [String: ConfigValue]
    /// Where the config came from, for messages.
    public let source: String
    /// `model.kind`: which keys beyond the common ones this config has.
    public let kind: String
    /// The keys of this kind, in the order the resolved config writes them.
    public let keys: [ConfigKey]
    /// Keys given that have no effect (a shorthand key beside a layer stack), for the run's first lines.
    public private(set) var warnings: [String] = []

    public init(defaultsFrom source: String = "defaults", kind: String = ConfigSchema.defaultKind) {
        self.kind = kind
        keys = ConfigSchema.keys(for: kind)
        values = Dictionary(uniqueKeysWithValues: keys.map { ($0.path, $0.defaultValue) })
        values["model.kind"] = .text(kind)
        self.source = source
    }

    public static func == (a: ExperimentConfig, b: ExperimentConfig) -> Bool { a.kind == b.kind && a.values == b.values }

    func key(_ path: String) -> ConfigKey? { keys.first { $0.path == path } }

    /// The `model.kind` the file or a `--set` asks for, checked before any other key (it decides
    /// which keys exist).
    static func requestedKind(_ table: TOMLTable, overrides: [String], source: String, lines: [String]) throws -> String {
        let names = ExperimentRegistry.kinds.map(\.name)
        let accepted = ConfigType.choice(names).describe
        for override in overrides.reversed() {
            let parts = override.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[0] == "model.kind" else { continue }
            let name = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            guard names.contains(name) else { throw SeqTrainError("--set \(override): model.kind: expected \(accepted), got \"\(name)\"") }
            return name
        }
        guard let value = table["model"]?.table?["kind"] else { return ConfigSchema.defaultKind }
        guard let name = value.string, names.contains(name) else {
            throw SeqTrainError("\(source):\(lineOf(section: "model", key: "kind", in: lines)): model.kind: expected \(accepted), got \(value.string.map { "\"\($0)\"" } ?? "a \(value.type)")")
        }
        return name
    }

    // MARK: loading

    public static func load(path: String, overrides: [String] = []) throws -> ExperimentConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the config file: \(unreadableReason(path))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SeqTrainError("\(path): the config file is not UTF-8 text")
        }
        return try parse(text, source: path, overrides: overrides)
    }

    public static func parse(_ text: String, source: String, overrides: [String] = []) throws -> ExperimentConfig {
        var explicit = Set<String>()
        let table: TOMLTable
        if let trap = TOMLGuard.firstTrap(in: text) {
            throw SeqTrainError("\(source):\(trap.line): not valid TOML: \(trap.problem)")
        }
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw SeqTrainError("\(source):\(error.source.begin.line): not valid TOML: \(error.description)")
        }
        let lines = text.components(separatedBy: "\n")
        let kind = try requestedKind(table, overrides: overrides, source: source, lines: lines)
        var config = ExperimentConfig(defaultsFrom: source, kind: kind)
        let sections = ConfigSchema.sections(for: kind)
        for section in table.keys.sorted() {
            let line = lineOf(section: section, key: nil, in: lines)
            let sectionList = sections.map { "[\($0)]" }.joined(separator: ", ")
            guard let entries = table[section]?.table else {
                throw SeqTrainError("\(source):\(line): \(section): a key outside any section; every key belongs under one of \(sectionList)")
            }
            guard sections.contains(section) else {
                let elsewhere = ConfigSchema.allSections.contains(section) ? " for model.kind = \"\(kind)\"" : ""
                throw SeqTrainError("\(source):\(line): unknown section [\(section)]\(elsewhere); the sections are \(sectionList)\(suggestion(section, among: sections))")
            }
            // A table inside a section ([training.early_stopping]) is a section of its own.
            var pending: [(section: String, entries: TOMLTable)] = [(section, entries)]
            while !pending.isEmpty {
                let (section, entries) = pending.removeFirst()
                for name in entries.keys.sorted() {
                    let path = "\(section).\(name)"
                    let where_ = "\(source):\(lineOf(section: section, key: name, in: lines))"
                    if let inner = entries[name]?.table, sections.contains(path) {
                        pending.append((path, inner))
                        continue
                    }
                    if sections.contains(path) {
                        let first = config.keys.first { $0.section == path }?.name ?? "patience"
                        throw SeqTrainError("\(where_): \(path) is a section, not a key; set its keys under [\(path)],"
                            + " e.g. \(path).\(first) = ...")
                    }
                    guard let key = config.key(path) else {
                        if let reason = outputActivationReason(path, kind: kind) {
                            throw SeqTrainError("\(where_): \(path): \(reason)")
                        }
                        let known = config.keys.filter { $0.section == section }.map(\.name)
                        let others = ConfigSchema.kindsAccepting(path, other: kind)
                        let belongs = others.isEmpty ? "" : " for model.kind = \"\(kind)\" (it is a key of \(others.map { "\"\($0)\"" }.joined(separator: ", ")))"
                        throw SeqTrainError("\(where_): \(path): unknown key\(belongs); [\(section)] accepts \(known.joined(separator: ", "))\(suggestion(name, among: known))")
                    }
                    guard let entry = entries[name] else { continue }
                    let raw: ConfigValue
                    if key.type.isLayerStack, let items = entry.array {
                        raw = .layers(try LayerStackConfig.parse(items, path: path, place: where_, file: source,
                                                                 lines: lines,
                                                                 optional: key.type == .optionalLayerStack))
                    } else {
                        raw = try configValue(entry, at: "\(where_): \(path)", expected: key.type)
                    }
                    try config.set(key, raw, at: where_)
                    explicit.insert(path)
                }
            }
        }
        for override in overrides {
            if let (key, specs) = try stackFieldOverride(override, kind: kind, current: config) {
                try config.set(key, .layers(specs), at: "--set \(override)")
                explicit.insert(key.path)
                continue
            }
            let (key, raw) = try parseOverride(override, kind: kind)
            try config.set(key, raw, at: "--set \(override)")
            explicit.insert(key.path)
        }
        config.applyKindDefaults(explicit: explicit)
        config.warnShorthandBesideStack(explicit: explicit)
        if config.text("job.run_dir").isEmpty { config.values["job.run_dir"] = .text("runs/\(config.text("job.name"))") }
        if config.boolean("optimizer.nesterov") && (config.number("optimizer.momentum") == 0 || config.text("optimizer.kind") != "sgd") {
            let line = lineOf(section: "optimizer", key: "nesterov", in: lines)
            throw SeqTrainError("\(source):\(line): optimizer.nesterov: needs optimizer.kind = \"sgd\" and optimizer.momentum > 0 (as torch.optim.SGD)")
        }
        // Values PyTorch takes without a word and that can only diverge: refused before training, naming the key.
        let momentum = config.number("optimizer.momentum"), lr = config.number("optimizer.lr")
        if momentum >= 1 {
            let line = lineOf(section: "optimizer", key: "momentum", in: lines)
            throw SeqTrainError("\(source):\(line): optimizer.momentum = \(momentum): at 1 or above the velocity never "
                + "decays and the steps grow without bound; use a value below 1 (0.9 is usual)")
        }
        let decay = config.number("optimizer.weight_decay")
        if decay * lr >= 1 {
            let line = lineOf(section: "optimizer", key: "weight_decay", in: lines)
            throw SeqTrainError("\(source):\(line): optimizer.weight_decay = \(decay) with optimizer.lr = \(lr): "
                + "lr × weight_decay = \(decay * lr) ≥ 1, so one step decays every weight past zero; "
                + "use weight_decay well below 1 / lr (1e-4 to 0.1 are usual)")
        }
        return config
    }

    /// `model.layers.K.FIELD=value` (or `model.encoder.K...`): the stack with that field replaced; nil
    /// for any other override.
    static func stackFieldOverride(_ text: String, kind: String,
                                   current config: ExperimentConfig) throws -> (ConfigKey, [LayerSpec])? {
        guard let equals = text.firstIndex(of: "=") else { return nil }
        let path = text[..<equals].trimmingCharacters(in: .whitespaces)
        let valueText = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard let (key, index, field) = LayerStackConfig.fieldPath(path, kind: kind) else { return nil }
        if let trap = TOMLGuard.firstTrap(in: "v = \(valueText)") {
            throw SeqTrainError("--set \(text): \(path): not a valid TOML value: \(trap.problem)")
        }
        // A bare word (padding=causal) is a string, as for any --set.
        let value: TOMLValueConvertible
        if let table = try? TOMLTable(string: "v = \(valueText)"), table.count == 1, let parsed = table["v"] {
            value = parsed
        } else {
            value = valueText
        }
        var specs: [LayerSpec] = []
        if case .layers(let given)? = config.values[key.path] { specs = given }
        return (key, try LayerStackConfig.replacing(field: field, of: index, in: specs, key: key, with: value,
                                                    text: text))
    }

    /// `section.key=value`: the value as TOML, or as a bare string when it is not TOML.
    static func parseOverride(_ text: String, kind: String) throws -> (ConfigKey, ConfigValue) {
        guard let equals = text.firstIndex(of: "=") else {
            throw SeqTrainError("--set \(text): expected section.key=value, e.g. --set model.hidden=128")
        }
        let path = text[..<equals].trimmingCharacters(in: .whitespaces)
        let valueText = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        guard let key = ConfigSchema.key(path, kind: kind) else {
            if ConfigSchema.sections(for: kind).contains(path) {
                let first = ConfigSchema.keys(for: kind).first { $0.section == path }?.name ?? "patience"
                throw SeqTrainError("--set \(text): \(path) is a section, not a key; set one of its keys, e.g. --set \(path).\(first)=...")
            }
            if let reason = outputActivationReason(path, kind: kind) {
                throw SeqTrainError("--set \(text): \(path): \(reason)")
            }
            let others = ConfigSchema.kindsAccepting(path, other: kind)
            let belongs = others.isEmpty ? "" : " for model.kind = \"\(kind)\" (it is a key of \(others.map { "\"\($0)\"" }.joined(separator: ", ")))"
            throw SeqTrainError("--set \(text): unknown key \(path)\(belongs)\(suggestion(path, among: ConfigSchema.keys(for: kind).map(\.path)))")
        }
        if let trap = TOMLGuard.firstTrap(in: "v = \(valueText)") {
            throw SeqTrainError("--set \(text): \(key.path): not a valid TOML value: \(trap.problem)")
        }
        if let table = try? TOMLTable(string: "v = \(valueText)"), table.count == 1, let value = table["v"] {
            if key.type.isLayerStack, let items = value.array {
                return (key, .layers(try LayerStackConfig.parse(items, path: key.path, place: "--set \(text)",
                                                                optional: key.type == .optionalLayerStack)))
            }
            return (key, try configValue(value, at: "--set \(text): \(key.path)", expected: key.type))
        }
        // A bare word is a string; what starts like a TOML string, list or table must be one.
        if let first = valueText.first, "\"'[{".contains(first) {
            throw SeqTrainError("""
                --set \(text): \(key.path): \(valueText.prefix(80)) is not a valid TOML value \
                (an unterminated string, list or table?); write it as in the config file, \
                e.g. --set '\(key.path)="a value"' or --set '\(key.path)=[1, 2]'
                """)
        }
        return (key, .text(valueText))
    }

    static func configValue(_ value: TOMLValueConvertible, at place: String, expected: ConfigType) throws -> ConfigValue {
        switch value.type {
        case .int: return .integer(value.int!)
        case .double: return .number(value.double!)
        case .bool: return .boolean(value.bool!)
        case .string: return .text(value.string!)
        case .array:
            let items = value.array!
            let types = Set(items.map { $0.type == .int ? "int" : $0.type == .double ? "double" : $0.type == .string ? "string" : "other" })
            if items.isEmpty {
                switch expected {
                case .positiveIntegers: return .integers([])
                case .weights: return .numbers([])
                default: return .texts([])
                }
            }
            if items.contains(where: { $0.type == .table }) {
                // The kinds that read a stack at model.`name`, quoted.
                func kinds(reading name: String) -> String {
                    ExperimentRegistry.kinds
                        .filter { $0.configKeys.contains { $0.type.isLayerStack && $0.name == name } }
                        .map { "\"\($0.name)\"" }.joined(separator: ", ")
                }
                throw SeqTrainError("\(place): expected \(expected.describe), got an array of tables; a layer stack "
                    + "is read at model.layers for model.kind = \(kinds(reading: "layers")) and at model.encoder / "
                    + "model.decoder for \(kinds(reading: "encoder")); give it there, or here use the shorthand "
                    + "keys (model.cell, model.hidden, model.layers)")
            }
            if types == ["string"] { return .texts(items.map { $0.string! }) }
            if expected == .columns, types.isSubset(of: ["string", "int"]) {
                return .texts(items.map { $0.string ?? String($0.int!) })
            }
            if types == ["int"], expected != .texts { return .integers(items.map { $0.int! }) }
            if types.isSubset(of: ["int", "double"]), case .weights = expected {
                return .numbers(items.map { $0.double ?? Double($0.int!) })
            }
            let item = items.first { !($0.type == .string && expected == .texts) }!
            throw SeqTrainError("\(place): expected \(expected.describe), got an array of \(item.type)")
        default:
            throw SeqTrainError("\(place): expected \(expected.describe), got a \(value.type)")
        }
    }

    mutating func set(_ key: ConfigKey, _ raw: ConfigValue, at place: String) throws {
        guard let value = key.type.accept(raw) else {
            throw SeqTrainError("\(place): \(key.path): expected \(key.type.describe), got \(raw)")
        }
        values[key.path] = value
    }

    /// Why a kind has no output activation to set, for a user who reaches for a softmax or a
    /// sigmoid on the output (nil: the key is simply unknown).
    static func outputActivationReason(_ path: String, kind: String) -> String? {
        guard ["model.output_activation", "model.activation", "model.softmax"].contains(path) else { return nil }
        switch kind {
        case "char_lm", "seq2seq":
            return "there is no output activation to set: the head gives logits and the cross-entropy applies "
                + "log-softmax itself, in a numerically stable form; a softmax in front of it squashes the "
                + "gradients and learning freezes; remove the key (`seqtrain "
                + (kind == "char_lm" ? "sample" : "generate") + "`"
                + " draws from the softmax)"
        case "autoencoder", "forecaster":
            return "there is no output activation to set: the head is linear, as a regression head is, and the "
                + "loss compares it with standardized targets (data.standardize); a sigmoid or a tanh there "
                + "would clip what the model can reach; remove the key"
        default: return nil
        }
    }

    /// The shorthand keys a layer stack replaces, when given beside one: named, not silently ignored.
    /// An encoder and a decoder stack replace them only when both are given (the shorthand sizes the other).
    mutating func warnShorthandBesideStack(explicit: Set<String>) {
        let stacks = keys.filter { $0.type.isLayerStack }
        guard !stacks.isEmpty, stacks.allSatisfy({ layerStack($0.path) != nil }) else { return }
        let section = stacks[0].section
        let shorthand = stacks.contains { $0.type == .layerStack } ? ["cell", "hidden", "dropout"]
            : ["cell", "hidden", "layers", "dropout"]
        let ignored = shorthand.map { "\(section).\($0)" }.filter(explicit.contains)
        guard !ignored.isEmpty else { return }
        let given = stacks.map(\.path).joined(separator: " and ")
        warnings.append(ignored.joined(separator: ", ") + " \(ignored.count == 1 ? "is" : "are") ignored: "
            + "\(given) \(stacks.count == 1 ? "gives the layer stack" : "give the layer stacks"), "
            + "and each of its layers its own sizes")
    }

    /// The layer stack given at `path` (nil: none given, the shorthand keys size the model).
    public func layerStack(_ path: String) -> [LayerSpec]? {
        guard case .layers(let specs)? = values[path], !specs.isEmpty else { return nil }
        return specs
    }

    /// The one recurrent entry the shorthand keys describe (`model.cell`, `hidden`, `layers`, `dropout`).
    public var shorthandEntry: LayerSpec? {
        guard case .text(let cellName)? = values["model.cell"], let cell = RecurrentCell(rawValue: cellName),
              case .integer(let hidden)? = values["model.hidden"] else { return nil }
        let layers: Int
        if case .integer(let count)? = values["model.layers"] { layers = count } else { layers = 1 }
        let dropout: Double
        if case .number(let p)? = values["model.dropout"] { dropout = p } else { dropout = 0 }
        return .recurrent(RecurrentSpec(cell: cell, hidden: hidden, layers: layers, dropout: dropout))
    }

    /// The model's layer stack: the one `model.layers` gives, or the shorthand's one recurrent
    /// entry (`model.cell`, `hidden`, `layers`, `dropout`); nil for a kind without either.
    public var modelStack: (specs: [LayerSpec], naming: StackNaming)? {
        switch values["model.layers"] {
        case .layers(let specs)?: return (specs, .indexed(prefix: "layers"))
        case .integer?: return shorthandEntry.map { ([$0], .shorthand) }
        default: return nil
        }
    }

    /// The model's layer stack, or an error naming the key when the config describes none.
    public func requiredModelStack() throws -> (specs: [LayerSpec], naming: StackNaming) {
        guard let stack = modelStack else {
            throw SeqTrainError("\(source): model.layers: no layer stack; give [[model.layers]] "
                + "or model.cell and model.hidden")
        }
        return stack
    }

    /// The keys that size the model's stack, for messages.
    public var modelStackKeys: String {
        if case .layers = value("model.layers") { return "model.layers" }
        return "model.hidden, model.layers"
    }

    /// Defaults that depend on another key, as PyTorch's: AdamW's weight decay, Adagrad's eps.
    mutating func applyKindDefaults(explicit: Set<String>) {
        let kind = text("optimizer.kind")
        if !explicit.contains("optimizer.weight_decay") { values["optimizer.weight_decay"] = .number(kind == "adamw" ? 0.01 : 0) }
        if !explicit.contains("optimizer.eps") { values["optimizer.eps"] = .number(kind == "adagrad" ? 1e-10 : 1e-8) }
    }

    /// The 1-based line where `section` (or `section.key`) is written, or where it is likely meant.
    static func lineOf(section: String, key: String?, in lines: [String]) -> Int {
        var current = ""
        var sectionLine = 1
        for (i, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                current = line.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")).components(separatedBy: "]").first ?? ""
                current = current.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
                if current == section { sectionLine = i + 1; if key == nil { return i + 1 } }
                continue
            }
            let assigned = line.components(separatedBy: "=").first?.trimmingCharacters(in: .whitespaces)
                .trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) ?? ""
            if let key {
                if (current == section && assigned == key) || (current.isEmpty && assigned == "\(section).\(key)") { return i + 1 }
            } else if current.isEmpty && assigned.hasPrefix("\(section).") || assigned == section {
                return i + 1
            }
        }
        return sectionLine
    }

    static func suggestion(_ name: String, among known: [String]) -> String {
        func distance(_ a: String, _ b: String) -> Int {
            let a = Array(a), b = Array(b)
            var row = Array(0...b.count)
            for i in 1...max(a.count, 1) where !a.isEmpty {
                var previous = row[0]
                row[0] = i
                for j in 1...max(b.count, 1) where !b.isEmpty {
                    let old = row[j]
                    row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                    previous = old
                }
            }
            return row[b.count]
        }
        guard let best = known.min(by: { distance(name, $0) < distance(name, $1) }), distance(name, best) <= 3 else { return "" }
        return " (did you mean \(best)?)"
    }

    // MARK: typed access

    public func value(_ path: String) -> ConfigValue {
        guard let v = values[path] else { preconditionFailure("no config key \(path) in ConfigSchema") }
        return v
    }

    public func integer(_ path: String) -> Int {
        if case .integer(let v) = value(path) { return v }
        preconditionFailure("\(path) is not an integer key")
    }

    public func number(_ path: String) -> Double {
        switch value(path) {
        case .number(let v): return v
        case .integer(let v): return Double(v)
        default: preconditionFailure("\(path) is not a number key")
        }
    }

    public func boolean(_ path: String) -> Bool {
        if case .boolean(let v) = value(path) { return v }
        preconditionFailure("\(path) is not a boolean key")
    }

    public func text(_ path: String) -> String {
        if case .text(let v) = value(path) { return v }
        preconditionFailure("\(path) is not a string key")
    }

    public func texts(_ path: String) -> [String] {
        if case .texts(let v) = value(path) { return v }
        preconditionFailure("\(path) is not a list key")
    }

    public func integers(_ path: String) -> [Int] {
        if case .integers(let v) = value(path) { return v }
        preconditionFailure("\(path) is not a list of integers")
    }

    /// Whether the config has `path` (the kind's keys and the common ones).
    public func has(_ path: String) -> Bool { values[path] != nil }

    public var runDirectory: String {
        let dir = text("job.run_dir")
        return dir.isEmpty ? "runs/\(text("job.name"))" : dir
    }

    /// Every key path with its resolved value, in schema order.
    public var resolvedPairs: [(String, ConfigValue)] { keys.map { ($0.path, value($0.path)) } }

    /// Every key, defaults filled in, as TOML: a run can be repeated from this text alone.
    public var resolvedTOML: String {
        var out = "# Resolved by seqtrain from \(source): every key, defaults filled in.\n"
        for section in ConfigSchema.sections(for: kind) {
            out += "\n[\(section)]\n"
            for key in keys where key.section == section {
                out += "\(key.name) = \(value(key.path))\n"
            }
        }
        return out
    }

    public var optimizerSettings: OptimizerSettings {
        var s = OptimizerSettings(OptimizerKind(rawValue: text("optimizer.kind"))!, learningRate: Float(number("optimizer.lr")))
        s.weightDecay = Float(number("optimizer.weight_decay"))
        s.momentum = Float(number("optimizer.momentum"))
        s.nesterov = boolean("optimizer.nesterov")
        s.beta1 = Float(number("optimizer.beta1"))
        s.beta2 = Float(number("optimizer.beta2"))
        s.epsilon = Float(number("optimizer.eps"))
        s.alpha = Float(number("optimizer.alpha"))
        s.centered = boolean("optimizer.centered")
        return s
    }
}
