import Foundation

/// The char-LM experiment (`model.kind = "char_lm"`) on one rank: its text, vocabulary, model, this
/// rank's lanes and their carried state. The trainer drives it; it supplies batches, the loss and
/// validation.
public final class CharLMTask: Experiment {
    public static let kind = ExperimentKind(
        name: "char_lm", summary: "a character-level language model on text files", configKeys: configKeys,
        make: { config, rank, world in try CharLMTask(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, _ in
            let loaded = try LoadedCharLM(path: checkpoint)
            let result = try loaded.evaluate(paths: data)
            return EvaluationReport(
                fields: [("loss", result.loss), ("perplexity", result.perplexity), ("characters", result.characters),
                         ("skipped", result.skipped), ("checkpoint", loaded.path)],
                text: String(format: "%@: loss %.4f nats/char, perplexity %.3f over %d characters (%d skipped: not in the vocabulary)",
                             loaded.path, result.loss, result.perplexity, result.characters, result.skipped))
        },
        predict: nil)

    static let configKeys: [ConfigKey] = [
        ConfigKey(section: "data", name: "paths", type: .texts, defaultValue: .texts(["Sources/**/*.swift"]),
                  help: "Text files or globs (`*`, `?`, `**`), relative to the working directory, read as UTF-8 in sorted order."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.05),
                  help: "Share of the text, taken from its end, held out for validation."),
        ConfigKey(section: "data", name: "vocabulary", type: .text, defaultValue: .text(""),
                  help: "The characters of the vocabulary; empty means every character of the training text."),
        ConfigKey(section: "data", name: "unknown", type: .choice(["skip", "error"]), defaultValue: .text("skip"),
                  help: "Characters outside the vocabulary in validation, eval and prime text: skipped (and counted) or an error."),
        ConfigKey(section: "model", name: "embedding", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Embedding width E."),
    ] + ConfigKey.modelStack(cells: [.lstm, .gru], hidden: 256, layers: 2,
                             holds: "; lstm, gru, rnn, dense, dropout") + [
        ConfigKey(section: "training", name: "seq_len", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Steps of truncated back-propagation through time per batch."),
        ConfigKey(section: "training", name: "stateful", type: .boolean, defaultValue: .boolean(true),
                  help: "Carry each lane's state to its next batch (reset every epoch); false: independent shuffled windows."),
    ]

    public let config: ExperimentConfig
    public let vocabulary: Vocabulary
    public let model: CharLanguageModel
    public let batches: CharBatches
    public let validationIds: [Int32]
    public let validationLanes: Int
    public let rank: Int, world: Int
    /// This rank's rows of every global batch.
    public let rows: Range<Int>
    /// Carried state of this rank's lanes (stateful training): (L_i, rows, H_i) per recurrent entry.
    public let state: StackState
    /// The last batch this rank trained on (for tracing which lanes a rank sees).
    public private(set) var lastBatch: CharBatches.Batch?
    /// A fingerprint of the training data, equal on every rank that read the same text.
    public let dataFingerprint: UInt64
    public let files: [String]

    public init(config: ExperimentConfig, rank: Int = 0, world: Int = 1) throws {
        self.config = config
        self.rank = rank
        self.world = world
        let batchSize = config.integer("training.batch_size")
        try requireEvenShare(batchSize: batchSize, world: world)
        files = try TextFiles.expand(config.texts("data.paths"))
        var text: [Unicode.Scalar] = []
        for file in files { text += try TextFiles.readUTF8(file) }
        let fraction = config.number("data.validation_fraction")
        let validationCount = Int((Double(text.count) * fraction).rounded())
        let trainText = Array(text[..<(text.count - validationCount)])
        let validationText = Array(text[(text.count - validationCount)...])
        let given = config.text("data.vocabulary")
        vocabulary = given.isEmpty ? Vocabulary(building: trainText) : try Vocabulary(Array(given.unicodeScalars), source: "data.vocabulary")
        guard vocabulary.count >= 2 else {
            throw SeqTrainError("data.paths: the training text has \(vocabulary.count) distinct characters; a language model needs at least 2")
        }
        let strict = config.text("data.unknown") == "error"
        let trained = try vocabulary.encode(trainText, strict: strict, source: "training text (data.paths)")
        let trainIds = trained.ids
        if rank == 0, let warning = Vocabulary.skippedWarning(trained.skipped, source: "training text (data.paths)") {
            printWarning(warning)
        }
        let validationSource = "validation text (the last data.validation_fraction of data.paths)"
        let heldOut = try vocabulary.encode(validationText, strict: strict, source: validationSource)
        validationIds = heldOut.ids
        if rank == 0, let warning = Vocabulary.skippedWarning(heldOut.skipped, source: validationSource) {
            printWarning(warning)
        }
        let steps = config.integer("training.seq_len")
        if fraction > 0 && validationIds.count < 2 {
            throw SeqTrainError("data.validation_fraction = \(fraction) leaves \(validationIds.count) characters for validation; raise it or give more text")
        }
        validationLanes = CharLanguageModel.evaluationLanes(count: validationIds.count, steps: steps, preferred: batchSize)
        batches = try CharBatches(ids: trainIds, lanes: batchSize, steps: steps, stateful: config.boolean("training.stateful"),
                                  seed: UInt64(config.integer("job.seed")))
        model = try Self.makeModel(config, vocabulary: vocabulary.count, rows: batchSize / world)
        rows = shard(batchSize, rank: rank, world: world)
        state = model.makeState(batch: rows.count)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for id in trainIds { hash = (hash ^ UInt64(UInt32(bitPattern: id))) &* 0x100_0000_01b3 }
        dataFingerprint = hash
    }

    public var batchesPerEpoch: Int { batches.batchesPerEpoch }

    /// Entropy (nats/char) of the training text's character frequencies: the loss of a model that
    /// ignores context. A language model should end clearly below it.
    public var unigramEntropy: Double {
        var counts = [Int](repeating: 0, count: vocabulary.count)
        for id in batches.ids { counts[Int(id)] += 1 }
        let n = Double(batches.ids.count)
        return counts.filter { $0 > 0 }.reduce(0.0) { $0 - Double($1) / n * log(Double($1) / n) }
    }

    /// Resets the carried state: at every epoch start (stateful) or every batch (windowed).
    public func resetState() { state.zero() }

    /// Forward and backward of this rank's share of global batch k; adds ∂(loss sum)/∂θ to the
    /// gradient arena and returns this rank's loss sum and count.
    public func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                                   lap: (String) -> Void = { _ in }) throws -> (LossTotal, units: Int) {
        let batch = batches.batch(k, epoch: epoch, rows: rows)
        lastBatch = batch
        if !batches.stateful { state.zero() }
        let dropout = LayerSpec.usesDropout(try Self.stack(config).specs)
            ? DropoutContext(seed: UInt64(config.integer("job.seed")), step: step, sampleKeys: batch.rowKeys) : nil
        lap("data")
        try model.forward(ids: batch.inputs, batch: batch.rows, steps: batch.steps, state: state, dropout: dropout)
        lap("forward")
        let total = try model.loss(targets: batch.targets, mask: batch.mask, gradient: true)
        lap("backward")
        return (total, batch.rows * batch.steps)
    }

    /// The config's stack (`[[model.layers]]`, or the shorthand's one recurrent entry), refused when an
    /// entry could read ahead of the character it predicts or cannot carry its state.
    static func stack(_ config: ExperimentConfig) throws -> (specs: [LayerSpec], naming: StackNaming) {
        let stack = try config.requiredModelStack()
        if let (entry, reason) = LayerStack.stateBreaker(stack.specs) {
            throw SeqTrainError("\(config.source): model.layers[\(entry)]: a language model reads its text in "
                + "order, carrying its state from batch to batch and sampling one character at a time; \(reason)")
        }
        return stack
    }

    /// The model, after checking that its parameters (with gradients and two optimizer buffers) and
    /// a batch's layer buffers fit in memory, with overflow-checked sizes, before anything exists.
    static func makeModel(_ config: ExperimentConfig, vocabulary: Int, rows: Int? = nil,
                          storedValues: Int? = nil) throws -> CharLanguageModel {
        let (specs, naming) = try stack(config)
        let E = config.integer("model.embedding")
        let what = "model.embedding, " + (config.layerStack("model.layers") == nil
                                          ? "model.hidden, model.layers" : "model.layers")
        let top = specs.reduce(E) { $1.outputWidth(input: $0) }
        let parameters = try MemoryCheck.sum([try MemoryCheck.product([vocabulary, E], what: what),
                                              try LayerSpec.parameterCount(specs, input: E, what: what),
                                              try MemoryCheck.product([top + 1, vocabulary], what: what)], what: what)
        try MemoryCheck.requireStored(storedValues, estimate: parameters)
        try MemoryCheck.requireMatrixDimensions([(vocabulary, "the vocabulary size"), (E, "model.embedding")])
        try MemoryCheck.require(floats: try MemoryCheck.product([parameters, 4], what: what),
                                what: "a model of \(parameters) parameters (\(what))",
                                fix: "lower model.hidden or model.layers")
        try MemoryCheck.requireMatrixDimensions([(parameters, "the parameters of \(what)")])
        if let rows {
            let steps = config.integer("training.seq_len")
            try MemoryCheck.requireStackBuffers(specs, input: E, rows: rows, steps: steps, what: what,
                                                source: config.source, shortest: steps,
                                                otherFix: " or training.seq_len")
        }
        return CharLanguageModel(vocabularySize: vocabulary, embeddingSize: E, stack: specs, naming: naming)
    }

    // MARK: Experiment

    public var trainableModel: TrainableModel { model }
    public var dataMismatchHint: String { "its training text differs from rank 0's; every rank must read the same data.paths" }
    public var unitName: String { "tokens" }

    public var summary: String {
        "\(config.text("job.name")): \(files.count) file(s), vocabulary \(vocabulary.count), \(batches.ids.count) training and \(validationIds.count) validation characters, \(model.parameters.layout.entries.reduce(0) { $0 + $1.count }) parameters; unigram baseline \(String(format: "%.3f", unigramEntropy)) nats/char"
    }

    public func beginEpoch(_ epoch: Int) { resetState() }

    public func trainingMetrics(loss: Double) -> [(name: String, value: Double)] { [("perplexity", exp(loss))] }
    public var validationMetricNames: [String] { ["val_perplexity"] }
    public var hasValidation: Bool { !validationIds.isEmpty }

    public func validationTotals() throws -> [Double] {
        let share = try validationShare()
        return [share.sum, share.count]
    }

    public func validationMetrics(_ totals: [Double]) -> ValidationResult {
        let loss = LossTotal(sum: totals[0], count: totals[1]).mean
        return ValidationResult(loss: loss, metrics: [("val_perplexity", exp(loss))])
    }

    public var carriedState: CarriedState? {
        CarriedState(states: state.parts, rows: rows, lanes: config.integer("training.batch_size"))
    }

    public func checkpointMetadata() -> [String: String] {
        ["seqtrain.vocabulary": vocabulary.text,
         "seqtrain.eval": "{\"lanes\": \(validationLanes), \"seq_len\": \(config.integer("training.seq_len"))}"]
    }

    public func traceLines(step: Int) -> String {
        guard let batch = lastBatch else { return "" }
        return rows.enumerated().map { r, lane in
            "\(step) \(lane) \(batch.inputs[r * batch.steps]) \(batch.inputs[r * batch.steps + batch.steps - 1])\n"
        }.joined()
    }

    /// This rank's share of the validation loss (the lanes are split over the ranks).
    public func validationShare() throws -> LossTotal {
        guard !validationIds.isEmpty else { return LossTotal() }
        let lanes = SeqTrainKit.validationShare(validationLanes, rank: rank, world: world)
        return try model.streamLoss(validationIds, lanes: validationLanes, steps: config.integer("training.seq_len"), laneRange: lanes)
    }
}

extension CharLanguageModel {
    /// Softmax cross-entropy (Losses/CrossEntropy.swift) of the kept logits against targets (B, T);
    /// with `gradient`, back-propagates the loss sum. `mask` (B, T) of 0/1 leaves rows out.
    public func loss(targets: [Int32], mask: [Float]? = nil, gradient: Bool) throws -> LossTotal {
        let B = batch, T = steps, V = vocabularySize
        guard targets.count == B * T, mask.map({ $0.count == B * T }) ?? true else {
            throw SeqTrainError("expected \(B * T) targets (and mask values), got \(targets.count)")
        }
        let stepTargets = transposeToStepMajor(targets, batch: B, steps: T)       // (T, B)
        let stepMask = mask.map { transposeToStepMajor($0, batch: B, steps: T) }  // (T, B)
        if gradient { dLogits.resize(T * B * V) }
        let total = try stepTargets.withUnsafeBufferPointer { t in
            try (stepMask ?? []).withUnsafeBufferPointer { m in
                try CrossEntropyLoss().evaluate(gradient ? dLogits.pointer : nil, logits: logits.pointer,
                                                targets: t.baseAddress!, mask: stepMask == nil ? nil : m.baseAddress,
                                                rows: T * B, classes: V)
            }
        }
        if gradient { backward(dLogits.pointer) }
        return total
    }
}

extension CharLanguageModel {
    /// Mean loss of `ids` read as `lanes` parallel streams of `steps`-long batches with carried
    /// state, as validation and `seqtrain eval` do. Returns the sums over the lanes in `laneRange`
    /// (a rank's share); the caller adds the shares of all ranks.
    public func streamLoss(_ ids: [Int32], lanes: Int, steps: Int, laneRange: Range<Int>) throws -> LossTotal {
        guard !laneRange.isEmpty else { return LossTotal() }
        let batches = try CharBatches(ids: ids, lanes: lanes, steps: steps, stateful: true, seed: 0,
                                      what: "evaluation text")
        let state = makeState(batch: laneRange.count)
        var total = LossTotal()
        for k in 0..<batches.batchesPerEpoch {
            let batch = batches.batch(k, epoch: 0, rows: laneRange)
            try forward(ids: batch.inputs, batch: batch.rows, steps: batch.steps, state: state)
            total = total + (try loss(targets: batch.targets, gradient: false))
        }
        return total
    }

    /// Lanes for evaluating `count` ids: `preferred`, fewer when the text is too short for each lane
    /// to hold one batch.
    public static func evaluationLanes(count: Int, steps: Int, preferred: Int) -> Int {
        max(1, min(preferred, (count - 1) / steps))
    }
}
