import Foundation

/// Token sequences as the model sees them: ids (no start or end token) and what was left out.
struct EncodedSequences {
    var ids: [[Int32]]
    var unknown = 0

    init(_ sequences: TokenSequences, vocabulary: TokenVocabulary) {
        var unknown = 0
        ids = sequences.sequences.map { sequence in
            let (encoded, missing) = vocabulary.encode(sequence)
            unknown += missing
            return encoded
        }
        self.unknown = unknown
    }

    var fingerprint: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for sequence in ids {
            for id in sequence { hash = (hash ^ UInt64(UInt32(bitPattern: id))) &* 0x100_0000_01b3 }
            hash = (hash ^ 0xFFFF_FFFF) &* 0x100_0000_01b3
        }
        return hash
    }
}

/// One batch of sequences laid out for the generator: sources (B, S) and their lengths, decoder
/// inputs (B, T) under teacher forcing (<s>, then the tokens), targets (B, T) (the tokens, then
/// </s>) and the mask (B, T) of counted targets. T = S + 1; rows without a sequence count nothing.
struct TokenBatch {
    let rows: Int, sourceSteps: Int
    var sources: [Int32], lengths: [Int], inputs: [Int32], targets: [Int32], mask: [Float], rowWeights: [Float]
    var decoderSteps: Int { sourceSteps + 1 }

    init(_ sequences: [[Int32]?]) {
        rows = sequences.count
        sourceSteps = max(1, sequences.map { $0?.count ?? 1 }.max() ?? 1)
        let S = sourceSteps, T = S + 1
        sources = [Int32](repeating: TokenVocabulary.padding, count: rows * S)
        inputs = [Int32](repeating: TokenVocabulary.padding, count: rows * T)
        targets = inputs
        mask = [Float](repeating: 0, count: rows * T)
        lengths = [Int](repeating: 1, count: rows)
        rowWeights = [Float](repeating: 0, count: rows)
        for (r, sequence) in sequences.enumerated() {
            guard let sequence else { continue }
            let n = sequence.count
            lengths[r] = max(n, 1)
            rowWeights[r] = 1
            inputs[r * T] = TokenVocabulary.start
            for (t, id) in sequence.enumerated() {
                sources[r * S + t] = id
                inputs[r * T + t + 1] = id
                targets[r * T + t] = id
            }
            targets[r * T + n] = TokenVocabulary.end
            for t in 0...n { mask[r * T + t] = 1 }
        }
    }

    /// Step-major (T, B) copies for the loss over the (T, B, V) logits.
    var stepMajorTargets: [Int32] { transposeToStepMajor(targets, batch: rows, steps: decoderSteps) }
    var stepMajorMask: [Float] { transposeToStepMajor(mask, batch: rows, steps: decoderSteps) }
}

/// Validation figures of a sequence generator, summed over sequences (and ranks).
struct GenerationTotals {
    var crossEntropy = 0.0, tokens = 0.0, correctTeacherForced = 0.0, correctFreeRunning = 0.0
    var exact = 0.0, sequences = 0.0, kl = 0.0, collapsed = 0.0
    /// Neighbouring validation sequences that differ, and of those the pairs whose free-running
    /// outputs are the same (a decoder that ignores its input): sums over ranks, unlike a count
    /// of distinct outputs.
    var differentPairs = 0.0, sameOutputPairs = 0.0

    init() {}
    init(_ v: [Double]) {
        (crossEntropy, tokens, correctTeacherForced, correctFreeRunning) = (v[0], v[1], v[2], v[3])
        (exact, sequences, kl, collapsed) = (v[4], v[5], v[6], v[7])
        (differentPairs, sameOutputPairs) = (v[8], v[9])
    }
    var values: [Double] {
        [crossEntropy, tokens, correctTeacherForced, correctFreeRunning, exact, sequences, kl, collapsed,
         differentPairs, sameOutputPairs]
    }
    /// The negative ELBO per token: cross-entropy plus the KL divergence at full weight.
    var loss: Double { tokens > 0 ? (crossEntropy + kl) / tokens : .nan }
    var teacherForcedAccuracy: Double { correctTeacherForced / max(tokens, 1) }
    var freeRunningAccuracy: Double { correctFreeRunning / max(tokens, 1) }
    var exactMatch: Double { exact / max(sequences, 1) }
    var klPerSequence: Double { kl / max(sequences, 1) }
}

/// The seq2seq kind (`model.kind = "seq2seq"`): token sequences (one per line of text files, or
/// every word of them) encoded to a latent vector and generated back, trained with teacher forcing
/// and scheduled sampling; optionally variational. Every rank holds the sequences; each global
/// batch is one of the epoch's length-grouped batches, and rank r takes rows shard(batch, r).
public final class Seq2SeqExperiment: Experiment {
    public static let kind = ExperimentKind(
        name: "seq2seq", summary: "a sequence generator over tokens: encoder to a latent vector (optionally variational), decoder with teacher forcing and scheduled sampling",
        configKeys: configKeys,
        make: { config, rank, world in try Seq2SeqExperiment(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, _ in try LoadedSequenceGenerator(path: checkpoint).evaluate(paths: data) },
        predict: nil,
        encode: { checkpoint, data, out in
            try LoadedSequenceGenerator(path: checkpoint).encode(paths: data, out: out)
        },
        generate: { checkpoint, request in try LoadedSequenceGenerator(path: checkpoint).generate(request) })

    static let configKeys: [ConfigKey] = [
        ConfigKey(section: "data", name: "paths", type: .texts, defaultValue: .texts([]),
                  help: "Text files or globs (UTF-8), read in sorted order; data.sequences says how they are cut into sequences."),
        ConfigKey(section: "data", name: "sequences", type: .choice(["lines", "words"]), defaultValue: .text("lines"),
                  help: "lines: every non-empty line is a sequence; words: every word (punctuation at its ends taken off) is one."),
        ConfigKey(section: "data", name: "tokens", type: .choice(["characters", "words"]), defaultValue: .text("characters"),
                  help: "The tokens of a sequence: its characters, or its words (split at white space)."),
        ConfigKey(section: "data", name: "unique", type: .boolean, defaultValue: .boolean(false),
                  help: "Keep each distinct sequence once (a vocabulary of words, say)."),
        ConfigKey(section: "data", name: "max_length", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Sequences of more tokens are left out (and counted in the first lines); at most 60000."),
        ConfigKey(section: "data", name: "min_count", type: .positiveInteger, defaultValue: .integer(1),
                  help: "Tokens seen fewer times in the training sequences become <unk>."),
        ConfigKey(section: "data", name: "validation_paths", type: .texts, defaultValue: .texts([]),
                  help: "Validation text files; empty: hold out data.validation_fraction of the sequences."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.1),
                  help: "Share of the sequences held out for validation, chosen by a seeded permutation."),
        ConfigKey(section: "model", name: "encoder", type: .optionalLayerStack, defaultValue: .layers([]),
                  help: "The encoder's layer stack ([[model.encoder]] tables, README \"Layer stacks\") over the "
                      + "embedded source; none: one recurrent entry of the shorthand keys."),
        ConfigKey(section: "model", name: "decoder", type: .optionalLayerStack, defaultValue: .layers([]),
                  help: "The decoder ([[model.decoder]]): one unidirectional lstm, gru or rnn entry, as it is stepped "
                      + "token by token; none: the shorthand keys."),
        ConfigKey(section: "model", name: "cell", type: .choice(["lstm", "gru"]), defaultValue: .text("gru"),
                  help: "Shorthand: the recurrent cell of the encoder and the decoder."),
        ConfigKey(section: "model", name: "embedding", type: .positiveInteger, defaultValue: .integer(32), help: "Token embedding width E (shared by encoder and decoder)."),
        ConfigKey(section: "model", name: "hidden", type: .positiveInteger, defaultValue: .integer(128),
                  help: "Shorthand: hidden width H of every layer."),
        ConfigKey(section: "model", name: "layers", type: .positiveInteger, defaultValue: .integer(1),
                  help: "Shorthand: stacked recurrent layers of the encoder and of the decoder."),
        ConfigKey(section: "model", name: "latent", type: .positiveInteger, defaultValue: .integer(32), help: "Width Z of the latent vector."),
        ConfigKey(section: "model", name: "variational", type: .boolean, defaultValue: .boolean(false),
                  help: "A mean and a log-variance, z = μ + σ ε, and a KL term in the loss (a VAE): sample new sequences from the prior."),
        ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0),
                  help: "Shorthand: dropout between recurrent layers during training."),
        ConfigKey(section: "training", name: "teacher_forcing", type: .choice(TeacherForcingSchedule.Kind.allCases.map(\.rawValue)), defaultValue: .text("constant"),
                  help: "Schedule of ε, the probability of feeding the true previous token (else the model's own): constant, linear, exponential or inverse_sigmoid decay."),
        ConfigKey(section: "training", name: "teacher_forcing_start", type: .nonNegativeNumber, defaultValue: .number(1),
                  help: "ε at step 0 (constant: always); 1 is pure teacher forcing."),
        ConfigKey(section: "training", name: "teacher_forcing_min", type: .nonNegativeNumber, defaultValue: .number(0), help: "The floor of ε for the decaying schedules."),
        ConfigKey(section: "training", name: "teacher_forcing_slope", type: .nonNegativeNumber, defaultValue: .number(1e-4), help: "linear: ε falls by this per step."),
        ConfigKey(section: "training", name: "teacher_forcing_base", type: .openFraction, defaultValue: .number(0.999), help: "exponential: ε is multiplied by this per step."),
        ConfigKey(section: "training", name: "teacher_forcing_k", type: .positiveNumber, defaultValue: .number(1000),
                  help: "inverse_sigmoid: k of ε = k / (k + e^(step / k)); ε halves around step k·ln k."),
        ConfigKey(section: "training", name: "sampling_temperature", type: .nonNegativeNumber, defaultValue: .number(0),
                  help: "How the model's own token is drawn when it is fed: 0, the most likely one (as PyTorch's seq2seq tutorial); above 0, from softmax(logits / T)."),
        ConfigKey(section: "loss", name: "kl_warmup_steps", type: .nonNegativeInteger, defaultValue: .integer(0),
                  help: "Variational: the KL term's weight rises linearly from 0 to 1 over this many steps (0: 1 from the start)."),
    ]

    public let config: ExperimentConfig
    public let rank: Int, world: Int
    public let rules: TokenRules
    public let vocabulary: TokenVocabulary
    let training: EncodedSequences
    let validation: EncodedSequences?
    public let model: SequenceGenerator
    public let rows: Range<Int>
    let batchSize: Int
    var batches: BucketedBatches
    let teacherForcing: TeacherForcingSchedule
    let tooLong: Int
    /// Whether dropout acts anywhere in the stacks (training then draws masks).
    let usesDropout: Bool
    public let dataFingerprint: UInt64

    public init(config: ExperimentConfig, rank: Int = 0, world: Int = 1) throws {
        self.config = config
        self.rank = rank
        self.world = world
        (batchSize, rows) = try batchShare(config, rank: rank, world: world)
        let maxLength = config.integer("data.max_length")
        guard maxLength <= 60_000 else { throw SeqTrainError("data.max_length = \(maxLength): at most 60000 tokens per sequence") }
        guard !config.texts("data.paths").isEmpty else {
            throw SeqTrainError("data.paths: no text files; give files with one sequence per line (or data.sequences = \"words\")")
        }
        rules = TokenRules(sequences: config.text("data.sequences"), tokens: config.text("data.tokens"))
        let unique = config.boolean("data.unique")
        let all = try TokenSequences(patterns: config.texts("data.paths"), key: "data.paths", rules: rules, unique: unique, maxLength: maxLength)
        var trainPart = all, heldPart: TokenSequences?
        if !config.texts("data.validation_paths").isEmpty {
            heldPart = try TokenSequences(patterns: config.texts("data.validation_paths"), key: "data.validation_paths", rules: rules,
                                          unique: unique, maxLength: maxLength)
        } else if config.number("data.validation_fraction") > 0 {
            let split = seededSplit(count: all.count, fraction: config.number("data.validation_fraction"), seed: UInt64(config.integer("job.seed")))
            guard !split.train.isEmpty else { throw SeqTrainError("data.validation_fraction leaves no training sequences") }
            trainPart = all.subset(split.train)
            if !split.validation.isEmpty { heldPart = all.subset(split.validation) }
        }
        tooLong = all.tooLong
        let tokens = TokenVocabulary(counting: trainPart.sequences, minCount: config.integer("data.min_count"))
        vocabulary = tokens
        training = EncodedSequences(trainPart, vocabulary: tokens)
        validation = heldPart.map { EncodedSequences($0, vocabulary: tokens) }
        dataFingerprint = training.fingerprint
        let trainingLengths = training.ids.map(\.count)
        batches = BucketedBatches(lengths: trainingLengths, batchSize: batchSize, seed: UInt64(config.integer("job.seed")))
        teacherForcing = TeacherForcingSchedule(config: config)
        guard teacherForcing.start <= 1, teacherForcing.minimum <= 1 else {
            throw SeqTrainError("training.teacher_forcing_start and training.teacher_forcing_min are probabilities: give values from 0 to 1")
        }
        let steps = (trainingLengths.max() ?? 1) + 1
        let stacks = try Self.stacks(config)
        usesDropout = LayerSpec.usesDropout(stacks.encoder) || LayerSpec.usesDropout([stacks.decoder])
        let E = config.integer("model.embedding")
        for (specs, key, shortest) in [(stacks.encoder, Self.stackKeys(config, "encoder"), trainingLengths.min() ?? 1),
                                       ([stacks.decoder], Self.stackKeys(config, "decoder"), steps)] {
            try MemoryCheck.requireStackBuffers(specs, input: E, rows: 2 * rows.count, steps: steps, what: key,
                                                source: config.source, shortest: max(shortest, 1),
                                                otherFix: " or data.max_length")
        }
        try MemoryCheck.require(floats: try MemoryCheck.product([rows.count, steps, vocabulary.count, 2], what: "training.batch_size × data.max_length × the vocabulary"),
                                what: "the logits of a batch", fix: "lower training.batch_size or data.max_length, or raise data.min_count")
        model = try Self.makeModel(config, vocabulary: vocabulary.count)
    }

    /// The keys that size a stack ("encoder" or "decoder"), for messages.
    static func stackKeys(_ config: ExperimentConfig, _ role: String) -> String {
        config.layerStack("model.\(role)") != nil ? "model.\(role)" : "model.hidden, model.layers"
    }

    /// The encoder stack and the decoder entry: `[[model.encoder]]` / `[[model.decoder]]`, or the
    /// shorthand's one recurrent entry each. The decoder is stepped one token at a time (generation,
    /// scheduled sampling), so it must be one unidirectional recurrent entry.
    static func stacks(_ config: ExperimentConfig) throws
        -> (encoder: [LayerSpec], decoder: LayerSpec, naming: (encoder: StackNaming, decoder: StackNaming)) {
        guard let shorthand = config.shorthandEntry else {
            throw SeqTrainError("\(config.source): model.cell: no recurrent cell for the shorthand stack")
        }
        let encoder = config.layerStack("model.encoder"), decoder = config.layerStack("model.decoder")
        if let decoder {
            let why = "the decoder runs one token at a time (generation and scheduled sampling feed it its own "
                + "last token), so it is one unidirectional lstm, gru or rnn entry"
            let fix = "give its depth with layers = N and dropout inside that entry, and put other layers in "
                + "[[model.encoder]]"
            if decoder.count != 1 {
                throw SeqTrainError("\(config.source): model.decoder: \(decoder.count) entries; \(why); \(fix)")
            }
            switch decoder[0] {
            case .recurrent(let r) where r.bidirectional:
                throw SeqTrainError("""
                    \(config.source): model.decoder[0]: a bidirectional layer reads every step's future, which a \
                    decoder generating one token at a time does not have; \(why); use bidirectional = false
                    """)
            case .recurrent: break
            case .conv1d, .dense, .dropout:
                let type: String
                switch decoder[0] {
                case .conv1d: type = "a conv1d"
                case .dense: type = "a dense"
                default: type = "a dropout"
                }
                throw SeqTrainError("\(config.source): model.decoder[0]: \(type) entry; \(why); \(fix)")
            }
        }
        return (encoder ?? [shorthand], decoder?[0] ?? shorthand,
                (encoder == nil ? .named("encoder") : .indexed(prefix: "encoder"),
                 decoder == nil ? .named("decoder") : .indexed(prefix: "decoder")))
    }

    /// The model `config` describes, after checking that its parameters (values, gradients and two
    /// optimizer buffers) fit in memory and BLAS's dimensions.
    static func makeModel(_ config: ExperimentConfig, vocabulary V: Int, storedValues: Int? = nil) throws -> SequenceGenerator {
        let E = config.integer("model.embedding")
        let Z = config.integer("model.latent"), variational = config.boolean("model.variational")
        let (encoder, decoder, naming) = try stacks(config)
        guard case .recurrent(let r) = decoder else {
            throw SeqTrainError("\(config.source): model.decoder: not a recurrent entry")
        }
        let stacked = config.layerStack("model.encoder") != nil || config.layerStack("model.decoder") != nil
        let what = "model.embedding, model.latent, "
            + (stacked ? "model.encoder, model.decoder (or model.hidden, model.layers)" : "model.hidden, model.layers")
        let encoded = encoder.reduce(E) { $1.outputWidth(input: $0) }
        let stateWidth = try MemoryCheck.product([r.layers, r.hidden], what: what)
        // embedding V·E, to_latent (or to_mean and to_logvar) (O_e + 1)·Z, to_state (Z + 1)·L·H, head (H + 1)·V.
        let count = try MemoryCheck.sum([
            try MemoryCheck.product([V, E], what: what),
            try LayerSpec.parameterCount(encoder, input: E, what: what),
            try LayerSpec.parameterCount([decoder], input: E, what: what),
            try MemoryCheck.product([variational ? 2 : 1, encoded + 1, Z], what: what),
            try MemoryCheck.product([Z + 1, stateWidth], what: what),
            try MemoryCheck.product([r.hidden + 1, V], what: what)], what: what)
        try MemoryCheck.requireStored(storedValues, estimate: count)
        try MemoryCheck.requireMatrixDimensions([(V, "the vocabulary size"), (E, "model.embedding"),
                                                 (Z, "model.latent"), (stateWidth, "the decoder's layers × hidden"),
                                                 (count, "the parameters of \(what)")])
        try MemoryCheck.require(floats: try MemoryCheck.product([count, 4], what: what),
                                what: "a generator of vocabulary \(V) and \(count) parameters (\(what))",
                                fix: "lower the stacks' sizes (model.hidden, model.layers) or model.embedding, "
                                    + "or raise data.min_count")
        return SequenceGenerator(encoder: encoder, decoder: decoder, naming: naming, vocabulary: V, embedding: E,
                                 latent: Z, variational: variational)
    }

    // MARK: Experiment

    public var trainableModel: TrainableModel { model }
    public var dataMismatchHint: String { "its training text differs from rank 0's; every rank must read the same data.paths" }
    public var unitName: String { "tokens" }
    public var batchesPerEpoch: Int { batches.batchesPerEpoch }
    public var summary: String {
        let lengths = training.ids.map(\.count)
        return "\(config.text("job.name")): seq2seq\(model.variational ? " (variational)" : ""), \(training.ids.count) training and \(validation?.ids.count ?? 0) validation sequences of \(lengths.min() ?? 0) to \(lengths.max() ?? 0) \(rules.tokens) (\(tooLong) longer than data.max_length left out), vocabulary \(vocabulary.count) with 4 reserved; \(model.parameters.layout.entries.reduce(0) { $0 + $1.count }) parameters"
    }

    public func beginEpoch(_ epoch: Int) { batches.begin(epoch: epoch) }

    /// The coin of teacher forcing and the draw of the model's own token for (row key, step t) of
    /// training step `step`: one counter, two of its words.
    static func draws(seed: UInt64, step: Int, key: UInt64, t: Int) -> (coin: Double, token: Double) {
        let w = CounterRandom(seed: seed, purpose: .sampling).words(stream: UInt64(step) | 1 << 48, index: key << 16 | UInt64(t))
        return (Double(w.0 >> 8) / 16_777_216, Double(w.1 >> 8) / 16_777_216)
    }

    public func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                                   lap: (String) -> Void) throws -> (LossTotal, units: Int) {
        beginEpoch(epoch)
        let ids = rows.map { batches.batches[k][$0] }
        let batch = TokenBatch(ids.map { $0 >= 0 ? training.ids[$0] : nil })
        let B = batch.rows, T = batch.decoderSteps, V = vocabulary.count
        let seed = UInt64(config.integer("job.seed"))
        // A key per row from its sequence (rows past the data's end: from their slot).
        let keys = zip(ids, rows).map { $0 >= 0 ? UInt64($0) : UInt64(1) << 40 | UInt64($1) }
        let dropout = usesDropout ? DropoutContext(seed: seed, step: step, sampleKeys: keys) : nil
        lap("data")
        try model.encode(batch.sources, batch: B, steps: batch.sourceSteps, lengths: batch.lengths, dropout: dropout)
        if model.variational {
            let Z = model.latentSize, random = CounterRandom(seed: seed, purpose: .noise)
            model.useLatent(noise: (0..<(B * Z)).map { random.normal(stream: UInt64(step), index: keys[$0 / Z] &* UInt64(Z) &+ UInt64($0 % Z)) })
        }
        let epsilon = teacherForcing.probability(step: step)
        if epsilon >= 1 {
            try model.decode(inputs: batch.inputs, steps: T, dropout: dropout)
        } else {
            // Scheduled sampling: the true previous token with probability ε, else the model's own.
            let temperature = config.number("training.sampling_temperature")
            model.beginDecoding(capacity: T, dropout: dropout)
            var next = [Int32](repeating: TokenVocabulary.start, count: B)
            for t in 0..<T {
                let row = try model.decodeStep(next)
                guard t + 1 < T else { break }
                for b in 0..<B {
                    let truth = batch.inputs[b * T + t + 1]
                    let (coin, draw) = Self.draws(seed: seed, step: step, key: keys[b], t: t + 1)
                    next[b] = coin < epsilon || batch.rowWeights[b] == 0
                        ? truth : TokenSampling.choose(logits: row + b * V, count: V, temperature: temperature, uniform: draw)
                }
            }
            model.endDecoding()
        }
        lap("forward")
        let targets = batch.stepMajorTargets, mask = batch.stepMajorMask
        dLogits.resize(T * B * V)
        var total = try targets.withUnsafeBufferPointer { t in
            try mask.withUnsafeBufferPointer { m in
                try CrossEntropyLoss().evaluate(dLogits.pointer, logits: model.logits.pointer, targets: t.baseAddress!, mask: m.baseAddress,
                                                rows: T * B, classes: V)
            }
        }
        // The KL term, its weight rising over loss.kl_warmup_steps; normalized with the tokens.
        let warmup = config.integer("loss.kl_warmup_steps")
        let klWeight = warmup > 0 ? min(1, Double(step + 1) / Double(warmup)) : 1
        if model.variational { total.sum += klWeight * model.klDivergence(rowWeights: batch.rowWeights) }
        model.backward(dLogits.pointer, klWeight: Float(klWeight), rowWeights: batch.rowWeights)
        lap("backward")
        return (total, Int(batch.mask.reduce(0, +)))
    }

    private let dLogits = FloatBuffer()  // (T, B, V)
    /// The last validation's figures and the watch for posterior collapse.
    var lastTotals: GenerationTotals?
    var posteriorCollapse = PosteriorCollapseDetector()

    public var validationMetricNames: [String] {
        ["val_token_accuracy_teacher_forced", "val_token_accuracy_free_running", "val_exact_match"] + (model.variational ? ["val_kl"] : [])
    }
    public var hasValidation: Bool { (validation?.ids.count ?? 0) > 0 }

    public func validationTotals() throws -> [Double] {
        guard let validation else { return [] }
        let mine = validationShare(validation.ids.count, rank: rank, world: world)
        return try Self.measure(validation.ids, range: mine, model: model).values
    }

    public func validationMetrics(_ values: [Double]) -> ValidationResult {
        let totals = GenerationTotals(values)
        var result = ValidationResult(loss: totals.loss, metrics: [
            ("val_token_accuracy_teacher_forced", totals.teacherForcedAccuracy),
            ("val_token_accuracy_free_running", totals.freeRunningAccuracy),
            ("val_exact_match", totals.exactMatch)] + (model.variational ? [("val_kl", totals.klPerSequence)] : []))
        if let warning = Self.collapseWarning(totals, config: config) { result.warnings.append(warning) }
        lastTotals = totals
        return result
    }

    public func diagnose(_ result: ValidationResult, step: Int, totalSteps: Int) -> [DoctorFinding] {
        guard model.variational, let totals = lastTotals else { return [] }
        let finding = posteriorCollapse.observe(step: step, totalSteps: totalSteps,
                                                warmupSteps: config.integer("loss.kl_warmup_steps"),
                                                klPerSequence: totals.klPerSequence,
                                                sameOutputPairs: totals.sameOutputPairs, pairs: totals.differentPairs)
        return finding.map { [$0] } ?? []
    }

    /// Free-running output that falls into one repeated token while teacher-forced accuracy is
    /// good: the decoder learned to lean on the true previous token.
    static func collapseWarning(_ totals: GenerationTotals, config: ExperimentConfig) -> String? {
        // Early in training everything is poor; the sign is good teacher-forced accuracy beside it.
        guard totals.sequences >= 10, totals.collapsed >= 0.2 * totals.sequences, totals.teacherForcedAccuracy >= 0.6,
              totals.freeRunningAccuracy < 0.7 * totals.teacherForcedAccuracy else { return nil }
        let constant = config.text("training.teacher_forcing") == "constant" && config.number("training.teacher_forcing_start") >= 1
        return String(format: "free-running output collapses into one repeated token in %.0f%% of the validation sequences (token accuracy %.2f free-running against %.2f teacher-forced): the decoder has learned to lean on the true previous token. %@ training.sampling_temperature = 0 feeds the most likely token; a smaller model.hidden or more model.dropout makes the latent carry the sequence",
                      100 * totals.collapsed / totals.sequences, totals.freeRunningAccuracy, totals.teacherForcedAccuracy,
                      constant ? "Feed the model its own tokens during training: training.teacher_forcing = \"inverse_sigmoid\" (or linear, exponential) with training.teacher_forcing_min;"
                               : "Let ε fall further or faster (training.teacher_forcing_min, _k, _slope, _base);")
    }

    public func checkpointMetadata() -> [String: String] {
        let data = (try? JSONSerialization.data(withJSONObject: vocabulary.tokens)) ?? Data("[]".utf8)
        return ["seqtrain.tokens": String(decoding: data, as: UTF8.self)]
    }

    /// Validation figures of `range` of `sequences`, in chunks: teacher-forced cross-entropy and
    /// token accuracy, then free-running (most likely token fed back) accuracy, exact
    /// reconstruction and collapse into a repeated token; the KL term of μ at full weight. No noise,
    /// no dropout: z = μ.
    static func measure(_ sequences: [[Int32]], range: Range<Int>, model: SequenceGenerator) throws -> GenerationTotals {
        var totals = GenerationTotals()
        let V = model.vocabularySize
        for start in stride(from: range.lowerBound, to: range.upperBound, by: 64) {
            let chunk = Array(sequences[start..<min(start + 64, range.upperBound)])
            let batch = TokenBatch(chunk)
            let B = batch.rows, T = batch.decoderSteps
            try model.encode(batch.sources, batch: B, steps: batch.sourceSteps, lengths: batch.lengths)
            totals.kl += model.klDivergence(rowWeights: batch.rowWeights)
            try model.decode(inputs: batch.inputs, steps: T)
            let targets = batch.stepMajorTargets, mask = batch.stepMajorMask
            let loss = try targets.withUnsafeBufferPointer { t in
                try mask.withUnsafeBufferPointer { m in
                    try CrossEntropyLoss().evaluate(nil, logits: model.logits.pointer, targets: t.baseAddress!, mask: m.baseAddress, rows: T * B, classes: V)
                }
            }
            totals.crossEntropy += loss.sum
            totals.tokens += loss.count
            for i in 0..<(T * B) where mask[i] > 0 {
                if TokenSampling.choose(logits: model.logits.pointer + i * V, count: V, temperature: 0, uniform: 0) == targets[i] { totals.correctTeacherForced += 1 }
            }
            model.beginDecoding(capacity: T)
            var next = [Int32](repeating: TokenVocabulary.start, count: B)
            var predicted = [[Int32]](repeating: [], count: B)
            for _ in 0..<T {
                let row = try model.decodeStep(next)
                next = (0..<B).map { TokenSampling.choose(logits: row + $0 * V, count: V, temperature: 0, uniform: 0) }
                for b in 0..<B { predicted[b].append(next[b]) }
            }
            model.endDecoding()
            for (b, sequence) in chunk.enumerated() {
                let target = sequence + [TokenVocabulary.end]
                let right = zip(predicted[b], target).filter { $0 == $1 }.count
                totals.correctFreeRunning += Double(right)
                totals.exact += right == target.count ? 1 : 0
                totals.sequences += 1
                if longestRun(predicted[b]) >= 4 && longestRun(target) < 4 { totals.collapsed += 1 }
                if b > 0 && chunk[b] != chunk[b - 1] {
                    totals.differentPairs += 1
                    if predicted[b] == predicted[b - 1] { totals.sameOutputPairs += 1 }
                }
            }
        }
        return totals
    }

    static func longestRun(_ ids: [Int32]) -> Int {
        var longest = 0, run = 0, previous: Int32?
        for id in ids {
            run = id == previous ? run + 1 : 1
            previous = id
            longest = max(longest, run)
        }
        return longest
    }
}

/// A trained sequence generator loaded back from a checkpoint, for `eval` and `generate`.
public struct LoadedSequenceGenerator {
    public let path: String
    public let config: ExperimentConfig
    public let vocabulary: TokenVocabulary
    public let rules: TokenRules
    public let model: SequenceGenerator

    public init(path given: String) throws {
        let file: SafetensorsFile
        (path, file) = try Checkpoint.resolve(given)
        let (config, json) = try loadKindMetadata(file, path: path, kind: "seq2seq", key: "seqtrain.tokens")
        self.config = config
        guard let tokens = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String] else {
            throw SeqTrainError("\(path): seqtrain.tokens is not a JSON list of strings; the checkpoint is damaged")
        }
        vocabulary = try TokenVocabulary(stored: tokens, source: "\(path): seqtrain.tokens")
        rules = TokenRules(sequences: config.text("data.sequences"), tokens: config.text("data.tokens"))
        let size = vocabulary.count
        model = try building(path) { try Seq2SeqExperiment.makeModel(config, vocabulary: size, storedValues: file.storedValues) }
        try model.parameters.load(from: file, source: path)
    }

    /// The validation figures on the sequences of `paths`, cut as the training text was.
    public func evaluate(paths: [String]) throws -> EvaluationReport {
        let sequences = try TokenSequences(patterns: paths, key: "--data", rules: rules, unique: config.boolean("data.unique"),
                                           maxLength: config.integer("data.max_length"))
        let encoded = EncodedSequences(sequences, vocabulary: vocabulary)
        let totals = try Seq2SeqExperiment.measure(encoded.ids, range: 0..<encoded.ids.count, model: model)
        guard totals.loss.isFinite else { throw model.parameters.overflowError(source: path, what: "the loss over --data") }
        var fields: [(name: String, value: Any)] = [
            ("loss", totals.loss), ("token_accuracy_teacher_forced", totals.teacherForcedAccuracy),
            ("token_accuracy_free_running", totals.freeRunningAccuracy), ("exact_match", totals.exactMatch)]
        if model.variational { fields.append(("kl", totals.klPerSequence)) }
        fields += [("sequences", encoded.ids.count), ("unknown_tokens", encoded.unknown), ("checkpoint", path)]
        let text = String(format: "%@ on %d sequences of %@: loss %.4f per token; token accuracy %.4f teacher-forced, %.4f free-running; exact reconstruction %.4f%@%@",
                          path, encoded.ids.count, sequences.source, totals.loss, totals.teacherForcedAccuracy, totals.freeRunningAccuracy, totals.exactMatch,
                          model.variational ? String(format: "; KL %.4f per sequence", totals.klPerSequence) : "",
                          encoded.unknown > 0 ? "; \(encoded.unknown) tokens outside the vocabulary read as <unk>" : "")
        return EvaluationReport(fields: fields, text: text)
    }

    /// The latent mean μ of every sequence, (N, Z), encoded 64 at a time.
    func latentMeans(_ ids: [[Int32]]) throws -> [Float] {
        var latents: [Float] = []
        for start in stride(from: 0, to: ids.count, by: 64) {
            let batch = TokenBatch(Array(ids[start..<min(start + 64, ids.count)]))
            try model.encode(batch.sources, batch: batch.rows, steps: batch.sourceSteps, lengths: batch.lengths)
            latents += model.mean.array
        }
        return latents
    }

    /// The latent mean of every sequence of `paths` (cut as the training text was), (N, Z), to `out`
    /// (.npy float32 or CSV): what `generate --latent` decodes back.
    public func encode(paths: [String], out: String) throws -> String {
        let sequences = try TokenSequences(patterns: paths, key: "--data", rules: rules,
                                           unique: config.boolean("data.unique"),
                                           maxLength: config.integer("data.max_length"))
        let encoded = EncodedSequences(sequences, vocabulary: vocabulary)
        let Z = model.latentSize
        let latents = try latentMeans(encoded.ids)
        guard latents.allSatisfy({ $0.isFinite }) else {
            throw model.parameters.overflowError(source: path, what: "a latent vector")
        }
        try writeTable(latents, rows: encoded.ids.count, columns: (0..<Z).map { "z\($0)" }, to: out)
        let unknown = encoded.unknown > 0 ? "; \(encoded.unknown) tokens outside the vocabulary read as <unk>" : ""
        return "\(encoded.ids.count) latent vectors of \(Z) values (the means μ) in \(out)\(unknown)"
    }

    /// Sequences decoded from the latents `request` names, one per line.
    public func generate(_ request: GenerationRequest) throws -> String {
        let Z = model.latentSize
        var latents: [Float] = []
        var count = 0
        switch request.source {
        case .text(let texts):
            let sequences = texts.flatMap { rules.sequences(of: $0) }.map { rules.tokens(of: $0) }
            guard !sequences.isEmpty else { throw SeqTrainError("--from: no sequence in the text") }
            let ids = sequences.map { vocabulary.encode(Array($0.prefix(config.integer("data.max_length")))).ids }
            latents = try latentMeans(ids)
            count = ids.count
        case .latents(let file):
            let array = try NumpyArray(contentsOf: file)
            guard array.shape.count == 2, array.shape[1] == Z else {
                throw SeqTrainError("--latent \(file): shape \(array.shape); the model decodes (N, \(Z)) latent vectors")
            }
            latents = array.floats()
            guard latents.allSatisfy({ $0.isFinite }) else { throw SeqTrainError("--latent \(file): holds NaN or infinite values") }
            count = array.shape[0]
        case .prior(let n):
            guard model.variational else {
                throw SeqTrainError("--prior: \(path) is not variational (model.variational = false): its latents follow no known distribution; use --from or --latent")
            }
            let random = CounterRandom(seed: request.seed, purpose: .noise)
            latents = (0..<(n * Z)).map { random.normal(stream: 0, index: UInt64($0)) }
            count = n
        }
        let random = CounterRandom(seed: request.seed, purpose: .sampling)
        let V = vocabulary.count, steps = request.maxLength + 1
        var lines: [String] = []
        for start in stride(from: 0, to: count, by: 64) {
            let rows = min(64, count - start)
            model.setLatent(Array(latents[(start * Z)..<((start + rows) * Z)]), batch: rows)
            model.beginDecoding(capacity: steps)
            var next = [Int32](repeating: TokenVocabulary.start, count: rows)
            var out = [[Int32]](repeating: [], count: rows)
            var done = [Bool](repeating: false, count: rows)
            for t in 0..<steps where done.contains(false) {
                let row = try model.decodeStep(next)
                for b in 0..<rows where !done[b] {
                    guard (0..<V).allSatisfy({ row[b * V + $0].isFinite }) else {
                        throw model.parameters.overflowError(source: path, what: "a next-token score")
                    }
                    let u = Double(random.uniform(stream: UInt64(start + b), index: UInt64(t)))
                    next[b] = TokenSampling.choose(logits: row + b * V, count: V, temperature: request.temperature, uniform: u)
                    if next[b] == TokenVocabulary.end { done[b] = true } else { out[b].append(next[b]) }
                }
            }
            model.endDecoding()
            lines += out.map { rules.join(vocabulary.decode($0)) }
        }
        return lines.joined(separator: "\n")
    }
}
