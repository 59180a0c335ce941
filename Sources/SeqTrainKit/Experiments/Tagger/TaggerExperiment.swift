import Foundation

/// The sequence tagger kind (`model.kind = "sequence_tagger"`): a layer stack over (N, T, F)
/// inputs and a Linear head at every step, a target at every valid step: class ids (N, T), 0/1
/// labels (N, T, C) or real values (N, T, K). Every rank holds the samples; each global batch is a
/// slice of one permutation of (seed, epoch), rank r takes rows shard(batch, r) of it, and the loss
/// is summed over the valid steps of those rows, so the mean is over the valid steps of the global
/// batch whatever the rank count.
public final class TaggerExperiment: Experiment {
    public static let kind = ExperimentKind(
        name: "sequence_tagger",
        summary: "a layer stack with a head at every step: a class, 0/1 labels or values per step (return_sequences)",
        configKeys: configKeys,
        make: { config, rank, world in try TaggerExperiment(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, labels in
            try LoadedTagger(path: checkpoint).evaluate(data: data, labels: labels)
        },
        predict: { checkpoint, data, out in try LoadedTagger(path: checkpoint).predict(data: data, out: out) })

    static let configKeys: [ConfigKey] = [
        ConfigKey(section: "data", name: "inputs", type: .texts, defaultValue: .texts([]),
                  help: "Input files or globs: .npy or .npz of (N, T) or (N, T, F), or CSV/TSV with one sample per "
                      + "row; trailing NaN ends a shorter sample."),
        ConfigKey(section: "data", name: "labels", type: .texts, defaultValue: .texts([]),
                  help: "Per-step label .npy (or .npz) files: (N, T) class ids, (N, T, C) 0/1 labels or (N, T, K) "
                      + "values (model.task = \"regression\"); steps past a sample's length are ignored. Empty with "
                      + ".npz inputs: their label array."),
        ConfigKey(section: "data", name: "format", type: .choice(["auto", "npy", "npz", "csv", "tsv"]),
                  defaultValue: .text("auto"), help: "How input files are read; auto: by extension."),
        ConfigKey(section: "data", name: "input_array", type: .text, defaultValue: .text(""),
                  help: ".npz inputs: the array of the samples; empty: the archive's first array."),
        ConfigKey(section: "data", name: "label_array", type: .text, defaultValue: .text(""),
                  help: ".npz labels (data.labels, or the inputs' archive when data.labels is empty): the array of "
                      + "the per-step labels; empty: the archive's array that is not the inputs'."),
        ConfigKey(section: "data", name: "header", type: .boolean, defaultValue: .boolean(false),
                  help: "CSV/TSV inputs start with a header line of column names."),
        ConfigKey(section: "data", name: "label_names", type: .texts, defaultValue: .texts([]),
                  help: "Names of the C outputs per step (classes, labels or target columns), in order; "
                      + "empty: 0, 1, ..."),
        ConfigKey(section: "data", name: "validation_inputs", type: .texts, defaultValue: .texts([]),
                  help: "Validation inputs (same format); empty: hold out data.validation_fraction of the samples."),
        ConfigKey(section: "data", name: "validation_labels", type: .texts, defaultValue: .texts([]),
                  help: "Per-step labels of data.validation_inputs."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.2),
                  help: "Share of the samples held out for validation, by a seeded split."),
        ConfigKey(section: "data", name: "standardize", type: .boolean, defaultValue: .boolean(true),
                  help: "Scale every input feature (and regression target) to mean 0 and deviation 1 with "
                      + "statistics of the training split's valid steps (stored in the checkpoint)."),
        ConfigKey(section: "model", name: "cell", type: .choice(RecurrentCell.allCases.map(\.rawValue)),
                  defaultValue: .text("lstm"), help: "Shorthand stack: the recurrent cell (rnn: nn.RNN, tanh)."),
        ConfigKey(section: "model", name: "hidden", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Shorthand stack: hidden width H of every layer."),
        ConfigKey(section: "model", name: "layers", type: .layerStack, defaultValue: .integer(1),
                  help: "The layer stack ([[model.layers]] tables, README \"Layer stacks\"; every entry must keep the "
                      + "steps), or the shorthand's count of stacked recurrent layers of model.cell and model.hidden."),
        ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0),
                  help: "Shorthand stack: dropout between recurrent layers during training (nn.LSTM's dropout)."),
        ConfigKey(section: "model", name: "task",
                  type: .choice(["auto", "classification", "multi_label", "regression"]),
                  defaultValue: .text("auto"),
                  help: "auto: (N, T) labels are class ids (softmax cross-entropy per step), (N, T, C) 0/1 labels "
                      + "(sigmoid binary cross-entropy); regression reads real values (mean squared error)."),
        ConfigKey(section: "model", name: "loss", type: .choice(["auto", "mse", "l1"]), defaultValue: .text("auto"),
                  help: "Regression: mse (F.mse_loss) or l1 (F.l1_loss) on the standardized targets; auto: mse. "
                      + "Classification losses follow model.task."),
        ConfigKey(section: "eval", name: "threshold", type: .openFraction, defaultValue: .number(0.5),
                  help: "Multi-label: a label is predicted at a step when its sigmoid exceeds this."),
    ]

    public let config: ExperimentConfig
    public let rank: Int, world: Int
    public let preprocessing: TaggerPreprocessing
    /// Training and validation inputs, standardized; targets (regression: standardized).
    public let training: LabelledData
    public let validation: LabelledData?
    let trainingTargets: StepTargets
    let validationTargets: StepTargets?
    public let model: SequenceTagger
    let loss: TaggerLoss
    public let rows: Range<Int>
    let batchSize: Int
    let usesDropout: Bool
    var epochOrder: [Int] = []
    var orderEpoch = -1
    public let dataFingerprint: UInt64
    public var task: TaggingTask { preprocessing.task }
    /// The last validation's counts and the watch for a model at chance level.
    var lastCounts: TaggerCounts?
    var chance = ChanceLevelDetector()

    public var trainableModel: TrainableModel { model }

    public init(config: ExperimentConfig, rank: Int = 0, world: Int = 1) throws {
        self.config = config
        self.rank = rank
        self.world = world
        (batchSize, rows) = try batchShare(config, rank: rank, world: world)
        guard !config.texts("data.inputs").isEmpty else {
            throw SeqTrainError("data.inputs: no input files; give .npy, .npz, .csv or .tsv files (for example "
                + "`seqtrain data tags --out data/tags` makes a tagged set)")
        }
        // .npz inputs may carry their labels in a second array.
        let archives = config.text("data.format") == "npz"
            || config.texts("data.inputs").allSatisfy { $0.lowercased().hasSuffix(".npz") }
        let labelFiles = config.texts("data.labels").isEmpty && archives ? config.texts("data.inputs")
            : config.texts("data.labels")
        guard !labelFiles.isEmpty else {
            throw SeqTrainError("data.labels: no per-step label files; give .npy files of (N, T) class ids, "
                + "(N, T, C) 0/1 labels or (N, T, K) values (or .npz inputs with a label array)")
        }
        let (stack, naming) = try config.requiredModelStack()
        var settings = TaggerPreprocessing(task: .classification, outputs: [], inputFeatures: 0,
                                           format: config.text("data.format"), header: config.boolean("data.header"),
                                           inputArray: config.text("data.input_array"))
        settings.labelArray = config.text("data.label_array")
        let all = try settings.reader(inputsKey: "data.inputs").read(inputs: config.texts("data.inputs"), labels: [])
        let labels = try StepLabels.read(labelFiles, key: "data.labels", inputs: all, inputsKey: "data.inputs",
                                         labelArray: settings.labelArray ?? "", inputArray: settings.inputArray)
        let requested = config.text("model.task")
        let resolved = try StepLabels.targets(labels.values, shape: labels.shape, integer: labels.integer,
                                              source: labels.source, lengths: all.lengths, requested: requested)
        settings.task = resolved.task
        let outputs = resolved.outputs
        let names = config.texts("data.label_names")
        if !names.isEmpty {
            guard names.count == outputs, Set(names).count == names.count else {
                let repeated = Set(names).count == names.count ? "" : " (some repeated)"
                throw SeqTrainError("data.label_names: \(names.count) names\(repeated) "
                    + "for \(outputs) \(resolved.task == .classification ? "classes" : "outputs") per step in "
                    + "\(labels.source); give one distinct name each, in order")
            }
            settings.outputs = names
        } else {
            settings.outputs = (0..<outputs).map(String.init)
        }
        try Self.checkLoss(config, task: resolved.task)
        var fingerprint = all.fingerprint
        for v in labels.values { fingerprint = (fingerprint ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }
        dataFingerprint = fingerprint

        // Validation: given files, or a seeded share of the samples.
        var trainPart = all, trainTargets = resolved.targets
        var heldPart: LabelledData?, heldTargets: StepTargets?
        let validationInputs = config.texts("data.validation_inputs")
        if !validationInputs.isEmpty {
            let held = try settings.reader(inputsKey: "data.validation_inputs")
                .read(inputs: validationInputs, labels: [])
            guard held.features == all.features else {
                throw SeqTrainError("data.validation_inputs: samples have \(held.features) features, the training "
                    + "inputs \(all.features)")
            }
            let heldFiles = config.texts("data.validation_labels").isEmpty
                && validationInputs.allSatisfy({ $0.lowercased().hasSuffix(".npz") })
                ? validationInputs : config.texts("data.validation_labels")
            guard !heldFiles.isEmpty else {
                throw SeqTrainError("data.validation_labels: no labels for data.validation_inputs; give their "
                    + "per-step label files")
            }
            let heldLabels = try StepLabels.read(heldFiles, key: "data.validation_labels", inputs: held,
                                                 inputsKey: "data.validation_inputs",
                                                 labelArray: settings.labelArray ?? "", inputArray: settings.inputArray)
            let heldResolved = try StepLabels.targets(heldLabels.values, shape: heldLabels.shape,
                                                      integer: heldLabels.integer, source: heldLabels.source,
                                                      lengths: held.lengths, requested: resolved.task.rawValue)
            try Self.checkOutputs(heldResolved, against: resolved, source: heldLabels.source)
            heldPart = held
            heldTargets = heldResolved.targets
        } else if config.number("data.validation_fraction") > 0 {
            let split = seededSplit(count: all.count, fraction: config.number("data.validation_fraction"),
                                    seed: UInt64(config.integer("job.seed")))
            guard !split.train.isEmpty else {
                throw SeqTrainError("data.validation_fraction leaves no training samples")
            }
            trainPart = all.subset(split.train)
            trainTargets = resolved.targets.subset(split.train)
            if !split.validation.isEmpty {
                heldPart = all.subset(split.validation)
                heldTargets = resolved.targets.subset(split.validation)
            }
        }

        // Standardization fitted on the training split's valid steps only.
        if config.boolean("data.standardize") {
            let fitted = Standardization(fitting: trainPart)
            (settings.mean, settings.std) = (fitted.mean, fitted.std)
            if resolved.task == .regression {
                let targets = StepLabels.fitStandardization(trainTargets, lengths: trainPart.lengths)
                (settings.targetMean, settings.targetStd) = (targets.mean, targets.std)
            }
        }
        settings.inputFeatures = all.features
        preprocessing = settings
        training = settings.standardized(trainPart)
        settings.standardize(&trainTargets, lengths: trainPart.lengths)
        trainingTargets = trainTargets
        validation = heldPart.map { settings.standardized($0) }
        if var held = heldTargets, let heldPart {
            settings.standardize(&held, lengths: heldPart.lengths)
            heldTargets = held
        }
        validationTargets = heldTargets
        loss = try TaggerLoss(task: resolved.task, regression: config.text("model.loss"))

        try Self.checkStack(stack, config: config, inputFeatures: all.features, outputs: outputs,
                            rows: rows.count, steps: all.steps)
        usesDropout = LayerSpec.usesDropout(stack)
        model = SequenceTagger(stack: stack, naming: naming, inputSize: all.features, outputs: outputs)
    }


    /// A stack that keeps the steps, whose parameters and batch buffers fit in memory.
    static func checkStack(_ stack: [LayerSpec], config: ExperimentConfig, inputFeatures: Int, outputs: Int,
                           rows: Int, steps: Int, storedValues: Int? = nil) throws {
        try LayerStackConfig.requireKeptSteps(stack, key: "model.layers", source: config.source,
                                              purpose: "a tagger labels")
        let what = config.modelStackKeys
        let body = try LayerSpec.parameterCount(stack, input: inputFeatures, what: what)
        let top = stack.reduce(inputFeatures) { $1.outputWidth(input: $0) }
        let count = try MemoryCheck.sum([body, try MemoryCheck.product([top + 1, outputs], what: what)], what: what)
        try MemoryCheck.requireStored(storedValues, estimate: count)
        try MemoryCheck.requireMatrixDimensions([(count, "the parameters of \(what)"),
                                                 (inputFeatures, "the input features"),
                                                 (outputs, "the outputs per step")])
        try MemoryCheck.require(floats: try MemoryCheck.product([count, 4], what: what),
                                what: "a model of \(count) parameters (\(what))", fix: "lower the model's sizes")
        guard rows > 0 else { return }
        let perStep = try MemoryCheck.sum([try LayerSpec.bufferFloatsPerStep(stack, input: inputFeatures,
                                                                             what: "the buffers per step of \(what)"),
                                           try MemoryCheck.product([3, outputs], what: "the outputs per step")],
                                          what: what)
        let cells = try MemoryCheck.product([rows, steps], what: "training.batch_size × steps")
        try MemoryCheck.requireMatrixDimensions([(cells, "training.batch_size × the sequence length")])
        let floats = try MemoryCheck.product([cells, perStep], what: "training.batch_size × steps × \(what)")
        try MemoryCheck.require(floats: floats,
                                what: "the layer buffers of a batch of \(rows) sequences of \(steps) steps",
                                fix: "lower training.batch_size or the sizes of \(what)")
    }

    static func checkLoss(_ config: ExperimentConfig, task: TaggingTask) throws {
        let lossKind = config.text("model.loss")
        if lossKind != "auto" && task != .regression {
            let labels = task == .classification ? "class ids (softmax cross-entropy per step)"
                : "0/1 labels (sigmoid binary cross-entropy)"
            throw SeqTrainError("model.loss = \"\(lossKind)\" applies to regression targets; these labels are "
                + "\(labels): "
                + "leave model.loss = \"auto\", or set model.task = \"regression\" for real-valued targets")
        }
    }

    /// Validation labels must describe the same outputs as the training labels.
    static func checkOutputs(_ held: (task: TaggingTask, targets: StepTargets, outputs: Int),
                             against trained: (task: TaggingTask, targets: StepTargets, outputs: Int),
                             source: String) throws {
        switch trained.task {
        case .classification:
            guard held.outputs <= trained.outputs else {
                throw SeqTrainError("\(source): class id \(held.outputs - 1) is not among the \(trained.outputs) "
                    + "classes of the training labels (0 to \(trained.outputs - 1))")
            }
        case .multiLabel, .regression:
            guard held.outputs == trained.outputs else {
                throw SeqTrainError("\(source): \(held.outputs) columns per step, the training labels have "
                    + "\(trained.outputs)")
            }
        }
    }

    // MARK: Experiment

    public var dataMismatchHint: String {
        "its training data differs from rank 0's; every rank must read the same data.inputs and data.labels"
    }
    public var unitName: String { "samples" }
    public var batchesPerEpoch: Int { batchCount(training.count, batchSize: batchSize) }

    public var summary: String {
        let steps = training.lengths.reduce(0, +)
        let parameters = model.parameters.layout.entries.reduce(0) { $0 + $1.count }
        let what: String
        switch task {
        case .classification: what = "\(preprocessing.outputCount) classes per step"
        case .multiLabel: what = "\(preprocessing.outputCount) 0/1 labels per step"
        case .regression: what = "\(preprocessing.outputCount) value(s) per step, \(loss.regressionName) loss"
        }
        return "\(config.text("job.name")): sequence_tagger, \(task.rawValue), \(what), \(training.count) training "
            + "(\(steps) valid steps) and \(validation?.count ?? 0) validation samples (sequences of up to "
            + "\(training.steps) steps × \(training.features) feature(s)); \(parameters) parameters"
    }

    public func beginEpoch(_ epoch: Int) {
        guard orderEpoch != epoch else { return }
        orderEpoch = epoch
        epochOrder = CounterRandom(seed: UInt64(config.integer("job.seed")), purpose: .shuffle)
            .permutation(training.count, stream: UInt64(epoch))
    }

    /// This rank's rows of global batch k: inputs (rows, T, F) cut to the longest valid length,
    /// lengths, targets and mask step-major (T, rows, W) and (T, rows), and a global key per row.
    func batch(_ k: Int)
        -> (inputs: [Float], steps: Int, lengths: [Int], targets: [Float], mask: [Float], keys: [UInt64]) {
        let slots = rows.map { k * batchSize + $0 }
        let samples = slots.map { $0 < epochOrder.count ? epochOrder[$0] : -1 }
        let (inputs, steps, lengths) = training.gather(samples)
        let (targets, mask) = Self.stepMajor(trainingTargets, samples: samples, steps: steps, lengths: training.lengths)
        return (inputs, steps, lengths, targets, mask, slots.map(UInt64.init))
    }

    /// Targets (T, B, W) and mask (T, B) of `samples` (−1: an empty row, all masked), step-major as
    /// the model's outputs; the mask is 1 on each sample's valid steps.
    static func stepMajor(_ all: StepTargets, samples: [Int], steps T: Int, lengths: [Int])
        -> (targets: [Float], mask: [Float]) {
        let B = samples.count, W = all.width
        var targets = [Float](repeating: 0, count: T * B * W), mask = [Float](repeating: 0, count: T * B)
        for (b, s) in samples.enumerated() where s >= 0 {
            for t in 0..<min(lengths[s], T) {
                mask[t * B + b] = 1
                for k in 0..<W { targets[(t * B + b) * W + k] = all.values[(s * all.steps + t) * W + k] }
            }
        }
        return (targets, mask)
    }

    private let dOutputs = FloatBuffer()   // (T, rows, C)

    public func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                                   lap: (String) -> Void) throws -> (LossTotal, units: Int) {
        beginEpoch(epoch)
        let b = batch(k)
        let B = rows.count, C = preprocessing.outputCount
        let dropout = usesDropout
            ? DropoutContext(seed: UInt64(config.integer("job.seed")), step: step, sampleKeys: b.keys) : nil
        lap("data")
        b.inputs.withUnsafeBufferPointer {
            model.forward($0.baseAddress!, batch: B, steps: b.steps, lengths: b.lengths, dropout: dropout)
        }
        lap("forward")
        dOutputs.resize(b.steps * B * C)
        let total = try loss.evaluate(dOutputs.pointer, outputs: model.outputs.pointer, targets: b.targets,
                                      mask: b.mask, rows: b.steps * B, width: C)
        model.backward(dOutputs.pointer)
        lap("backward")
        return (total, rows.filter { k * batchSize + $0 < epochOrder.count }.count)
    }

    public var validationMetricNames: [String] {
        TaggerCounts.metricNames(task: task, outputs: preprocessing.outputs).map { "val_" + $0 }
    }

    public var hasValidation: Bool { (validation?.count ?? 0) > 0 }

    public func validationTotals() throws -> [Double] {
        guard let validation, let validationTargets else { return [] }
        let mine = validationShare(validation.count, rank: rank, world: world)
        return try Self.count(validation, targets: validationTargets, range: mine, model: model, loss: loss,
                              preprocessing: preprocessing, threshold: Float(config.number("eval.threshold"))).totals
    }

    public func validationMetrics(_ totals: [Double]) -> ValidationResult {
        let counts = TaggerCounts(task: task, outputs: preprocessing.outputs, totals: totals)
        var result = ValidationResult(loss: counts.loss, metrics: counts.metrics.map { ("val_" + $0.name, $0.value) })
        result.report = counts.report
        if let csv = counts.perOutputCSV { result.reportFiles = [("per_step_outputs.csv", csv)] }
        lastCounts = counts
        return result
    }

    /// Classes and labels: the doctor's warning for per-step figures still at chance level a third
    /// of the way in (the class shares of the validation steps set the chance levels).
    public func diagnose(_ result: ValidationResult, step: Int, totalSteps: Int) -> [DoctorFinding] {
        guard let counts = lastCounts, task != .regression else { return [] }
        let levels = counts.classes.chanceLevels(plainLoss: true)
        let figures = ([("val_loss", result.loss)] + result.metrics).compactMap { name, value in
            levels[name].map { ChanceLevelDetector.Figure(name: name, value: value, chance: $0) }
        }
        let causes = "Likely causes: a learning rate too high or too low (optimizer.lr = "
            + "\(config.number("optimizer.lr")) with \(config.text("optimizer.kind")); try 1e-3 for adam); a stack "
            + "that cannot see the steps a tag depends on (\(config.modelStackKeys): a bidirectional layer or a "
            + "conv1d padded \"same\" reads both sides); or labels that do not line up with the inputs' steps "
            + "(check data.labels against data.inputs)."
        return chance.observe(step: step, totalSteps: totalSteps, figures: figures, causes: causes).map { [$0] } ?? []
    }

    /// Loss and per-step counts of `data` samples in `range`, in chunks, no dropout.
    static func count(_ data: LabelledData, targets: StepTargets, range: Range<Int>, model: SequenceTagger,
                      loss: TaggerLoss, preprocessing: TaggerPreprocessing, threshold: Float) throws -> TaggerCounts {
        var counts = TaggerCounts(task: preprocessing.task, outputs: preprocessing.outputs)
        let C = preprocessing.outputCount
        try forEachChunk(of: data, range: range) { indices, block in
            let B = indices.count, T = block.steps
            block.inputs.withUnsafeBufferPointer {
                model.forward($0.baseAddress!, batch: B, steps: T, lengths: block.lengths, dropout: nil)
            }
            let (stepTargets, mask) = stepMajor(targets, samples: indices, steps: T, lengths: data.lengths)
            let total = try loss.evaluate(nil, outputs: model.outputs.pointer, targets: stepTargets, mask: mask,
                                          rows: T * B, width: C)
            counts.add(loss: total, outputs: model.outputs.pointer, targets: stepTargets, mask: mask, rows: T * B,
                       threshold: threshold, preprocessing: preprocessing)
        }
        return counts
    }

    public func checkpointMetadata() -> [String: String] {
        ["seqtrain.tagger": metadataJSON(preprocessing)]
    }
}

/// The loss of a tagger on its per-step outputs (T·B rows), masked to the valid steps.
public enum TaggerLoss {
    case crossEntropy(CrossEntropyLoss)
    case binaryCrossEntropy(BinaryCrossEntropyLoss)
    case regression(RegressionLoss)

    /// The task's loss; `regression` is model.loss ("l1" or else mean squared error).
    public init(task: TaggingTask, regression: String) throws {
        switch task {
        case .classification: self = .crossEntropy(try CrossEntropyLoss())
        case .multiLabel: self = .binaryCrossEntropy(try BinaryCrossEntropyLoss())
        case .regression: self = .regression(regression == "l1" ? .l1 : .mse)
        }
    }

    var regressionName: String {
        if case .regression(let kind) = self { return kind.rawValue }
        return ""
    }

    /// dOutputs (rows, W) ← ∂sum/∂outputs (when given, zero on masked rows); targets (rows, W'):
    /// class ids as floats (W' = 1) or the values; mask (rows).
    public func evaluate(_ dOutputs: UnsafeMutablePointer<Float>?, outputs: UnsafePointer<Float>, targets: [Float],
                         mask: [Float], rows: Int, width: Int) throws -> LossTotal {
        try mask.withUnsafeBufferPointer { m in
            switch self {
            case .crossEntropy(let ce):
                let ids = targets.map { Int32($0) }
                return try ids.withUnsafeBufferPointer {
                    try ce.evaluate(dOutputs, logits: outputs, targets: $0.baseAddress!, mask: m.baseAddress!,
                                    rows: rows, classes: width)
                }
            case .binaryCrossEntropy(let bce):
                return try targets.withUnsafeBufferPointer {
                    try bce.evaluate(dOutputs, logits: outputs, targets: $0.baseAddress!, mask: m.baseAddress!,
                                     rows: rows, classes: width)
                }
            case .regression(let kind):
                return targets.withUnsafeBufferPointer {
                    kind.evaluate(dOutputs, prediction: outputs, target: $0.baseAddress!, mask: m.baseAddress!,
                                  rows: rows, features: width)
                }
            }
        }
    }
}
