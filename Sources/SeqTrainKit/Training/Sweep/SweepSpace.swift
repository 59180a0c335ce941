import Foundation
import TOMLKit

/// One `--param KEY=SPEC` of `seqtrain sweep`: a config key and the values its trials draw.
///
///     [64, 128, 256]          one of the choices (a choice may be a list: [[128], [256, 128]])
///     log(1e-4, 1e-2)         log-uniform in [low, high]
///     uniform(0, 0.5)         uniform in [low, high]
///     int(1, 4)               an integer in low...high, each equally likely
public struct SweepParameter: Equatable {
    public enum Distribution: Equatable {
        /// The choices as TOML value texts ("128", "[256, 128]", "\"relu\"").
        case choices([String])
        case logUniform(low: Double, high: Double)
        case uniform(low: Double, high: Double)
        case integers(low: Int, high: Int)
    }

    public let key: String
    public let distribution: Distribution
    /// The `--param` text as given, for messages.
    public let text: String

    /// The most choices one `--param` list may hold: a list longer than any sweep is a typo.
    public static let mostChoices = 10_000

    public init(key: String, distribution: Distribution, text: String) {
        self.key = key
        self.distribution = distribution
        self.text = text
    }

    /// Parses `KEY=SPEC`; the key is checked against the schema later (it depends on model.kind).
    public init(parsing text: String) throws {
        self.text = text
        let example = "e.g. --param optimizer.lr=log(1e-4, 1e-2) or --param model.hidden=[64, 128]"
        guard let equals = text.firstIndex(of: "=") else {
            throw SeqTrainError("--param \(text.prefix(200)): expected KEY=SPEC; \(example)")
        }
        key = text[..<equals].trimmingCharacters(in: .whitespaces)
        let spec = text[text.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        func refuse(_ problem: String, _ fix: String = example) -> SeqTrainError {
            SeqTrainError("--param \(text.prefix(200)): \(problem); \(fix)")
        }
        guard !key.isEmpty else { throw refuse("no key before =", "name a config key, \(example)") }
        if spec.hasPrefix("[") {
            distribution = .choices(try Self.choices(spec, refuse: refuse))
            return
        }
        guard let open = spec.firstIndex(of: "("), spec.hasSuffix(")") else {
            throw refuse("\(spec.isEmpty ? "no SPEC after =" : "\"\(spec.prefix(80))\" is not a SPEC")",
                         "give a list of choices [a, b, ...], log(low, high), uniform(low, high) or int(low, high)")
        }
        let name = spec[..<open].trimmingCharacters(in: .whitespaces)
        let arguments = spec[spec.index(after: open)..<spec.index(before: spec.endIndex)]
            .split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard ["log", "uniform", "int"].contains(name) else {
            throw refuse("\(name)(...) is not a distribution",
                         "use log(low, high), uniform(low, high) or int(low, high)")
        }
        guard arguments.count == 2 else {
            throw refuse("\(name) takes two numbers, low and high, got \(arguments.count)", "e.g. \(name)(1, 4)")
        }
        if name == "int" {
            guard let low = Int(arguments[0]), let high = Int(arguments[1]) else {
                throw refuse("int needs two integers, got \(arguments[0]) and \(arguments[1])", "e.g. int(1, 4)")
            }
            guard low < high else { throw refuse("int needs low < high, got \(low) and \(high)", "e.g. int(1, 4)") }
            // The count of integers (high - low + 1) must fit an Int for the draw.
            let (span, overflow) = high.subtractingReportingOverflow(low)
            guard !overflow, span < Int.max else {
                throw refuse("int(\(low), \(high)) spans more integers than can be counted", "give a narrower range")
            }
            distribution = .integers(low: low, high: high)
            return
        }
        guard let low = Double(arguments[0]), let high = Double(arguments[1]), low.isFinite, high.isFinite else {
            throw refuse("\(name) needs two finite numbers, got \(arguments[0]) and \(arguments[1])",
                         "e.g. \(name)(0, 0.5)")
        }
        guard low < high else {
            throw refuse("\(name) needs low < high, got \(low) and \(high)", "e.g. \(name)(0, 0.5)")
        }
        if name == "log" {
            guard low > 0 else {
                throw refuse("log needs 0 < low (a log-uniform draw), got low \(low)",
                             "give positive bounds, e.g. log(1e-4, 1e-2), or use uniform(\(low), \(high))")
            }
            distribution = .logUniform(low: low, high: high)
        } else {
            distribution = .uniform(low: low, high: high)
        }
    }

    /// The choices of a `[...]` SPEC, each as TOML value text.
    static func choices(_ spec: String, refuse: (String, String) -> SeqTrainError) throws -> [String] {
        let fix = "write the choices as a TOML list, e.g. [64, 128], [\"relu\", \"tanh\"] or [[128], [256, 128]]"
        if let trap = TOMLGuard.firstTrap(in: "v = \(spec)") { throw refuse("not a TOML list: \(trap.problem)", fix) }
        guard let table = try? TOMLTable(string: "v = \(spec)"), table.count == 1, let list = table["v"]?.array else {
            throw refuse("\(spec.prefix(80)) is not a TOML list (an unterminated list or string?)", fix)
        }
        var texts: [String] = []
        for item in list {
            guard let text = tomlText(item) else {
                throw refuse("a choice is a \(item.type); choices are numbers, strings, booleans or lists of them", fix)
            }
            texts.append(text)
        }
        guard !texts.isEmpty else { throw refuse("the list of choices is empty", fix) }
        guard texts.count <= mostChoices else {
            throw refuse("\(texts.count) choices, more than the \(mostChoices) a sweep can try", "give fewer choices")
        }
        return texts
    }

    /// A parsed TOML value written back as TOML text; nil for tables, dates and non-finite numbers.
    static func tomlText(_ value: TOMLValueConvertible) -> String? {
        switch value.type {
        case .int: return value.int.map { String($0) }
        case .double:
            guard let v = value.double, v.isFinite else { return nil }
            return tomlNumber(v)
        case .bool: return value.bool.map { $0 ? "true" : "false" }
        case .string: return value.string.map(tomlString)
        case .array:
            guard let items = value.array else { return nil }
            var parts: [String] = []
            for item in items {
                guard let text = tomlText(item) else { return nil }
                parts.append(text)
            }
            return "[" + parts.joined(separator: ", ") + "]"
        default: return nil
        }
    }

    /// The value of trial `trial` as TOML text: a pure function of (seed, parameter index, trial),
    /// so the same sweep draws the same trials, and a longer sweep extends a shorter one.
    /// `integerKey`: the key takes integers, so a log or uniform draw is rounded to one.
    public func value(trial: Int, index: Int, seed: UInt64, integerKey: Bool) -> String {
        let random = CounterRandom(seed: seed, purpose: .sweep)
        let stream = UInt64(index), counter = UInt64(trial)
        func unit() -> Double {
            // 53 random bits: uniform in [0, 1).
            let w = random.words(stream: stream, index: counter)
            return Double((UInt64(w.0) << 21) ^ (UInt64(w.1) >> 11)) / 9_007_199_254_740_992.0
        }
        func rounded(_ v: Double, _ low: Double, _ high: Double) -> String {
            if integerKey {
                return String(Self.integer(min(max(v.rounded(), low.rounded(.up)), high.rounded(.down))))
            }
            // Four significant digits: readable configs; the draw stays inside the bounds.
            let short = Double(String(format: "%.4g", v)) ?? v
            return tomlNumber(min(max(short, low), high))
        }
        switch distribution {
        case .choices(let texts):
            return texts[random.integer(below: texts.count, stream: stream, index: counter)]
        case let .logUniform(low, high):
            return rounded(exp(log(low) + unit() * (log(high) - log(low))), low, high)
        case let .uniform(low, high):
            return rounded(low + unit() * (high - low), low, high)
        case let .integers(low, high):
            // high - low + 1 fits (checked when parsed).
            return String(low + random.integer(below: high - low + 1, stream: stream, index: counter))
        }
    }

    /// A whole number as an Int, saturating where it does not fit (the key's check then refuses it).
    static func integer(_ whole: Double) -> Int {
        Int(exactly: whole) ?? (whole > 0 ? Int.max : Int.min)
    }

    /// Whether a log or uniform range holds an integer (for a key that takes integers).
    public var holdsAnInteger: Bool {
        switch distribution {
        case let .logUniform(low, high), let .uniform(low, high): return low.rounded(.up) <= high.rounded(.down)
        default: return true
        }
    }

    /// Values that show whether the key accepts this SPEC: every choice, or both bounds.
    public func probeValues(integerKey: Bool) -> [String] {
        switch distribution {
        case .choices(let texts): return texts
        case let .logUniform(low, high), let .uniform(low, high):
            guard integerKey else { return [tomlNumber(low), tomlNumber(high)] }
            return [String(Self.integer(low.rounded(.up))), String(Self.integer(high.rounded(.down)))]
        case let .integers(low, high): return [String(low), String(high)]
        }
    }
}
