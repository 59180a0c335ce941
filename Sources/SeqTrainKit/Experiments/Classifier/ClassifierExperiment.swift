import Foundation

/// The network of a classifier kind: a recurrent stack with pooling over sequences, or an MLP over
/// feature vectors. Both map a batch to logits (B, C) and take their gradient back.
enum ClassifierNetwork {
    case sequence(SequenceClassifier)
    case mlp(MLPClassifier)

    var model: TrainableModel {
        switch self {
        case .sequence(let m): return m
        case .mlp(let m): return m
        }
    }

    /// logits (B, C) of x (B, T, F) with valid `lengths`.
    func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, features F: Int, lengths: [Int], dropout: DropoutContext?) -> UnsafePointer<Float> {
        switch self {
        case .sequence(let m):
            m.forward(x, batch: B, steps: T, lengths: lengths, dropout: dropout)
            return UnsafePointer(m.logits.pointer)
        case .mlp(let m):
            m.forward(x, rows: B, dropout: dropout)
            return UnsafePointer(m.logits.pointer)
        }
    }

    /// The network of `config`'s kind, after checking that its parameters (values, gradients and
    /// two optimizer buffers) fit in memory.
    static func make(_ config: ExperimentConfig, inputFeatures: Int, classes: Int, storedValues: Int? = nil) throws -> ClassifierNetwork {
        let fix = "lower the model's sizes"
        switch config.kind {
        case "mlp_classifier":
            let widths = [inputFeatures] + config.integers("model.hidden_sizes") + [classes]
            let weights = try (0..<(widths.count - 1)).map { k in
                try MemoryCheck.sum([try MemoryCheck.product([widths[k], widths[k + 1]], what: "model.hidden_sizes"), widths[k + 1]],
                                    what: "model.hidden_sizes")
            }
            let count = try MemoryCheck.sum(weights, what: "model.hidden_sizes")
            try MemoryCheck.requireStored(storedValues, estimate: count)
            try MemoryCheck.requireMatrixDimensions(widths.map { ($0, "a layer width (model.hidden_sizes, the input features or the classes)") })
            try MemoryCheck.require(floats: try MemoryCheck.product([count, 4], what: "model.hidden_sizes"),
                                    what: "an MLP of widths \(widths)", fix: fix)
        case "sequence_classifier":
            let (stack, _) = try config.requiredModelStack()
            let what = config.modelStackKeys
            let body = try LayerSpec.parameterCount(stack, input: inputFeatures, what: what)
            let top = stack.reduce(inputFeatures) { $1.outputWidth(input: $0) }
            let count = try MemoryCheck.sum([body, try MemoryCheck.product([top + 1, classes], what: what)], what: what)
            try MemoryCheck.requireStored(storedValues, estimate: count)
            try MemoryCheck.requireMatrixDimensions([(count, "the parameters of \(what)"),
                                                     (inputFeatures, "the input features")])
            try MemoryCheck.require(floats: try MemoryCheck.product([count, 4], what: what),
                                    what: "a model of \(count) parameters (\(what))", fix: fix)
        default:
            throw SeqTrainError("model.kind = \"\(config.kind)\" is not a classifier kind")
        }
        if config.kind == "mlp_classifier" {
            let widths = [inputFeatures] + config.integers("model.hidden_sizes") + [classes]
            return .mlp(MLPClassifier(widths: widths, activation: Activation(rawValue: config.text("model.activation"))!,
                                      dropout: Float(config.number("model.dropout")), layerStride: 3))
        }
        let (stack, naming) = try config.requiredModelStack()
        return .sequence(SequenceClassifier(stack: stack, naming: naming, inputSize: inputFeatures, labels: classes,
                                            pooling: Pooling(rawValue: config.text("model.pooling")) ?? .max))
    }

}

/// The loss of a classifier, on logits: softmax cross-entropy or sigmoid binary cross-entropy.
enum ClassifierLoss {
    case crossEntropy(CrossEntropyLoss)
    case binaryCrossEntropy(BinaryCrossEntropyLoss)

    func evaluate(_ dLogits: UnsafeMutablePointer<Float>?, logits: UnsafePointer<Float>, targets: ClassBatchTargets,
                  mask: UnsafePointer<Float>, rows: Int, classes: Int) throws -> LossTotal {
        switch (self, targets) {
        case (.crossEntropy(let ce), .ids(let ids)):
            return try ids.withUnsafeBufferPointer {
                try ce.evaluate(dLogits, logits: logits, targets: $0.baseAddress!, mask: mask, rows: rows, classes: classes)
            }
        case (.binaryCrossEntropy(let bce), .matrix(let m)):
            return try m.withUnsafeBufferPointer {
                try bce.evaluate(dLogits, logits: logits, targets: $0.baseAddress!, mask: mask, rows: rows, classes: classes)
            }
        default:
            throw SeqTrainError("internal: targets do not match the loss")
        }
    }
}

/// One batch's targets, for the rows of this rank.
enum ClassBatchTargets {
    case ids([Int32])
    case matrix([Float])
}

/// Classifier kinds: `sequence_classifier` (LSTM/GRU over (N, T, F), pooled) and `mlp_classifier`
/// (an MLP over feature vectors, raw or spectral), single- or multi-label. Every rank holds the
/// samples; each global batch is a slice of one permutation of (seed, epoch) (or of a balanced
/// draw), and rank r takes rows shard(batch, r) of it, so the rank count changes nothing.
public final class ClassifierExperiment: Experiment {
    public let config: ExperimentConfig
    public let rank: Int, world: Int
    public let preprocessing: ClassifierPreprocessing
    /// Training and validation samples, transformed (features, standardization).
    public let training: LabelledData
    public let validation: LabelledData?
    let trainingTargets: ClassTargets
    let validationTargets: ClassTargets?
    let network: ClassifierNetwork
    /// Whether training steps need dropout keys (dropout somewhere in the model).
    var usesDropout: Bool {
        if let (stack, _) = config.modelStack, config.kind == "sequence_classifier" {
            return LayerSpec.usesDropout(stack)
        }
        return config.number("model.dropout") > 0
    }
    let loss: ClassifierLoss
    public let rows: Range<Int>
    let batchSize: Int
    var epochOrder: [Int] = []
    var orderEpoch = -1
    /// The training data as read, before transformation: what rank agreement and resume compare.
    public let dataFingerprint: UInt64
    /// Where the training samples came from (with the arrays taken from an archive).
    let dataSource: String

    public private(set) var diagnoses: [String] = []
    /// Steps a recurrent layer reads (0: the model reads vectors), for the chance-level warning.
    let recurrentSteps: Int
    /// The last validation's counts and the watch for a model at chance level.
    var lastCounts: ClassificationCounts?
    var chance = ChanceLevelDetector()

    public var trainableModel: TrainableModel { network.model }
    public var classes: [String] { preprocessing.classes }
    var multiLabel: Bool { preprocessing.task == .multiLabel }

    public init(config: ExperimentConfig, rank: Int = 0, world: Int = 1) throws {
        self.config = config
        self.rank = rank
        self.world = world
        (batchSize, rows) = try batchShare(config, rank: rank, world: world)
        try Self.refuseKnownMistakes(config)

        let layout: SampleLayout = config.kind == "mlp_classifier" ? .vector : .sequence
        var settings = ClassifierPreprocessing(
            task: .singleLabel, classes: [], layout: layout.rawValue,
            features: config.texts("data.features").joined(separator: ","),
            rfftBins: config.integer("data.rfft_bins"), downsample: config.integer("data.downsample"), inputFeatures: 0,
            header: config.boolean("data.header"),
            labelColumns: config.texts("data.label_columns"), labelNames: config.texts("data.label_names"), mean: nil, std: nil)
        settings.format = config.text("data.format")
        settings.inputField = config.text("data.input_field")
        settings.labelField = config.text("data.label_field")
        settings.inputArray = config.text("data.input_array")
        settings.labelArray = config.text("data.label_array")
        for key in ["data.rfft_bins", "data.downsample"] where config.integer(key) > 65_536 {
            throw SeqTrainError("\(key) = \(config.integer(key)): at most 65536 per channel; "
                + "16 to 64 frequency bins or segments describe a curve's shape")
        }
        guard !config.texts("data.inputs").isEmpty else {
            throw SeqTrainError("data.inputs: no input files; give .npy, .csv or .tsv files (for example `seqtrain data curves --out data/curves` makes a labelled set)")
        }
        let labelFiles = config.texts("data.labels")
        let archives = config.text("data.format") == "npz"
            || config.texts("data.inputs").contains { $0.lowercased().hasSuffix(".npz") }
        if labelFiles.isEmpty && settings.labelColumns.isEmpty && config.text("data.label_field").isEmpty && !archives {
            throw SeqTrainError("data.labels: no labels; give label files (data.labels), the label columns of the "
                + "inputs (data.label_columns), the label field of JSON records (data.label_field) or .npz inputs "
                + "with a label array")
        }
        let all = try settings.reader().read(inputs: config.texts("data.inputs"), labels: labelFiles)
        dataFingerprint = all.fingerprint
        dataSource = all.source
        settings.inputColumns = all.columns
        guard let rawLabels = all.labels else { throw SeqTrainError("data.labels: no labels were read") }

        // The task: from the labels' shape unless the config says it.
        let inferred: ClassificationTask = { if case .matrix = rawLabels { return .multiLabel } else { return .singleLabel } }()
        let requested = config.text("model.task")
        settings.task = requested == "auto" ? inferred : ClassificationTask(rawValue: requested)!
        settings.classes = ClassifierPreprocessing.classNames(of: rawLabels)
        try settings.name(classIds: config.texts("data.class_names"), task: settings.task)
        guard settings.classes.count >= (settings.task == .singleLabel ? 2 : 1) else {
            throw SeqTrainError("data.labels: the training labels hold \(settings.classes.count) class(es) (\(settings.classes.joined(separator: ", "))); a classifier needs at least 2")
        }
        let allTargets = try settings.targets(rawLabels, source: labelFiles.first ?? all.source)
        try Self.checkLossForTask(config, task: settings.task)

        // Validation: given files, or a stratified share of the samples.
        var trainPart = all, validationPart: LabelledData?
        var trainTargets = allTargets
        var heldTargets: ClassTargets?
        let validationInputs = config.texts("data.validation_inputs")
        if !validationInputs.isEmpty {
            var reader = settings.reader(inputsKey: "data.validation_inputs", labelsKey: "data.validation_labels")
            reader.labelColumns = settings.labelColumns
            let held = try reader.read(inputs: validationInputs, labels: config.texts("data.validation_labels"))
            guard let heldLabels = held.labels else { throw SeqTrainError("data.validation_labels: no labels for the validation inputs") }
            guard held.features == all.features || layout == .vector && held.steps * held.features == all.steps * all.features else {
                throw SeqTrainError("data.validation_inputs: samples have \(held.features) features, the training inputs \(all.features)")
            }
            heldTargets = try settings.targets(heldLabels, source: held.source)
            validationPart = held
        } else if config.number("data.validation_fraction") > 0 {
            let groups = (0..<all.count).map { allTargets.group($0, classes: settings.classes.count) }
            let split = stratifiedSplit(count: all.count, groups: groups, fraction: config.number("data.validation_fraction"),
                                        seed: UInt64(config.integer("job.seed")))
            guard !split.train.isEmpty else { throw SeqTrainError("data.validation_fraction leaves no training samples") }
            trainPart = all.subset(split.train)
            trainTargets = try settings.targets(trainPart.labels!, source: all.source)
            if !split.validation.isEmpty {
                let held = all.subset(split.validation)
                validationPart = held
                heldTargets = try settings.targets(held.labels!, source: all.source)
            }
        }

        // Features, then standardization fitted on the training split only.
        let featured = try settings.featured(trainPart, key: "data.features")
        if config.boolean("data.standardize") {
            let fitted = Standardization(fitting: featured)
            settings.mean = fitted.mean
            settings.std = fitted.std
        }
        settings.inputFeatures = featured.features
        preprocessing = settings
        var transformed = featured
        if let mean = settings.mean, let std = settings.std { Standardization(mean: mean, std: std).apply(&transformed) }
        training = transformed
        trainingTargets = trainTargets
        validation = try validationPart.map { try settings.transform($0, key: "data.features") }
        validationTargets = heldTargets

        let classCount = settings.classes.count
        let counts = trainTargets.counts(classes: classCount)
        loss = try Self.makeLoss(config, task: settings.task, counts: counts, samples: trainPart.count)
        // The batch's recurrent buffers (gates, states, their gradients: about 8 of width 4H per
        // layer and step) for the longest sequence.
        if layout == .sequence && settings.features == "raw" {
            let (stack, _) = try config.requiredModelStack()
            let what = config.modelStackKeys
            try MemoryCheck.requireStackBuffers(stack, input: settings.inputFeatures, rows: rows.count,
                                                steps: training.steps, what: what, source: config.source,
                                                shortest: training.lengths.min() ?? training.steps,
                                                otherFix: ", or use data.features = \"rfft\"")
        }
        network = try ClassifierNetwork.make(config, inputFeatures: settings.inputFeatures, classes: classCount)
        recurrentSteps = layout == .sequence && settings.features == "raw" ? training.steps : 0
        diagnoses = Self.diagnose(config, preprocessing: settings, counts: counts, samples: trainPart.count,
                                  steps: recurrentSteps)
    }

    /// Probable mistakes: badly unbalanced classes left unweighted, a long sequence read by a
    /// recurrent layer whose last state alone is used.
    static func diagnose(_ config: ExperimentConfig, preprocessing: ClassifierPreprocessing, counts: [Double], samples: Int, steps: Int) -> [String] {
        var found: [String] = []
        let classes = preprocessing.classes
        if preprocessing.task == .singleLabel, config.value("loss.class_weights") == .text("none"), config.text("data.sampler") == "shuffle",
           let most = counts.indices.max(by: { counts[$0] < counts[$1] }), let least = counts.indices.min(by: { counts[$0] < counts[$1] }),
           counts[least] > 0, counts[most] >= 10 * counts[least] {
            found.append(String(format: "the classes are badly unbalanced: \"%@\" has %.0f training samples, \"%@\" %.0f (%.0f to 1), and nothing weights them; the model can score well by ignoring the rare classes. Set loss.class_weights = \"balanced\" or data.sampler = \"balanced\", and judge it by macro F1",
                                classes[most], counts[most], classes[least], counts[least], counts[most] / counts[least]))
        }
        if preprocessing.task == .multiLabel, config.value("loss.pos_weight") == .text("none"), samples > 0,
           let rare = counts.indices.min(by: { counts[$0] < counts[$1] }), counts[rare] > 0, counts[rare] * 20 <= Double(samples) {
            found.append(String(format: "label \"%@\" is positive in %.0f of %d training samples (%.1f%%) and loss.pos_weight is \"none\": predicting it never costs little. Set loss.pos_weight = \"balanced\"",
                                classes[rare], counts[rare], samples, 100 * counts[rare] / Double(samples)))
        }
        if steps >= 500 && config.text("model.pooling") == "last" {
            found.append("a recurrent layer reads \(steps) steps and only its last state is used (model.pooling = \"last\"): the gradient has to travel back through all \(steps) steps and fades on the way, so the early steps barely train. Use model.pooling = \"max\" or \"mean\", shorter windows, or data.features = \"rfft\" with an MLP")
        }
        return found
    }

    // MARK: what users get wrong

    /// Requests that are certainly wrong, refused with the reason and the fix.
    static func refuseKnownMistakes(_ config: ExperimentConfig) throws {
        switch config.text("model.output_activation") {
        case "none": break
        case let activation:
            throw SeqTrainError("model.output_activation = \"\(activation)\": the loss takes raw logits and applies the \(activation == "softmax" ? "softmax" : "sigmoid") itself, in a numerically stable form; a \(activation) in front of it squashes the gradients (saturated outputs stop learning). Leave it \"none\"; `seqtrain predict` reports probabilities")
        }
        if config.text("loss.kind") == "mse" {
            throw SeqTrainError("loss.kind = \"mse\": sigmoid + mean squared error for classification has a vanishing gradient exactly when the model is confidently wrong (σ′ ≈ 0), so it learns slowly or not at all, worst on unbalanced classes. Use loss.kind = \"auto\": softmax cross-entropy for one label per sample, sigmoid binary cross-entropy for several")
        }
    }

    static func checkLossForTask(_ config: ExperimentConfig, task: ClassificationTask) throws {
        let kind = config.text("loss.kind")
        if kind == "cross_entropy" && task == .multiLabel {
            throw SeqTrainError("loss.kind = \"cross_entropy\" with multi-label targets: a softmax makes the labels compete for one unit of probability, so a sample cannot be both of two labels. Use loss.kind = \"bce\" (or \"auto\"): one sigmoid yes/no per label")
        }
        if kind == "bce" && task == .singleLabel {
            throw SeqTrainError("loss.kind = \"bce\" with one class per sample: use \"cross_entropy\" (or \"auto\"), or model.task = \"multi_label\" with (N, C) 0/1 labels")
        }
        if task == .multiLabel {
            if config.number("loss.label_smoothing") > 0 {
                throw SeqTrainError("loss.label_smoothing applies to softmax cross-entropy (one label per sample); multi-label targets use pos_weight instead")
            }
            if config.value("loss.class_weights") != .text("none") {
                throw SeqTrainError("loss.class_weights applies to single-label cross-entropy; for multi-label targets use loss.pos_weight (\"balanced\" or one weight per label)")
            }
        } else if config.value("loss.pos_weight") != .text("none") {
            throw SeqTrainError("loss.pos_weight applies to multi-label binary cross-entropy; for one class per sample use loss.class_weights")
        }
    }

    static func makeLoss(_ config: ExperimentConfig, task: ClassificationTask, counts: [Double], samples: Int) throws -> ClassifierLoss {
        let c = counts.count
        func weights(_ key: String, balanced: () -> [Float]) throws -> [Float]? {
            switch config.value(key) {
            case .text("balanced"): return balanced()
            case .numbers(let list):
                guard list.count == c else { throw SeqTrainError("\(key): \(list.count) weights for \(c) classes; give one per class, in the order of the class list (\(config.kind) sorts class names)") }
                return list.map { Float($0) }
            default: return nil
            }
        }
        switch task {
        case .singleLabel:
            // scikit-learn's "balanced": n_samples / (n_classes · n_c).
            let w = try weights("loss.class_weights") { counts.map { $0 > 0 ? Float(Double(samples) / (Double(c) * $0)) : 0 } }
            return .crossEntropy(try CrossEntropyLoss(classWeights: w, labelSmoothing: Float(config.number("loss.label_smoothing"))))
        case .multiLabel:
            // negatives / positives per label, as PyTorch's documentation suggests.
            let w = try weights("loss.pos_weight") { counts.map { $0 > 0 ? Float((Double(samples) - $0) / $0) : 1 } }
            return .binaryCrossEntropy(try BinaryCrossEntropyLoss(positiveWeights: w))
        }
    }

    // MARK: Experiment

    public var dataMismatchHint: String { "its training data differs from rank 0's; every rank must read the same data.inputs and data.labels" }
    public var unitName: String { "samples" }
    public var batchesPerEpoch: Int { batchCount(training.count, batchSize: batchSize) }

    /// What the vector features are made of, for the summary.
    var featureNote: String {
        guard let blocks = preprocessing.blocks, !blocks.isIdentity else { return "" }
        let parts = blocks.blocks.map { block -> String in
            switch block {
            case .raw: return "raw values"
            case .rfft: return "log-magnitude rFFT, \(blocks.rfftBins) bins per channel"
            case .downsample: return "means of \(blocks.segments) segments per channel"
            case .stats: return "6 statistics per channel"
            }
        }
        return " (" + parts.joined(separator: " + ") + ")"
    }

    /// The arrays an archive gave, which the user did not necessarily name.
    var archiveNote: String { dataSource.contains(".npz[") ? " from \(dataSource)" : "" }

    public var summary: String {
        let shape = preprocessing.sampleLayout == .sequence && preprocessing.features == "raw"
            ? "sequences of up to \(training.steps) steps × \(training.features) feature(s)"
            : "vectors of \(training.features) features\(featureNote)"
        let counts = trainingTargets.counts(classes: classes.count).map { String(Int($0)) }
        let perClass = zip(classes, counts).prefix(12).map { "\($0) \($1)" }.joined(separator: ", ")
            + (classes.count > 12 ? ", ..." : "")
        let parameters = trainableModel.parameters.layout.entries.reduce(0) { $0 + $1.count }
        return "\(config.text("job.name")): \(config.kind), \(preprocessing.task.rawValue), \(classes.count) classes, "
            + "\(training.count) training and \(validation?.count ?? 0) validation samples (\(shape))\(archiveNote); "
            + "per class in training: \(perClass); \(parameters) parameters"
    }

    /// The epoch's order of samples: a permutation of (seed, epoch), or with `data.sampler =
    /// "balanced"` a draw with replacement that picks each class (label) equally often.
    public func beginEpoch(_ epoch: Int) {
        guard orderEpoch != epoch else { return }
        orderEpoch = epoch
        let n = training.count
        let random = CounterRandom(seed: UInt64(config.integer("job.seed")), purpose: .shuffle)
        guard config.text("data.sampler") == "balanced" else {
            epochOrder = random.permutation(n, stream: UInt64(epoch))
            return
        }
        var members: [String: [Int]] = [:]
        let c = classes.count
        for i in 0..<n {
            switch trainingTargets {
            case .ids(let ids): members[String(ids[i]), default: []].append(i)
            case .matrix(let m):
                let positives = (0..<c).filter { m[i * c + $0] > 0.5 }
                if positives.isEmpty { members["none", default: []].append(i) }
                for k in positives { members[String(k), default: []].append(i) }
            }
        }
        let groups = members.keys.sorted()
        let stream = UInt64(epoch) | 1 << 40
        epochOrder = (0..<n).map { i in
            let group = members[groups[random.integer(below: groups.count, stream: stream, index: UInt64(2 * i))]]!
            return group[random.integer(below: group.count, stream: stream, index: UInt64(2 * i + 1))]
        }
    }

    /// This rank's rows of global batch k: inputs (rows, T, F) cut to the longest valid length,
    /// lengths, targets, the mask of rows past the epoch's end, and a global key per row.
    func batch(_ k: Int) -> (inputs: [Float], steps: Int, lengths: [Int], targets: ClassBatchTargets, mask: [Float], keys: [UInt64]) {
        let c = classes.count
        let slots = rows.map { k * batchSize + $0 }
        let samples = slots.map { $0 < epochOrder.count ? epochOrder[$0] : -1 }
        let (inputs, steps, lengths) = training.gather(samples)
        var ids: [Int32] = [], matrix: [Float] = []
        for s in samples {
            switch trainingTargets {
            case .ids(let all): ids.append(s >= 0 ? all[s] : 0)
            case .matrix(let all): matrix += s >= 0 ? all[(s * c)..<((s + 1) * c)] : ArraySlice(repeating: 0, count: c)
            }
        }
        let targets: ClassBatchTargets = multiLabel ? .matrix(matrix) : .ids(ids)
        return (inputs, steps, lengths, targets, samples.map { $0 >= 0 ? 1 : 0 }, slots.map(UInt64.init))
    }

    private let dLogits = FloatBuffer()   // (rows, C)

    public func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                                   lap: (String) -> Void) throws -> (LossTotal, units: Int) {
        beginEpoch(epoch)
        let b = batch(k)
        let B = rows.count, C = classes.count
        let dropout = usesDropout
            ? DropoutContext(seed: UInt64(config.integer("job.seed")), step: step, sampleKeys: b.keys) : nil
        lap("data")
        let logits = b.inputs.withUnsafeBufferPointer {
            network.forward($0.baseAddress!, batch: B, steps: b.steps, features: training.features, lengths: b.lengths, dropout: dropout)
        }
        lap("forward")
        dLogits.resize(B * C)
        let total = try b.mask.withUnsafeBufferPointer {
            try loss.evaluate(dLogits.pointer, logits: logits, targets: b.targets, mask: $0.baseAddress!, rows: B, classes: C)
        }
        network.model.backward(dLogits.pointer)
        lap("backward")
        return (total, Int(b.mask.reduce(0, +)))
    }

    public var validationMetricNames: [String] {
        (multiLabel ? ["macro_f1", "micro_f1", "exact_match"] : ["accuracy", "macro_f1"]).map { "val_" + $0 }
    }

    public var hasValidation: Bool { (validation?.count ?? 0) > 0 }

    public func validationTotals() throws -> [Double] {
        guard let validation, let validationTargets else { return [] }
        let mine = validationShare(validation.count, rank: rank, world: world)
        let counts = try Self.count(validation, targets: validationTargets, range: mine, network: network, loss: loss,
                                    classes: classes, multiLabel: multiLabel, threshold: Float(config.number("eval.threshold")))
        return counts.totals
    }

    public func validationMetrics(_ totals: [Double]) -> ValidationResult {
        let counts = ClassificationCounts(multiLabel: multiLabel, classes: classes, totals: totals)
        var result = ValidationResult(loss: counts.loss, metrics: counts.metrics.map { ("val_" + $0.name, $0.value) })
        result.report = counts.report
        result.reportFiles = [("per_class.csv", counts.perClassCSV)]
        if !multiLabel { result.reportFiles.append(("confusion_matrix.csv", counts.confusionCSV)) }
        lastCounts = counts
        return result
    }

    public func diagnose(_ result: ValidationResult, step: Int, totalSteps: Int) -> [DoctorFinding] {
        guard let counts = lastCounts else { return [] }
        // Weights and smoothing move the loss a chance model reaches; only the plain loss has a known one.
        let plainLoss = config.text("loss.kind") != "mse" && config.value("loss.class_weights") == .text("none")
            && config.value("loss.pos_weight") == .text("none") && config.number("loss.label_smoothing") == 0
        let levels = counts.chanceLevels(plainLoss: plainLoss)
        let figures = ([("val_loss", result.loss)] + result.metrics).compactMap { name, value in
            levels[name].map { ChanceLevelDetector.Figure(name: name, value: value, chance: $0) }
        }
        let finding = chance.observe(step: step, totalSteps: totalSteps, figures: figures, causes: chanceCauses)
        return finding.map { [$0] } ?? []
    }

    /// The likely causes of a classifier stuck at chance, with this config's settings.
    var chanceCauses: String {
        let depth = config.has("model.hidden_sizes")
            ? "model.hidden_sizes = \(config.value("model.hidden_sizes"))"
            : "model.layers = \(config.value("model.layers")); 1 to 3 recurrent layers train well from scratch"
        var causes = ["a network too deep for its gradient to reach the first layers (\(depth))",
                      "a learning rate too high or too low (optimizer.lr = \(config.number("optimizer.lr"))"
                        + " with \(config.text("optimizer.kind")); try 1e-3 for adam)"]
        if recurrentSteps > 0 {
            causes.append("over \(recurrentSteps) steps, pooling that loses the signal (model.pooling = "
                + tomlString(config.text("model.pooling"))
                + "; \"max\" or \"mean\" reach every step, \"last\" only the end)")
        }
        return "Likely causes: " + causes.joined(separator: "; ") + "; or labels that do not depend on the inputs"
            + " (check data.labels against data.inputs)."
    }

    /// Loss and counts of `data` samples in `range`, in chunks, no dropout.
    static func count(_ data: LabelledData, targets: ClassTargets, range: Range<Int>, network: ClassifierNetwork, loss: ClassifierLoss,
                      classes: [String], multiLabel: Bool, threshold: Float) throws -> ClassificationCounts {
        var counts = ClassificationCounts(multiLabel: multiLabel, classes: classes)
        try forEachChunk(data, range: range, network: network) { indices, logits in
            let n = indices.count, c = classes.count
            let mask = [Float](repeating: 1, count: n)
            let batchTargets: ClassBatchTargets
            switch targets {
            case .ids(let ids): batchTargets = .ids(indices.map { ids[$0] })
            case .matrix(let m): batchTargets = .matrix(indices.flatMap { m[($0 * c)..<(($0 + 1) * c)] })
            }
            let total = try mask.withUnsafeBufferPointer {
                try loss.evaluate(nil, logits: logits, targets: batchTargets, mask: $0.baseAddress!, rows: n, classes: c)
            }
            counts.lossSum += total.sum
            counts.lossCount += total.count
            switch batchTargets {
            case .ids(let ids):
                ids.withUnsafeBufferPointer { counts.add(logits: logits, classIds: $0.baseAddress, targets: nil, mask: nil, rows: n, threshold: threshold) }
            case .matrix(let m):
                m.withUnsafeBufferPointer { counts.add(logits: logits, classIds: nil, targets: $0.baseAddress, mask: nil, rows: n, threshold: threshold) }
            }
        }
        return counts
    }

    /// Runs the network over `range` of `data` in chunks (`forEachChunk(of:range:)`) and hands each
    /// chunk's sample indices and logits (n, C) to `body`.
    static func forEachChunk(_ data: LabelledData, range: Range<Int>, network: ClassifierNetwork,
                             _ body: ([Int], UnsafePointer<Float>) throws -> Void) rethrows {
        try SeqTrainKit.forEachChunk(of: data, range: range) { indices, block in
            let logits = block.inputs.withUnsafeBufferPointer {
                network.forward($0.baseAddress!, batch: indices.count, steps: block.steps, features: data.features, lengths: block.lengths, dropout: nil)
            }
            try body(indices, logits)
        }
    }

    public func checkpointMetadata() -> [String: String] {
        ["seqtrain.preprocessing": metadataJSON(preprocessing), "seqtrain.classes": "[" + classes.map(jsonString).joined(separator: ", ") + "]"]
    }
}
