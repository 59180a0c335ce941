import Foundation

/// What an autoencoder's checkpoint records so that `eval`, `encode` and `score` read new data as
/// training did: the features per step, the CSV settings and the standardization fitted on the
/// training split.
public struct SequencePreprocessing: Codable, Equatable {
    public var features: Int
    public var header: Bool
    public var ignoreColumns: [String]
    public var mean: [Float]?
    public var std: [Float]?
    /// The feature columns by header name, in training order (nil: no header, .npy, or an older
    /// checkpoint). New files are read by these names.
    public var inputColumns: [String]?

    /// The reader for files of this experiment (`inputsKey` names them in messages).
    func reader(inputsKey: String = "data.inputs") -> NumericReader {
        var reader = NumericReader()
        reader.header = header
        reader.ignoredColumns = ignoreColumns
        reader.inputColumns = inputColumns
        reader.layout = .sequence
        reader.inputsKey = inputsKey
        return reader
    }

    /// Checks what a checkpoint says before anything is built from it.
    func validate(source: String) throws {
        guard (1...(1 << 24)).contains(features),
              mean.map({ $0.count == features && $0.allSatisfy { $0.isFinite } }) ?? true,
              std.map({ $0.count == features && $0.allSatisfy { $0 > 0 && $0.isFinite } }) ?? true,
              (mean == nil) == (std == nil) else {
            throw SeqTrainError("\(source): seqtrain.preprocessing is inconsistent (features or standardization)")
        }
    }

    /// The standardization, when fitted.
    var standardization: Standardization? { mean.flatMap { m in std.map { Standardization(mean: m, std: $0) } } }

    /// Per feature: the data's units of one standardized unit, and the value of 0.
    func scale(_ f: Int) -> (std: Double, mean: Double) { (Double(std?[f] ?? 1), Double(mean?[f] ?? 0)) }
}

/// Reconstruction figures summed over samples (and ranks): the loss as trained (standardized
/// units), the squared error in the data's own units, and what the data's variance needs.
struct ReconstructionTotals {
    var lossSum = 0.0, lossCount = 0.0
    var squaredError = 0.0, elements = 0.0
    var sums: [Double], squares: [Double]   // (F): Σx and Σx² in data units over valid steps

    init(features: Int) {
        sums = [Double](repeating: 0, count: features)
        squares = sums
    }

    init(_ totals: [Double], features: Int) {
        lossSum = totals[0]; lossCount = totals[1]; squaredError = totals[2]; elements = totals[3]
        sums = Array(totals[4..<(4 + features)])
        squares = Array(totals[(4 + features)...])
    }

    var values: [Double] { [lossSum, lossCount, squaredError, elements] + sums + squares }
    var loss: Double { lossCount > 0 ? lossSum / lossCount : .nan }
    /// Mean squared reconstruction error per element, in the data's units.
    var meanSquaredError: Double { elements > 0 ? squaredError / elements : .nan }
    /// Mean over features of each feature's variance over the valid steps, in the data's units.
    var variance: Double {
        let perFeature = elements / Double(max(sums.count, 1))
        guard perFeature > 0 else { return .nan }
        return zip(sums, squares).reduce(0.0) { $0 + max($1.1 / perFeature - ($1.0 / perFeature) * ($1.0 / perFeature), 0) } / Double(sums.count)
    }
    /// The error as a share of the variance: 0 is perfect, 1 is no better than each feature's mean.
    var varianceRatio: Double { meanSquaredError / variance }
}

/// The autoencoder kind (`model.kind = "autoencoder"`): numeric sequences (N, T, F) from `.npy`,
/// CSV or TSV, each encoded to a latent vector and reconstructed over its valid steps. Every rank
/// holds the samples; each global batch is a slice of one permutation of (seed, epoch), and rank r
/// takes rows shard(batch, r) of it.
public final class AutoencoderExperiment: Experiment {
    public static let kind = ExperimentKind(
        name: "autoencoder", summary: "an LSTM or GRU autoencoder of numeric sequences: reconstruction, latent vectors, anomaly scores",
        configKeys: configKeys,
        make: { config, rank, world in try AutoencoderExperiment(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, _ in try LoadedAutoencoder(path: checkpoint).evaluate(data: data) },
        predict: nil,
        encode: { checkpoint, data, out in try LoadedAutoencoder(path: checkpoint).encode(data: data, out: out) },
        score: { checkpoint, data, out in try LoadedAutoencoder(path: checkpoint).score(data: data, out: out) })

    static let configKeys: [ConfigKey] = [
        ConfigKey(section: "data", name: "inputs", type: .texts, defaultValue: .texts([]),
                  help: "Sequences: .npy of (N, T) or (N, T, F), or CSV/TSV with one sample per row; trailing NaN ends a shorter one."),
        ConfigKey(section: "data", name: "header", type: .boolean, defaultValue: .boolean(false),
                  help: "CSV/TSV files start with a header line of column names."),
        ConfigKey(section: "data", name: "ignore_columns", type: .columns, defaultValue: .texts([]),
                  help: "CSV/TSV columns (names or 0-based indices) left out: an id, or the label column of a UCR file."),
        ConfigKey(section: "data", name: "validation_inputs", type: .texts, defaultValue: .texts([]),
                  help: "Validation sequences (same format); empty: hold out data.validation_fraction of the inputs."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.2),
                  help: "Share of the samples held out for validation, chosen by a seeded permutation."),
        ConfigKey(section: "data", name: "standardize", type: .boolean, defaultValue: .boolean(true),
                  help: "Scale every feature to mean 0 and deviation 1 with statistics of the training split (stored in the checkpoint)."),
        ConfigKey(section: "model", name: "encoder", type: .optionalLayerStack, defaultValue: .layers([]),
                  help: "The encoder's layer stack ([[model.encoder]] tables, README \"Layer stacks\"); "
                      + "none: one recurrent entry of the shorthand keys."),
        ConfigKey(section: "model", name: "decoder", type: .optionalLayerStack, defaultValue: .layers([]),
                  help: "The decoder's layer stack ([[model.decoder]]); none: one recurrent entry of the shorthand "
                      + "keys. With decoder_input = \"previous_output\" it is one unidirectional lstm or gru."),
        ConfigKey(section: "model", name: "cell", type: .choice(["lstm", "gru"]), defaultValue: .text("lstm"),
                  help: "Shorthand: the recurrent cell of the encoder and the decoder."),
        ConfigKey(section: "model", name: "hidden", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Shorthand: hidden width H of every layer."),
        ConfigKey(section: "model", name: "layers", type: .positiveInteger, defaultValue: .integer(1),
                  help: "Shorthand: stacked recurrent layers of the encoder and of the decoder."),
        ConfigKey(section: "model", name: "latent", type: .positiveInteger, defaultValue: .integer(16),
                  help: "Width Z of the latent vector: a linear map of the encoder's last valid top-layer state."),
        ConfigKey(section: "model", name: "decoder_input", type: .choice(DecoderInput.allCases.map(\.rawValue)), defaultValue: .text("repeat"),
                  help: "repeat: the latent at every step (Keras's RepeatVector); previous_output: the decoder's own previous output, its state from the latent."),
        ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0),
                  help: "Shorthand: dropout between recurrent layers during training (nn.LSTM's dropout)."),
        ConfigKey(section: "loss", name: "kind", type: .choice(["mse", "l1"]), defaultValue: .text("mse"),
                  help: "Reconstruction loss over the valid steps: mean squared (F.mse_loss) or absolute (F.l1_loss) error."),
    ]

    public let config: ExperimentConfig
    public let rank: Int, world: Int
    public let preprocessing: SequencePreprocessing
    /// Training and validation samples, standardized.
    public let training: LabelledData
    public let validation: LabelledData?
    public let model: SequenceAutoencoder
    let lossKind: RegressionLoss
    public let rows: Range<Int>
    let batchSize: Int
    var epochOrder: [Int] = []
    var orderEpoch = -1
    public let dataFingerprint: UInt64

    public init(config: ExperimentConfig, rank: Int = 0, world: Int = 1) throws {
        self.config = config
        self.rank = rank
        self.world = world
        (batchSize, rows) = try batchShare(config, rank: rank, world: world)
        guard !config.texts("data.inputs").isEmpty else {
            throw SeqTrainError("data.inputs: no input files; give .npy, .csv or .tsv sequences (for example `seqtrain data curves --out data/curves` makes a set)")
        }
        var settings = SequencePreprocessing(features: 0, header: config.boolean("data.header"),
                                             ignoreColumns: config.texts("data.ignore_columns"), mean: nil, std: nil)
        let all = try settings.reader().read(inputs: config.texts("data.inputs"), labels: [])
        dataFingerprint = all.fingerprint
        settings.inputColumns = all.columns
        var trainPart = all, heldPart: LabelledData?
        let validationInputs = config.texts("data.validation_inputs")
        if !validationInputs.isEmpty {
            let held = try settings.reader(inputsKey: "data.validation_inputs").read(inputs: validationInputs, labels: [])
            guard held.features == all.features else {
                throw SeqTrainError("data.validation_inputs: sequences have \(held.features) features per step, the training inputs \(all.features)")
            }
            heldPart = held
        } else if config.number("data.validation_fraction") > 0 {
            let split = seededSplit(count: all.count, fraction: config.number("data.validation_fraction"), seed: UInt64(config.integer("job.seed")))
            guard !split.train.isEmpty else { throw SeqTrainError("data.validation_fraction leaves no training samples") }
            trainPart = all.subset(split.train)
            if !split.validation.isEmpty { heldPart = all.subset(split.validation) }
        }
        if config.boolean("data.standardize") {
            let fitted = Standardization(fitting: trainPart)
            settings.mean = fitted.mean
            settings.std = fitted.std
        }
        settings.features = all.features
        preprocessing = settings
        if let standardization = settings.standardization {
            standardization.apply(&trainPart)
            if heldPart != nil { standardization.apply(&heldPart!) }
        }
        training = trainPart
        validation = heldPart
        lossKind = RegressionLoss(rawValue: config.text("loss.kind"))!
        let stacks = try Self.stacks(config)
        for (specs, input, key) in [(stacks.encoder, all.features, "model.encoder"),
                                    (stacks.decoder, config.integer("model.latent"), "model.decoder")] {
            try MemoryCheck.requireStackBuffers(specs, input: input, rows: 2 * rows.count, steps: training.steps,
                                                what: key, source: config.source,
                                                shortest: training.lengths.min() ?? training.steps)
        }
        model = try Self.makeModel(config, features: all.features)
    }

    /// The encoder and decoder stacks: `[[model.encoder]]` / `[[model.decoder]]`, or the shorthand's
    /// one recurrent entry each, checked for what the decoder must do.
    static func stacks(_ config: ExperimentConfig) throws
        -> (encoder: [LayerSpec], decoder: [LayerSpec], naming: (encoder: StackNaming, decoder: StackNaming)) {
        guard let shorthand = config.shorthandEntry else {
            throw SeqTrainError("\(config.source): model.cell: no recurrent cell for the shorthand stack")
        }
        let encoder = config.layerStack("model.encoder"), decoder = config.layerStack("model.decoder")
        if let decoder {
            let mode = config.text("model.decoder_input")
            if mode == DecoderInput.previousOutput.rawValue {
                guard decoder.count == 1, case .recurrent(let r) = decoder[0], !r.bidirectional else {
                    throw SeqTrainError("""
                        \(config.source): model.decoder: with model.decoder_input = "previous_output" the decoder \
                        runs one step at a time on its own last output, so it is one unidirectional lstm or gru \
                        entry (its layers and hidden are free); use decoder_input = "repeat" for a stack of \
                        several entries, a convolution or a bidirectional layer
                        """)
                }
            }
            try LayerStackConfig.requireKeptSteps(decoder, key: "model.decoder", source: config.source,
                                                  purpose: "it reconstructs")
        }
        return (encoder ?? [shorthand], decoder ?? [shorthand],
                (encoder == nil ? .named("encoder") : .indexed(prefix: "encoder"),
                 decoder == nil ? .named("decoder") : .indexed(prefix: "decoder")))
    }

    /// The model `config` describes, after checking that its parameters (values, gradients and two
    /// optimizer buffers) fit in memory and BLAS's dimensions.
    static func makeModel(_ config: ExperimentConfig, features: Int, storedValues: Int? = nil) throws -> SequenceAutoencoder {
        let Z = config.integer("model.latent")
        let mode = DecoderInput(rawValue: config.text("model.decoder_input"))!
        let (encoder, decoder, naming) = try stacks(config)
        let what = "model.encoder, model.decoder, model.latent (or model.hidden, model.layers)"
        let encoded = encoder.reduce(features) { $1.outputWidth(input: $0) }
        let decoded = decoder.reduce(mode == .repeatLatent ? Z : features) { $1.outputWidth(input: $0) }
        var stateWidth = 0
        if case .recurrent(let r) = decoder[0] {
            stateWidth = try MemoryCheck.product([r.layers, r.hidden], what: what)
        }
        // to_latent (O_e + 1)·Z, to_state (Z + 1)·L·H, head (O_d + 1)·F.
        let count = try MemoryCheck.sum([
            try LayerSpec.parameterCount(encoder, input: features, what: what),
            try LayerSpec.parameterCount(decoder, input: mode == .repeatLatent ? Z : features, what: what),
            try MemoryCheck.product([encoded + 1, Z], what: what),
            try MemoryCheck.product([Z + 1, stateWidth], what: what),
            try MemoryCheck.product([decoded + 1, features], what: what)], what: what)
        try MemoryCheck.requireStored(storedValues, estimate: count)
        try MemoryCheck.requireMatrixDimensions([(Z, "model.latent"), (features, "the features per step"),
                                                 (count, "the parameters of \(what)")])
        try MemoryCheck.require(floats: try MemoryCheck.product([count, 4], what: what),
                                what: "an autoencoder of \(count) parameters (\(what))",
                                fix: "lower the stacks' sizes (model.hidden, model.layers) or model.latent")
        return SequenceAutoencoder(encoder: encoder, decoder: decoder, naming: naming, features: features,
                                   latentSize: Z, decoderInput: mode)
    }

    // MARK: Experiment

    public var trainableModel: TrainableModel { model }
    public var dataMismatchHint: String { "its training data differs from rank 0's; every rank must read the same data.inputs" }
    public var unitName: String { "samples" }
    public var batchesPerEpoch: Int { batchCount(training.count, batchSize: batchSize) }
    public var summary: String {
        "\(config.text("job.name")): autoencoder, \(training.count) training and \(validation?.count ?? 0) validation sequences of up to \(training.steps) steps × \(training.features) feature(s), latent \(model.latentSize), decoder input \(model.decoderInput.rawValue); \(model.parameters.layout.entries.reduce(0) { $0 + $1.count }) parameters"
    }

    public func beginEpoch(_ epoch: Int) {
        guard orderEpoch != epoch else { return }
        orderEpoch = epoch
        epochOrder = CounterRandom(seed: UInt64(config.integer("job.seed")), purpose: .shuffle).permutation(training.count, stream: UInt64(epoch))
    }

    public func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                                   lap: (String) -> Void) throws -> (LossTotal, units: Int) {
        beginEpoch(epoch)
        let slots = rows.map { k * batchSize + $0 }
        let samples = slots.map { $0 < epochOrder.count ? epochOrder[$0] : -1 }
        let (inputs, steps, lengths) = training.gather(samples)
        // Rows past the epoch's end count for nothing: length 0 masks every step.
        let counted = zip(samples, lengths).map { $0 >= 0 ? $1 : 0 }
        let dropout = config.number("model.dropout") > 0
            ? DropoutContext(seed: UInt64(config.integer("job.seed")), step: step, sampleKeys: slots.map(UInt64.init)) : nil
        lap("data")
        inputs.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: samples.count, steps: steps, lengths: lengths, dropout: dropout) }
        lap("forward")
        let total = inputs.withUnsafeBufferPointer {
            model.loss(target: $0.baseAddress!, loss: lossKind, gradient: true, countedLengths: counted)
        }
        lap("backward")
        return (total, samples.filter { $0 >= 0 }.count)
    }

    public var validationMetricNames: [String] { ["val_reconstruction_mse", "val_variance_ratio"] }
    public var hasValidation: Bool { (validation?.count ?? 0) > 0 }

    public func validationTotals() throws -> [Double] {
        guard let validation else { return [] }
        let mine = validationShare(validation.count, rank: rank, world: world)
        return Self.measure(validation, range: mine, model: model, loss: lossKind, preprocessing: preprocessing).values
    }

    public func validationMetrics(_ totals: [Double]) -> ValidationResult {
        let figures = ReconstructionTotals(totals, features: preprocessing.features)
        return ValidationResult(loss: figures.loss, metrics: [("val_reconstruction_mse", figures.meanSquaredError),
                                                              ("val_variance_ratio", figures.varianceRatio)])
    }

    public func checkpointMetadata() -> [String: String] { ["seqtrain.preprocessing": metadataJSON(preprocessing)] }

    /// Reconstructs `range` of `data` (standardized) in chunks, no dropout; `perSample` receives
    /// each sample's mean squared error in the data's units.
    static func measure(_ data: LabelledData, range: Range<Int>, model: SequenceAutoencoder, loss: RegressionLoss,
                        preprocessing: SequencePreprocessing, perSample: ((Int, Double) -> Void)? = nil) -> ReconstructionTotals {
        let F = data.features
        var totals = ReconstructionTotals(features: F)
        forEachChunk(of: data, range: range) { indices, block in
            let B = indices.count, T = block.steps
            block.inputs.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, steps: T, lengths: block.lengths) }
            let total = block.inputs.withUnsafeBufferPointer { model.loss(target: $0.baseAddress!, loss: loss, gradient: false) }
            totals.lossSum += total.sum
            totals.lossCount += total.count
            let y = model.reconstruction.pointer  // (T, B, F)
            for (r, s) in indices.enumerated() {
                var sampleError = 0.0
                for t in 0..<block.lengths[r] {
                    for f in 0..<F {
                        let (std, mean) = preprocessing.scale(f)
                        let x = Double(block.inputs[(r * T + t) * F + f])
                        let e = (Double(y[(t * B + r) * F + f]) - x) * std
                        sampleError += e * e
                        let value = x * std + mean
                        totals.sums[f] += value
                        totals.squares[f] += value * value
                    }
                }
                totals.squaredError += sampleError
                let counted = Double(block.lengths[r] * F)
                totals.elements += counted
                perSample?(s, sampleError / counted)
            }
        }
        return totals
    }
}

/// A trained autoencoder loaded back from a checkpoint, for `eval`, `encode` and `score`.
public struct LoadedAutoencoder {
    public let path: String
    public let config: ExperimentConfig
    public let preprocessing: SequencePreprocessing
    public let model: SequenceAutoencoder

    public init(path given: String) throws {
        let file: SafetensorsFile
        (path, file) = try Checkpoint.resolve(given)
        let (config, json) = try loadKindMetadata(file, path: path, kind: "autoencoder", key: "seqtrain.preprocessing")
        self.config = config
        let preprocessing = try decodeStored(SequencePreprocessing.self, json, key: "seqtrain.preprocessing", path: path)
        try preprocessing.validate(source: path)
        self.preprocessing = preprocessing
        model = try building(path) { try AutoencoderExperiment.makeModel(config, features: preprocessing.features, storedValues: file.storedValues) }
        try model.parameters.load(from: file, source: path)
    }

    /// Sequences read with the checkpoint's settings and standardization.
    func read(_ data: [String]) throws -> LabelledData {
        var samples = try preprocessing.reader(inputsKey: "--data").read(inputs: data, labels: [])
        guard samples.features == preprocessing.features else {
            throw SeqTrainError("--data: sequences have \(samples.features) features per step, the model was trained on \(preprocessing.features)")
        }
        preprocessing.standardization?.apply(&samples)
        return samples
    }

    /// The mean reconstruction error (data units) and its ratio to the data's variance.
    public func evaluate(data: [String]) throws -> EvaluationReport {
        let samples = try read(data)
        let totals = AutoencoderExperiment.measure(samples, range: 0..<samples.count, model: model,
                                                   loss: RegressionLoss(rawValue: config.text("loss.kind")) ?? .mse, preprocessing: preprocessing)
        guard totals.loss.isFinite && totals.meanSquaredError.isFinite else {
            throw model.parameters.overflowError(source: path, what: "the reconstruction of --data")
        }
        return EvaluationReport(
            fields: [("loss", totals.loss), ("reconstruction_mse", totals.meanSquaredError), ("variance_ratio", totals.varianceRatio),
                     ("samples", samples.count), ("checkpoint", path)],
            text: String(format: "%@ on %d sequences of %@: reconstruction MSE %.6g in the data's units, %.4f of the data's variance (%.6g); loss %.6g (%@, standardized)",
                         path, samples.count, samples.source, totals.meanSquaredError, totals.varianceRatio, totals.variance, totals.loss,
                         config.text("loss.kind")))
    }

    /// The latent vector of every sample, (N, Z), to `out` (.npy float32 or CSV).
    public func encode(data: [String], out: String) throws -> String {
        let samples = try read(data)
        let Z = model.latentSize
        var latents = [Float](repeating: 0, count: samples.count * Z)
        forEachChunk(of: samples, range: 0..<samples.count) { indices, block in
            block.inputs.withUnsafeBufferPointer { model.encode($0.baseAddress!, batch: indices.count, steps: block.steps, lengths: block.lengths) }
            for (r, s) in indices.enumerated() { for j in 0..<Z { latents[s * Z + j] = model.latent[r * Z + j] } }
        }
        guard latents.allSatisfy({ $0.isFinite }) else { throw model.parameters.overflowError(source: path, what: "a latent vector") }
        try writeTable(latents, rows: samples.count, columns: (0..<Z).map { "z\($0)" }, to: out)
        return "\(samples.count) latent vectors of \(Z) values in \(out)"
    }

    /// Every sample's reconstruction error (mean squared, data units): the anomaly score.
    public func score(data: [String], out: String) throws -> String {
        let samples = try read(data)
        var scores = [Float](repeating: 0, count: samples.count)
        _ = AutoencoderExperiment.measure(samples, range: 0..<samples.count, model: model, loss: .mse, preprocessing: preprocessing) { s, e in
            scores[s] = Float(e)
        }
        guard scores.allSatisfy({ $0.isFinite }) else { throw model.parameters.overflowError(source: path, what: "a reconstruction error") }
        try writeTable(scores, rows: samples.count, columns: ["reconstruction_mse"], to: out)
        let sorted = scores.sorted()
        return String(format: "%d reconstruction errors in %@ (median %.6g, 99th percentile %.6g, largest %.6g)", samples.count, out,
                      sorted[sorted.count / 2], sorted[min(sorted.count - 1, sorted.count * 99 / 100)], sorted.last ?? 0)
    }
}

/// (rows, columns) floats to a .npy (float32) or a CSV file with a header and a `sample` column.
func writeTable(_ values: [Float], rows: Int, columns: [String], to out: String) throws {
    let lower = out.lowercased()
    if lower.hasSuffix(".npy") {
        let array = NumpyArray(floats: values, shape: columns.count == 1 ? [rows] : [rows, columns.count])
        try OutputFiles.write([(out, array.encoded())])
        return
    }
    guard lower.hasSuffix(".csv") else { throw SeqTrainError("--out \(out): give a .npy or .csv file name") }
    var text = "sample," + columns.map(csvCell).joined(separator: ",") + "\n"
    let c = columns.count
    for r in 0..<rows {
        text += "\(r)," + (0..<c).map { String(values[r * c + $0]) }.joined(separator: ",") + "\n"
    }
    try OutputFiles.write(text, to: out)
}

extension SequenceAutoencoder {
    /// The counted (T, B) rows: 1 for steps before each sample's length (`counted`, default the
    /// lengths of the last forward; 0 leaves a row out).
    func stepMask(_ counted: [Int]? = nil) -> [Float] {
        var mask = [Float](repeating: 0, count: steps * batch)
        for b in 0..<batch { for t in 0..<min(counted?[b] ?? lengths[b], steps) { mask[t * batch + b] = 1 } }
        return mask
    }

    /// The regression loss (Losses/Regression.swift) of the reconstruction against x (B, T, F) over
    /// the valid steps (`counted` lengths per row when given: 0 leaves a row out); with `gradient`,
    /// back-propagates its sum.
    public func loss(target x: UnsafePointer<Float>, loss kind: RegressionLoss = .mse, gradient: Bool,
                     countedLengths counted: [Int]? = nil) -> LossTotal {
        let B = batch, T = steps, F = features
        target.resize(T * B * F)
        copySequence(target.pointer, .stepMajor, x, .batchFirst, batch: B, steps: T, width: F)
        if gradient { dReconstruction.resize(T * B * F) }
        let mask = stepMask(counted)
        let total = mask.withUnsafeBufferPointer {
            kind.evaluate(gradient ? dReconstruction.pointer : nil, prediction: reconstruction.pointer,
                          target: target.pointer, mask: $0.baseAddress, rows: T * B, features: F)
        }
        if gradient { backward(dReconstruction.pointer) }
        return total
    }
}
