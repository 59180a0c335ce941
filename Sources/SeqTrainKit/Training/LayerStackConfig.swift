import Foundation
import TOMLKit

/// `model.layers` (and `model.encoder` / `model.decoder`) as a layer stack: the TOML array of tables
/// a config gives, read into `LayerSpec`s with errors naming the entry and its field, and written back
/// as inline tables for the resolved config.
public enum LayerStackConfig {
    /// Fields each layer type accepts, in the order the resolved config writes them.
    public static let fields: [String: [String]] = [
        "lstm": ["hidden", "layers", "bidirectional", "dropout"],
        "gru": ["hidden", "layers", "bidirectional", "dropout"],
        "rnn": ["hidden", "layers", "bidirectional", "dropout", "nonlinearity"],
        "conv1d": ["filters", "kernel_size", "stride", "dilation", "padding", "activation"],
        "dense": ["units", "activation"],
        "dropout": ["p"],
    ]
    public static let types = ["lstm", "gru", "rnn", "conv1d", "dense", "dropout"]
    /// What `activation` accepts ("none" is the identity).
    static let activations = ["none", "relu", "tanh", "sigmoid", "gelu"]

    /// Refuses the first entry of `specs` (the stack at `key`) that gives fewer steps than it reads,
    /// for a model with an output at every input step (`purpose`: "a tagger labels").
    static func requireKeptSteps(_ specs: [LayerSpec], key: String, source: String, purpose: String) throws {
        guard let entry = specs.firstIndex(where: { !$0.keepsSteps }), case .conv1d(let c) = specs[entry] else {
            return
        }
        let why = c.stride != 1 ? "stride = \(c.stride) keeps one step in \(c.stride)"
            : "padding = \"valid\" drops \(c.span - 1) steps"
        throw SeqTrainError("\(source): \(key)[\(entry)] (conv1d): \(why), so its outputs no longer line up with "
            + "the input steps \(purpose); use stride = 1 with padding = \"same\" (sees both sides) or "
            + "padding = \"causal\" (sees the past only)")
    }

    /// The stack key, entry index and field a path such as `model.layers.1.hidden` reaches (nil: the
    /// path is not of that form, or names no stack key of `kind`).
    static func fieldPath(_ path: String, kind: String) -> (key: ConfigKey, index: Int, field: String)? {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, let index = Int(parts[2]),
              let key = ConfigSchema.key("\(parts[0]).\(parts[1])", kind: kind), key.type.isLayerStack else {
            return nil
        }
        return (key, index, parts[3])
    }

    /// Whether a stack field takes integers (a size), for sweeps over one.
    static func isIntegerField(_ field: String) -> Bool {
        ["hidden", "layers", "filters", "kernel_size", "stride", "dilation", "units"].contains(field)
    }

    /// `--set model.layers.1.hidden=64` (`text`): `specs`, the stack given in the file or by an earlier
    /// `--set`, with that field of that entry replaced by `value`, the entry checked as a written one is.
    static func replacing(field: String, of index: Int, in specs: [LayerSpec], key: ConfigKey,
                          with value: TOMLValueConvertible, text: String) throws -> [LayerSpec] {
        let place = "--set \(text): \(key.path)"
        guard !specs.isEmpty else {
            throw SeqTrainError("\(place): no layer stack to reach into (the shorthand keys give the model); "
                + "give the stack first, e.g. --set '\(key.path)=[{type = \"lstm\", hidden = 64}]', or set the "
                + "shorthand's keys (model.hidden)")
        }
        guard specs.indices.contains(index) else {
            throw SeqTrainError("\(place): entry \(index) does not exist; the stack has \(specs.count) "
                + "(0 to \(specs.count - 1))")
        }
        guard field != "type" else {
            throw SeqTrainError("\(place)[\(index)].type: an entry's type decides its fields, so it is not changed "
                + "alone; give the whole stack, e.g. --set '\(key.path)=[...]'")
        }
        guard let wrapper = try? TOMLTable(string: "e = \(inlineTable(specs[index]))"),
              let entryTable = wrapper["e"]?.table else {
            throw SeqTrainError("\(place)[\(index)]: the entry could not be written back as TOML")
        }
        entryTable[field] = value
        var replaced = specs
        replaced[index] = try entry(entryTable, at: { name in "\(place)[\(index)]" + (name.map { ".\($0)" } ?? "") })
        return replaced
    }

    /// The entries of an array of tables at `path`. Errors name `place` ("FILE:LINE" or "--set ..."),
    /// or the line of the entry's field when `file` and its `lines` are given.
    /// `optional`: an empty array is no stack (the shorthand keys give it).
    static func parse(_ items: TOMLArray, path: String, place: String, file: String? = nil,
                      lines: [String] = [], optional: Bool = false) throws -> [LayerSpec] {
        if items.isEmpty && optional { return [] }
        guard !items.isEmpty else {
            throw SeqTrainError("\(place): \(path): an empty layer stack; give at least one [[\(path)]] table, "
                + "or an integer for the shorthand (model.cell, model.hidden)")
        }
        return try items.enumerated().map { index, item in
            guard let table = item.table else {
                throw SeqTrainError("\(place): \(path)[\(index)]: expected a table such as "
                    + "{type = \"lstm\", hidden = 64}, got a \(item.type)")
            }
            return try entry(table, at: { field in
                var written = place
                if let file, let number = line(of: path, index: index, field: field, in: lines) {
                    written = "\(file):\(number)"
                }
                return "\(written): \(path)[\(index)]" + (field.map { ".\($0)" } ?? "")
            })
        }
    }

    /// One entry; `at(field)` names where it is written.
    static func entry(_ table: TOMLTable, at: (String?) -> String) throws -> LayerSpec {
        guard let typeValue = table["type"] else {
            throw SeqTrainError("\(at(nil)): no type; give type = one of \(quoted(types))")
        }
        guard let type = typeValue.string, let accepted = fields[type] else {
            throw SeqTrainError("\(at("type")): expected one of \(quoted(types)), got \(describe(typeValue))")
        }
        for name in table.keys.sorted() where name != "type" && !accepted.contains(name) {
            if name == "activation" && ["lstm", "gru"].contains(type) {
                let article = type == "lstm" ? "an" : "a"
                throw SeqTrainError("\(at(name)): \(article) \(type.uppercased())'s cell activation is tanh, "
                    + "as in PyTorch's "
                    + "nn.\(type.uppercased()); Keras's \(type.uppercased())(activation=\"relu\") is not built; "
                    + "use type = \"rnn\" with nonlinearity = \"relu\", or a dense layer with an activation after it")
            }
            throw SeqTrainError("\(at(name)): unknown field for type = \"\(type)\"; it accepts "
                + accepted.joined(separator: ", ") + ExperimentConfig.suggestion(name, among: accepted))
        }
        func integer(_ name: String, default value: Int?, minimum: Int = 1) throws -> Int {
            guard let raw = table[name] else {
                if let value { return value }
                throw SeqTrainError("\(at(name)): missing; a \(type) layer needs \(name) (a positive integer)")
            }
            guard let v = raw.int, v >= minimum else {
                throw SeqTrainError("\(at(name)): expected an integer ≥ \(minimum), got \(describe(raw))")
            }
            guard v <= 1 << 24 else {
                throw SeqTrainError("\(at(name)): \(v) is far beyond what trains on a CPU; use at most \(1 << 24)")
            }
            return v
        }
        func choice(_ name: String, _ options: [String], default value: String) throws -> String {
            guard let raw = table[name] else { return value }
            guard let v = raw.string, options.contains(v) else {
                throw SeqTrainError("\(at(name)): expected one of \(quoted(options)), got \(describe(raw))")
            }
            return v
        }
        func fraction(_ name: String, default value: Double?) throws -> Double {
            guard let raw = table[name] else {
                if let value { return value }
                throw SeqTrainError("\(at(name)): missing; a \(type) layer needs \(name) (a number in [0, 1))")
            }
            guard let v = raw.double ?? raw.int.map(Double.init), v >= 0, v < 1 else {
                throw SeqTrainError("\(at(name)): expected a number in [0, 1), got \(describe(raw))")
            }
            return v
        }
        func activation() throws -> Activation {
            if table["activation"]?.string == "softmax" {
                throw SeqTrainError("\(at("activation")): \"softmax\" is refused: the model's head gives logits and "
                    + "its loss applies (log-)softmax or sigmoid itself; a softmax inside the stack squashes what the "
                    + "head reads and one before the loss freezes learning; use \"relu\" or \"tanh\" here, and "
                    + "`seqtrain predict` for probabilities")
            }
            let name = try choice("activation", activations, default: "none")
            return name == "none" ? .identity : Activation(rawValue: name) ?? .identity
        }
        switch type {
        case "lstm", "gru", "rnn":
            let bidirectional: Bool
            if let raw = table["bidirectional"] {
                guard let v = raw.bool else {
                    throw SeqTrainError("\(at("bidirectional")): expected true or false, got \(describe(raw))")
                }
                bidirectional = v
            } else {
                bidirectional = false
            }
            let nonlinearity = try choice("nonlinearity", RecurrentNonlinearity.allCases.map(\.rawValue),
                                          default: "tanh")
            return .recurrent(RecurrentSpec(cell: RecurrentCell(rawValue: type) ?? .lstm,
                                            nonlinearity: RecurrentNonlinearity(rawValue: nonlinearity) ?? .tanh,
                                            hidden: try integer("hidden", default: nil),
                                            layers: try integer("layers", default: 1),
                                            bidirectional: bidirectional, dropout: try fraction("dropout", default: 0)))
        case "conv1d":
            let padding = try choice("padding", ConvolutionPadding.allCases.map(\.rawValue), default: "valid")
            let spec = ConvolutionSpec(filters: try integer("filters", default: nil),
                                       kernelSize: try integer("kernel_size", default: nil),
                                       stride: try integer("stride", default: 1),
                                       dilation: try integer("dilation", default: 1),
                                       padding: ConvolutionPadding(rawValue: padding) ?? .valid,
                                       activation: try activation())
            if spec.padding == .same && spec.stride > 1 {
                throw SeqTrainError("\(at("padding")): \"same\" needs stride = 1 (as PyTorch's padding=\"same\"); "
                    + "use \"causal\" or \"valid\" with stride = \(spec.stride)")
            }
            return .conv1d(spec)
        case "dense":
            return .dense(units: try integer("units", default: nil), activation: try activation())
        default:
            return .dropout(probability: try fraction("p", default: nil))
        }
    }

    /// The entry as a TOML inline table, every field written.
    static func inlineTable(_ spec: LayerSpec) -> String {
        func activationName(_ a: Activation) -> String { a == .identity ? "none" : a.rawValue }
        switch spec {
        case .recurrent(let r):
            var fields = "type = \"\(r.cell.rawValue)\", hidden = \(r.hidden), layers = \(r.layers), "
                + "bidirectional = \(r.bidirectional), dropout = \(tomlNumber(r.dropout))"
            if r.cell == .rnn { fields += ", nonlinearity = \"\(r.nonlinearity.rawValue)\"" }
            return "{\(fields)}"
        case .conv1d(let c):
            return "{type = \"conv1d\", filters = \(c.filters), kernel_size = \(c.kernelSize), stride = \(c.stride), "
                + "dilation = \(c.dilation), padding = \"\(c.padding.rawValue)\", "
                + "activation = \"\(activationName(c.activation))\"}"
        case .dense(let units, let activation):
            return "{type = \"dense\", units = \(units), activation = \"\(activationName(activation))\"}"
        case .dropout(let p):
            return "{type = \"dropout\", p = \(tomlNumber(p))}"
        }
    }

    static func quoted(_ words: [String]) -> String { words.map { "\"\($0)\"" }.joined(separator: ", ") }

    static func describe(_ value: TOMLValueConvertible) -> String {
        if let s = value.string { return "\"\(s.prefix(60))\"" }
        if let i = value.int { return String(i) }
        if let d = value.double { return "\(d)" }
        if let b = value.bool { return b ? "true" : "false" }
        return "a \(value.type)"
    }

    /// The 1-based line of field `field` of the `index`-th `[[path]]` table, or of that table's header
    /// when the field is not written in it (a missing field); nil when the stack is written inline.
    static func line(of path: String, index: Int, field: String?, in lines: [String]) -> Int? {
        var seen = -1
        var header: Int?
        for (i, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                if header != nil { return header }
                let written = line.split(separator: "#").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? line
                if written == "[[\(path)]]" {
                    seen += 1
                    if seen == index { header = i + 1 }
                }
                continue
            }
            guard header != nil, let field else { continue }
            let assigned = line.components(separatedBy: "=").first?.trimmingCharacters(in: .whitespaces) ?? ""
            if assigned == field { return i + 1 }
        }
        return header
    }
}
