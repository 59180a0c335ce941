import Foundation

/// The char-LM experiment on one rank: its text, vocabulary, model, this rank's lanes and their
/// carried state. The trainer drives it; it supplies batches, the loss and validation.
public final class CharLMTask {
    public let config: ExperimentConfig
    public let vocabulary: Vocabulary
    public let model: CharLanguageModel
    public let batches: CharBatches
    public let validationIds: [Int32]
    public let validationLanes: Int
    public let rank: Int, world: Int
    /// This rank's rows of every global batch.
    public let rows: Range<Int>
    /// Carried (L, rows, H) state of this rank's lanes (stateful training).
    public let state: RecurrentState
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
        guard batchSize % world == 0 else {
            throw SeqTrainError("training.batch_size = \(batchSize) does not divide among \(world) ranks; use a multiple of \(world) (it is the global batch, and each rank takes an equal share)")
        }
        files = try TextFiles.expand(config.texts("data.paths"))
        var text: [Unicode.Scalar] = []
        for file in files { text += try TextFiles.readUTF8(file) }
        let fraction = config.number("data.validation_fraction")
        let validationCount = Int((Double(text.count) * fraction).rounded())
        let trainText = Array(text[..<(text.count - validationCount)])
        let validationText = Array(text[(text.count - validationCount)...])
        let given = config.text("data.vocabulary")
        vocabulary = given.isEmpty ? Vocabulary(building: trainText) : Vocabulary(Array(given.unicodeScalars))
        guard vocabulary.count >= 2 else {
            throw SeqTrainError("data.paths: the training text has \(vocabulary.count) distinct characters; a language model needs at least 2")
        }
        let strict = config.text("data.unknown") == "error"
        let trainIds = try vocabulary.encode(trainText, strict: strict, source: "training text (data.paths)").ids
        validationIds = try vocabulary.encode(validationText, strict: strict, source: "validation text (the last data.validation_fraction of data.paths)").ids
        let steps = config.integer("training.seq_len")
        if fraction > 0 && validationIds.count < 2 {
            throw SeqTrainError("data.validation_fraction = \(fraction) leaves \(validationIds.count) characters for validation; raise it or give more text")
        }
        validationLanes = CharLanguageModel.evaluationLanes(count: validationIds.count, steps: steps, preferred: batchSize)
        batches = try CharBatches(ids: trainIds, lanes: batchSize, steps: steps, stateful: config.boolean("training.stateful"),
                                  seed: UInt64(config.integer("job.seed")))
        model = CharLanguageModel(.init(vocabularySize: vocabulary.count, embeddingSize: config.integer("model.embedding"),
                                        hiddenSize: config.integer("model.hidden"), layers: config.integer("model.layers"),
                                        dropout: Float(config.number("model.dropout")),
                                        cell: RecurrentCell(rawValue: config.text("model.cell"))!))
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
                                   gradientsReady: ((Int) -> Void)? = nil) throws -> (LossTotal, tokens: Int) {
        let batch = batches.batch(k, epoch: epoch, rows: rows)
        lastBatch = batch
        if !batches.stateful { state.zero() }
        let dropout = config.number("model.dropout") > 0
            ? DropoutContext(seed: UInt64(config.integer("job.seed")), step: step, sampleKeys: batch.rowKeys) : nil
        try model.forward(ids: batch.inputs, batch: batch.rows, steps: batch.steps, state: state, dropout: dropout)
        let total = try model.loss(targets: batch.targets, mask: batch.mask, gradient: true, gradientsReady: gradientsReady)
        return (total, batch.rows * batch.steps)
    }

    /// This rank's share of the validation loss (the lanes are split over the ranks).
    public func validationShare() throws -> LossTotal {
        guard !validationIds.isEmpty else { return LossTotal() }
        let share = (validationLanes + world - 1) / world
        let lanes = min(rank * share, validationLanes)..<min((rank + 1) * share, validationLanes)
        return try model.streamLoss(validationIds, lanes: validationLanes, steps: config.integer("training.seq_len"), laneRange: lanes)
    }
}
