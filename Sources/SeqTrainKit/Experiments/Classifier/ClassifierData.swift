import Foundation

/// Single-label (softmax cross-entropy, one class per sample) or multi-label (sigmoid binary
/// cross-entropy, an independent yes/no per label).
public enum ClassificationTask: String, Codable {
    case singleLabel = "single_label", multiLabel = "multi_label"
}

/// What a classifier's checkpoint records so that `eval` and `predict` read new data exactly as
/// training did: the task and class names, how samples are shaped, the features and the
/// standardization fitted on the training split.
public struct ClassifierPreprocessing: Codable, Equatable {
    public var task: ClassificationTask
    public var classes: [String]
    /// The labels as files write them, when data.class_names names integer ids ("0", "1", ...);
    /// nil: the classes are the labels as written.
    public var classLabels: [String]?
    public var layout: String          // SampleLayout
    public var features: String        // data.features, its blocks joined by "," ("raw", "rfft", "raw,stats")
    public var rfftBins: Int
    public var downsample: Int?        // data.downsample (nil in checkpoints from before the block)
    public var inputFeatures: Int      // F the model sees
    public var header: Bool
    public var labelColumns: [String]
    public var labelNames: [String]
    public var mean: [Float]?
    public var std: [Float]?
    /// The value columns by header name, in training order (nil: no header, or .npy inputs; and in
    /// checkpoints written before names were kept). New files are read by these names.
    public var inputColumns: [String]?
    /// data.format, data.input_field and data.label_field (nil in checkpoints from before JSON).
    public var format: String?
    public var inputField: String?
    public var labelField: String?
    public var inputArray: String?
    public var labelArray: String?

    var sampleLayout: SampleLayout { SampleLayout(rawValue: layout) ?? .sequence }

    /// The feature blocks, or nil when the names are not valid (a damaged checkpoint).
    var blocks: FeatureBlocks? {
        FeatureBlocks(names: features.split(separator: ",").map(String.init), rfftBins: rfftBins,
                      segments: downsample ?? 50)
    }

    /// The reader for files of this experiment (computed features read sequences first).
    func reader(inputsKey: String = "data.inputs", labelsKey: String = "data.labels") -> NumericReader {
        var reader = NumericReader()
        reader.header = header
        reader.labelColumns = labelColumns
        reader.labelNames = labelNames
        reader.inputColumns = inputColumns
        reader.format = format ?? "auto"
        reader.inputField = inputField ?? ""
        reader.labelField = labelField ?? ""
        reader.inputArray = inputArray ?? ""
        reader.labelArray = labelArray ?? ""
        reader.layout = blocks?.isIdentity ?? true ? sampleLayout : .sequence
        reader.inputsKey = inputsKey
        reader.labelsKey = labelsKey
        return reader
    }

    /// Raw samples → the feature blocks, their size checked before they are made.
    func featured(_ data: LabelledData, key: String) throws -> LabelledData {
        guard let blocks else { throw SeqTrainError("data.features = \"\(features)\": not a list of feature blocks") }
        if blocks.isIdentity { return data }
        guard let width = blocks.width(steps: data.steps, channels: data.features) else {
            throw SeqTrainError("\(key): \(data.steps) steps × \(data.features) channels make too many features; "
                + "lower data.rfft_bins or data.downsample, or drop the raw block")
        }
        let count = try MemoryCheck.product([data.count, width], what: "samples × features")
        try MemoryCheck.require(floats: count, what: "the features of data.features",
                                fix: "lower data.rfft_bins or data.downsample, or drop the raw block")
        return blocks.apply(data)
    }

    /// Raw samples → what the model sees: feature blocks, then standardization (when fitted).
    /// The caller has checked that the feature counts match.
    func transform(_ data: LabelledData, key: String) throws -> LabelledData {
        var out = try featured(data, key: key)
        if let mean, let std, mean.count == out.features { Standardization(mean: mean, std: std).apply(&out) }
        return out
    }

    /// Labels as the loss takes them. With data.class_names, files may give the ids or the names.
    func targets(_ labels: RawLabels, source: String) throws -> ClassTargets {
        try ClassTargets(labels, classes: classLabels ?? classes, task: task, source: source,
                         alsoNamed: classLabels == nil ? [] : classes)
    }

    /// data.class_names: integer class ids 0..<n get the names given, so that reports, predict and
    /// the confusion matrix say "A" where the files say 10. Every id in the labels must have a name.
    mutating func name(classIds names: [String], task: ClassificationTask) throws {
        guard !names.isEmpty else { return }
        guard task == .singleLabel else {
            throw SeqTrainError("data.class_names names the classes of single-label ids; multi-label columns are "
                + "named by their header or data.label_names")
        }
        if let repeated = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw SeqTrainError("data.class_names: \"\(repeated.prefix(40))\" is given twice; "
                + "every class needs its own name")
        }
        if let unnamed = classes.first(where: { Int($0).map { !(0..<names.count).contains($0) } ?? true }) {
            throw SeqTrainError("data.class_names gives \(names.count) names (ids 0 to \(names.count - 1)), but the "
                + "labels hold \"\(unnamed.prefix(40))\"; give a name for every class id, or leave data.class_names "
                + "empty to use the labels as written")
        }
        classLabels = (0..<names.count).map(String.init)
        classes = names
    }

    /// Classes in sorted order: numerically when every label is an integer, else as text.
    static func classNames(of labels: RawLabels) -> [String] {
        switch labels {
        case .matrix(_, let columns): return columns
        case .names(let names):
            let unique = Array(Set(names))
            if unique.allSatisfy({ Int($0) != nil }) { return unique.sorted { Int($0)! < Int($1)! } }
            return unique.sorted()
        }
    }
}

/// Labels as the loss takes them.
public enum ClassTargets {
    case ids([Int32])       // (N)
    case matrix([Float])    // (N, C)

    /// Maps labels as written onto the classes; a label the classes do not know is an error naming it.
    init(_ labels: RawLabels, classes: [String], task: ClassificationTask, source: String,
         alsoNamed aliases: [String] = []) throws {
        switch (labels, task) {
        case (.names(let names), .singleLabel):
            let index = Dictionary((Array(classes.enumerated()) + Array(aliases.enumerated())).map { ($1, Int32($0)) },
                                   uniquingKeysWith: { a, _ in a })
            self = .ids(try names.enumerated().map { i, name in
                guard let id = index[name] else {
                    throw SeqTrainError("\(source), sample \(i): label \"\(name.prefix(40))\" is not one of the \(classes.count) classes the model was trained on (\(classes.prefix(10).joined(separator: ", "))\(classes.count > 10 ? ", ..." : ""))")
                }
                return id
            })
        case (.matrix(let m, let columns), .multiLabel):
            guard columns.count == classes.count else {
                throw SeqTrainError("\(source): the labels have \(columns.count) columns, the model has \(classes.count) labels")
            }
            self = .matrix(m)
        case (.names, .multiLabel):
            throw SeqTrainError("\(source): one class per sample, but model.task = \"multi_label\" needs (N, C) 0/1 labels (one column per label)")
        case (.matrix, .singleLabel):
            throw SeqTrainError("\(source): (N, C) labels (several per sample) with model.task = \"single_label\"; use model.task = \"multi_label\" (sigmoid + binary cross-entropy) or give one class id per sample")
        }
    }

    /// Samples per class (single-label) or positives per label (multi-label).
    func counts(classes c: Int) -> [Double] {
        var out = [Double](repeating: 0, count: c)
        switch self {
        case .ids(let ids): for id in ids { out[Int(id)] += 1 }
        case .matrix(let m): for (i, v) in m.enumerated() { out[i % c] += Double(v) }
        }
        return out
    }

    /// The group used for stratified splits and balanced sampling: the class, or the label set.
    func group(_ sample: Int, classes c: Int) -> String {
        switch self {
        case .ids(let ids): return String(ids[sample])
        case .matrix(let m): return (0..<c).map { m[sample * c + $0] > 0.5 ? "1" : "0" }.joined()
        }
    }
}

/// A seeded, stratified split: the samples are ordered by group (class or label set) and, within a
/// group, by a permutation of the seed; then every k-th position goes to validation, so each group
/// keeps its share up to one sample and the split is exactly `fraction` of the data.
func stratifiedSplit(count n: Int, groups: [String], fraction: Double, seed: UInt64) -> (train: [Int], validation: [Int]) {
    let random = CounterRandom(seed: seed, purpose: .shuffle)
    let keys = random.permutation(n, stream: 0xFFFF_0001)
    var rank = [Int](repeating: 0, count: n)
    for (position, sample) in keys.enumerated() { rank[sample] = position }
    let order = (0..<n).sorted { a, b in groups[a] != groups[b] ? groups[a] < groups[b] : rank[a] < rank[b] }
    var train: [Int] = [], validation: [Int] = []
    for (i, sample) in order.enumerated() {
        if Int((Double(i + 1) * fraction).rounded(.down)) > Int((Double(i) * fraction).rounded(.down)) {
            validation.append(sample)
        } else {
            train.append(sample)
        }
    }
    return (train.sorted(), validation.sorted())
}

/// A seeded split of unlabelled items: `stratifiedSplit` with one group.
func seededSplit(count n: Int, fraction: Double, seed: UInt64) -> (train: [Int], validation: [Int]) {
    stratifiedSplit(count: n, groups: [String](repeating: "", count: n), fraction: fraction, seed: seed)
}
