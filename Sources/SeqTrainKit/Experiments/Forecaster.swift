import Foundation

/// What a forecaster's checkpoint records so that `eval` and `forecast` read new series as
/// training did: the columns, which of them are targets, first differences, and the
/// standardization fitted on the training part.
public struct SeriesPreprocessing: Codable, Equatable {
    public var columns: [String]
    /// Indices into `columns` of the predicted columns.
    public var targets: [Int]
    public var header: Bool
    public var difference: Bool
    /// Per column, of the (differenced) training values.
    public var mean: [Float]?
    public var std: [Float]?
    /// Every column of the training files (nil in checkpoints written before it was kept): without
    /// a header, new files must have as many, since columns are known by position.
    public var fileColumns: [String]?
    /// data.time_column (nil in checkpoints written before it existed).
    public var timeColumn: String?

    public init(columns: [String], targets: [Int], header: Bool, difference: Bool, mean: [Float]?, std: [Float]?) {
        self.columns = columns
        self.targets = targets
        self.header = header
        self.difference = difference
        self.mean = mean
        self.std = std
    }

    public var features: Int { columns.count }
    /// Steps the transform drops from the front (first differences need a previous value).
    public var offset: Int { difference ? 1 : 0 }

    func reader(key: String = "data.inputs") -> SeriesReader {
        var reader = SeriesReader()
        reader.header = header
        reader.columns = columns
        reader.timeColumn = timeColumn ?? ""
        reader.key = key
        return reader
    }

    func validate(source: String) throws {
        let F = columns.count
        guard (1...(1 << 16)).contains(F), !targets.isEmpty, targets.allSatisfy({ (0..<F).contains($0) }), Set(targets).count == targets.count,
              Set(columns).count == F, (mean == nil) == (std == nil),
              mean.map({ $0.count == F && $0.allSatisfy { $0.isFinite } }) ?? true,
              std.map({ $0.count == F && $0.allSatisfy { $0 > 0 && $0.isFinite } }) ?? true else {
            throw SeqTrainError("\(source): seqtrain.preprocessing is inconsistent (columns, targets or standardization)")
        }
    }

    /// The model's view of a series, (T − offset, F): first differences when asked, standardized.
    public func transform(_ series: TimeSeries) -> [Float] {
        let F = features, T = series.steps - offset
        var out = [Float](repeating: 0, count: max(T, 0) * F)
        for t in 0..<max(T, 0) {
            for f in 0..<F {
                var v = difference ? series[t + 1, f] - series[t, f] : series[t, f]
                if let mean, let std { v = (v - mean[f]) / std[f] }
                out[t * F + f] = v
            }
        }
        return out
    }

    /// A standardized (differenced) value of column f back in the data's units (as a change, when differenced).
    public func restore(_ v: Float, column f: Int) -> Double {
        guard let mean, let std else { return Double(v) }
        return Double(v) * Double(std[f]) + Double(mean[f])
    }
}

/// Forecast errors in the data's units, summed over origins, horizon steps and targets (and ranks),
/// beside the naive last-value and seasonal-naive forecasts of the same points.
public struct ForecastTotals {
    public var lossSum = 0.0, lossCount = 0.0
    public var absolute = 0.0, squared = 0.0, count = 0.0
    public var naiveAbsolute = 0.0, naiveSquared = 0.0
    public var seasonalAbsolute = 0.0, seasonalSquared = 0.0, seasonalCount = 0.0

    public init() {}
    init(_ v: [Double]) {
        (lossSum, lossCount, absolute, squared, count) = (v[0], v[1], v[2], v[3], v[4])
        (naiveAbsolute, naiveSquared, seasonalAbsolute, seasonalSquared, seasonalCount) = (v[5], v[6], v[7], v[8], v[9])
    }
    var values: [Double] { [lossSum, lossCount, absolute, squared, count, naiveAbsolute, naiveSquared, seasonalAbsolute, seasonalSquared, seasonalCount] }
    public var loss: Double { lossCount > 0 ? lossSum / lossCount : .nan }
    public var mae: Double { count > 0 ? absolute / count : .nan }
    public var rmse: Double { count > 0 ? (squared / count).squareRoot() : .nan }
    public var naiveMAE: Double { count > 0 ? naiveAbsolute / count : .nan }
    public var naiveRMSE: Double { count > 0 ? (naiveSquared / count).squareRoot() : .nan }
    public var seasonalMAE: Double { seasonalCount > 0 ? seasonalAbsolute / seasonalCount : .nan }
    public var seasonalRMSE: Double { seasonalCount > 0 ? (seasonalSquared / seasonalCount).squareRoot() : .nan }

    static func + (a: ForecastTotals, b: ForecastTotals) -> ForecastTotals { ForecastTotals(zip(a.values, b.values).map { $0 + $1 }) }
}

/// The forecaster kind (`model.kind = "forecaster"`): one or more numeric series, each file one
/// series of T steps and F columns, forecasting the next `model.horizon` steps of the target
/// columns. Windowed training reads shuffled windows of `training.look_back` steps from a zero
/// state; stateful training cuts one series into `batch_size` lanes read in order with the state
/// carried (lanes fixed to ranks, reset every epoch), as the char LM reads text.
public final class ForecasterExperiment: Experiment {
    public static let kind = ExperimentKind(
        name: "forecaster", summary: "an LSTM or GRU forecaster of numeric series: windows or stateful lanes, the next horizon steps of the target columns",
        configKeys: configKeys,
        make: { config, rank, world in try ForecasterExperiment(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, _ in try LoadedForecaster(path: checkpoint).evaluate(data: data) },
        predict: nil,
        forecast: { checkpoint, data, steps, out in try LoadedForecaster(path: checkpoint).forecast(data: data, steps: steps, out: out) })

    static let configKeys: [ConfigKey] = [
        ConfigKey(section: "data", name: "inputs", type: .texts, defaultValue: .texts([]),
                  help: "Series files or globs, each one series: .npy of (T,) or (T, F), or CSV/TSV with one row per time step."),
        ConfigKey(section: "data", name: "header", type: .boolean, defaultValue: .boolean(false),
                  help: "CSV/TSV files start with a header line of column names."),
        ConfigKey(section: "data", name: "columns", type: .columns, defaultValue: .texts([]),
                  help: "The columns the model reads (names or 0-based indices); empty: all but the time column. "
                      + "Other columns are not parsed and may hold anything."),
        ConfigKey(section: "data", name: "time_column", type: .text, defaultValue: .text(""),
                  help: "A column of timestamps (integers, 1949-01, 1949-01-31, 1949-01-31T13:00:00): checked "
                      + "increasing; when regular, forecast rows carry the future timestamps."),
        ConfigKey(section: "data", name: "target_columns", type: .columns, defaultValue: .texts([]),
                  help: "The columns forecast, among data.columns; empty: all of them."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.2),
                  help: "The last share of every series, held out: forecast from every step in it (the model warmed on what came before)."),
        ConfigKey(section: "data", name: "standardize", type: .boolean, defaultValue: .boolean(true),
                  help: "Scale every column to mean 0 and deviation 1 with statistics of the training part (stored in the checkpoint)."),
        ConfigKey(section: "data", name: "difference", type: .boolean, defaultValue: .boolean(false),
                  help: "Model first differences (x[t+1] − x[t]) rather than levels; forecasts are summed back into levels."),
        ConfigKey(section: "model", name: "cell", type: .choice(["lstm", "gru"]), defaultValue: .text("lstm"),
                  help: "Shorthand stack: the recurrent cell."),
        ConfigKey(section: "model", name: "hidden", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Shorthand stack: hidden width H of every layer."),
        ConfigKey(section: "model", name: "layers", type: .layerStack, defaultValue: .integer(1),
                  help: "The layer stack ([[model.layers]]; README \"Layer stacks\"; stateful: lstm, gru, rnn, dense, "
                      + "dropout; every entry keeps the steps), or the shorthand's count of stacked recurrent layers."),
        ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0),
                  help: "Shorthand stack: dropout between recurrent layers during training (nn.LSTM's dropout)."),
        ConfigKey(section: "model", name: "horizon", type: .positiveInteger, defaultValue: .integer(1),
                  help: "Steps forecast from every step: the head predicts the next horizon values of each target."),
        ConfigKey(section: "training", name: "stateful", type: .boolean, defaultValue: .boolean(false),
                  help: "Cut the series into batch_size lanes read in seq_len chunks with the state carried (one series); false: shuffled windows of look_back steps."),
        ConfigKey(section: "training", name: "look_back", type: .positiveInteger, defaultValue: .integer(48),
                  help: "Windows: steps the model reads before forecasting from the last one."),
        ConfigKey(section: "training", name: "seq_len", type: .positiveInteger, defaultValue: .integer(64),
                  help: "Stateful: steps of truncated back-propagation through time per batch."),
        ConfigKey(section: "loss", name: "kind", type: .choice(["mse", "l1"]), defaultValue: .text("mse"),
                  help: "On the standardized (differenced) values: mean squared or absolute error."),
        ConfigKey(section: "eval", name: "season", type: .nonNegativeInteger, defaultValue: .integer(0),
                  help: "Steps of the season for the seasonal-naive baseline (the value one season back); 0: no seasonal baseline."),
    ]

    public let config: ExperimentConfig
    public let rank: Int, world: Int
    public let preprocessing: SeriesPreprocessing
    /// Every series in data units, and its model view (T − offset, F).
    let series: [TimeSeries]
    let transformed: [[Float]]
    /// Transformed steps of each series that belong to training.
    let trainingSteps: [Int]
    public let model: SeriesForecaster
    let lossKind: RegressionLoss
    public let rows: Range<Int>
    let batchSize: Int
    let stateful: Bool
    let lookBack: Int, seqLen: Int
    /// Windowed: windows per series, and their running total (window w of series i starts at
    /// w − start[i]).
    let windowStarts: [Int]
    let windowCount: Int
    var epochOrder: [Int] = []
    var orderEpoch = -1
    /// Stateful: steps per lane, and the state of this rank's lanes ((L_i, rows, H_i) per recurrent entry).
    let laneLength: Int
    let state: StackState?
    let usesDropout: Bool
    public let dataFingerprint: UInt64

    public init(config: ExperimentConfig, rank: Int = 0, world: Int = 1) throws {
        self.config = config
        self.rank = rank
        self.world = world
        (batchSize, rows) = try batchShare(config, rank: rank, world: world)
        stateful = config.boolean("training.stateful")
        lookBack = config.integer("training.look_back")
        seqLen = config.integer("training.seq_len")
        let horizon = config.integer("model.horizon")
        guard horizon <= 100_000, lookBack <= 1_000_000 else {
            throw SeqTrainError("model.horizon (\(horizon)) and training.look_back (\(lookBack)) are limited to 100000 and 1000000 steps")
        }
        guard !config.texts("data.inputs").isEmpty else {
            throw SeqTrainError("data.inputs: no series files; give .npy or CSV/TSV series (for example `seqtrain data series --out data/series` makes one)")
        }
        var reader = SeriesReader()
        reader.header = config.boolean("data.header")
        reader.columns = config.texts("data.columns")
        reader.timeColumn = config.text("data.time_column")
        let read = try reader.read(config.texts("data.inputs"))
        series = read
        let columns = read[0].columns
        let targetNames = config.texts("data.target_columns")
        let targets = try targetNames.isEmpty ? Array(columns.indices) : targetNames.map { name -> Int in
            guard let i = columns.firstIndex(of: name) ?? Int(name).flatMap({ columns.indices.contains($0) ? $0 : nil }) else {
                throw SeqTrainError("data.target_columns: \"\(name)\" is not one of the columns the model reads (\(columns.joined(separator: ", "))); a target must be in data.columns")
            }
            return i
        }
        guard Set(targets).count == targets.count else { throw SeqTrainError("data.target_columns names a column twice") }
        if stateful && read.count > 1 {
            throw SeqTrainError("training.stateful = true reads one series, and data.inputs holds \(read.count); join them into one file, or train on windows (training.stateful = false)")
        }
        var settings = SeriesPreprocessing(columns: columns, targets: targets, header: config.boolean("data.header"),
                                           difference: config.boolean("data.difference"), mean: nil, std: nil)
        settings.fileColumns = read[0].fileColumns
        settings.timeColumn = config.text("data.time_column").isEmpty ? nil : config.text("data.time_column")
        let fraction = config.number("data.validation_fraction")
        let offset = settings.offset
        trainingSteps = read.map { s in max(0, s.steps - Int((Double(s.steps) * fraction).rounded()) - offset) }
        if config.boolean("data.standardize") {
            // Statistics of the training part of every series, in the model's (differenced) view.
            let raw = read.map { settings.transform($0) }
            let F = columns.count
            var sum = [Double](repeating: 0, count: F), squares = sum, n = 0.0
            for (values, steps) in zip(raw, trainingSteps) {
                for t in 0..<steps { for f in 0..<F { let v = Double(values[t * F + f]); sum[f] += v; squares[f] += v * v } }
                n += Double(steps)
            }
            guard n > 0 else { throw SeqTrainError("data.validation_fraction = \(fraction) leaves no training steps") }
            settings.mean = sum.map { Float($0 / n) }
            settings.std = (0..<F).map { f in
                let variance = max(squares[f] / n - (sum[f] / n) * (sum[f] / n), 0)
                return variance > 1e-24 ? Float(variance.squareRoot()) : 1
            }
        }
        preprocessing = settings
        transformed = read.map { settings.transform($0) }
        lossKind = RegressionLoss(rawValue: config.text("loss.kind"))!
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for s in read { for v in s.values { hash = (hash ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 }; hash = (hash ^ 0xFFFF) &* 0x100_0000_01b3 }
        dataFingerprint = hash

        if stateful {
            laneLength = trainingSteps[0] / batchSize
            guard laneLength >= 1 else {
                throw SeqTrainError("the training part of \(read[0].source) has \(trainingSteps[0]) steps, too few for \(batchSize) lanes (training.batch_size); give a longer series or a smaller batch_size")
            }
            windowStarts = []
            windowCount = 0
        } else {
            laneLength = 0
            var starts: [Int] = [], total = 0
            for steps in trainingSteps {
                starts.append(total)
                total += max(0, steps - lookBack - horizon + 1)
            }
            windowStarts = starts
            windowCount = total
            guard windowCount >= 1 else {
                throw SeqTrainError("no window of training.look_back = \(lookBack) steps and model.horizon = \(horizon) fits in the training part of any series (the longest has \(trainingSteps.max() ?? 0) steps); lower them or give longer series")
            }
        }
        let steps = stateful ? min(seqLen, laneLength) : lookBack
        let stack = try Self.stack(config)
        try MemoryCheck.requireStackBuffers(stack.specs, input: columns.count, rows: rows.count, steps: steps,
                                            what: config.modelStackKeys, source: config.source, shortest: steps,
                                            otherFix: stateful ? " or training.seq_len" : " or training.look_back")
        usesDropout = LayerSpec.usesDropout(stack.specs)
        model = try Self.makeModel(config, features: columns.count, targets: targets.count)
        state = stateful ? model.makeState(batch: rows.count) : nil
    }

    /// The config's stack (`[[model.layers]]`, or the shorthand's one recurrent entry). Every entry keeps
    /// the steps, since every step forecasts; a stateful one carries its state from chunk to chunk and
    /// forecasts one step at a time, so it has no entry that reads ahead or cannot carry its state.
    /// (A window forecasts only from its last step, which every entry may read the whole window for.)
    static func stack(_ config: ExperimentConfig) throws -> (specs: [LayerSpec], naming: StackNaming) {
        let stack = try config.requiredModelStack()
        if config.boolean("training.stateful"), let (entry, reason) = LayerStack.stateBreaker(stack.specs) {
            throw SeqTrainError("\(config.source): model.layers[\(entry)]: a stateful forecaster (training.stateful "
                + "= true) reads its series in order, carrying its state from chunk to chunk, and forecasts one step "
                + "at a time; \(reason), or train on windows (training.stateful = false)")
        }
        try LayerStackConfig.requireKeptSteps(stack.specs, key: "model.layers", source: config.source,
                                              purpose: "it forecasts from")
        return stack
    }

    /// The model, after checking that its parameters (with gradients and two optimizer buffers) fit in
    /// memory, with overflow-checked sizes, before anything exists.
    static func makeModel(_ config: ExperimentConfig, features: Int, targets: Int,
                          storedValues: Int? = nil) throws -> SeriesForecaster {
        let (specs, naming) = try stack(config)
        let horizon = config.integer("model.horizon")
        let what = config.modelStackKeys + ", model.horizon"
        let outputs = try MemoryCheck.product([horizon, targets], what: "model.horizon × the target columns")
        let top = specs.reduce(features) { $1.outputWidth(input: $0) }
        let count = try MemoryCheck.sum([try LayerSpec.parameterCount(specs, input: features, what: what),
                                         try MemoryCheck.product([top + 1, outputs], what: what)], what: what)
        try MemoryCheck.requireStored(storedValues, estimate: count)
        try MemoryCheck.requireMatrixDimensions([(features, "the columns"),
                                                 (outputs, "model.horizon × the target columns"),
                                                 (count, "the parameters of \(what)")])
        try MemoryCheck.require(floats: try MemoryCheck.product([count, 4], what: what),
                                what: "a forecaster of \(count) parameters (\(what))",
                                fix: "lower the stack's sizes or model.horizon")
        return SeriesForecaster(stack: specs, naming: naming, features: features, targets: targets, horizon: horizon)
    }

    // MARK: Experiment

    public var trainableModel: TrainableModel { model }
    public var dataMismatchHint: String { "its series differ from rank 0's; every rank must read the same data.inputs" }
    public var unitName: String { "steps" }
    public var batchesPerEpoch: Int { stateful ? batchCount(laneLength, batchSize: seqLen) : batchCount(windowCount, batchSize: batchSize) }
    public var summary: String {
        let target = preprocessing.targets.map { preprocessing.columns[$0] }.joined(separator: ", ")
        return "\(config.text("job.name")): forecaster, \(series.count) series of \(series.map(\.steps).min() ?? 0) to \(series.map(\.steps).max() ?? 0) steps × \(preprocessing.features) column(s), forecasting \(model.horizon) step(s) of \(target)\(preprocessing.difference ? " (as first differences)" : ""); \(stateful ? "stateful: \(batchSize) lanes of \(laneLength) steps in chunks of \(seqLen)" : "\(windowCount) windows of \(lookBack) steps"); \(model.parameters.layout.entries.reduce(0) { $0 + $1.count }) parameters"
    }

    public func beginEpoch(_ epoch: Int) {
        state?.zero()
        guard !stateful, orderEpoch != epoch else { return }
        orderEpoch = epoch
        epochOrder = CounterRandom(seed: UInt64(config.integer("job.seed")), purpose: .shuffle).permutation(windowCount, stream: UInt64(epoch))
    }

    /// Series and start of window w.
    func window(_ w: Int) -> (series: Int, start: Int) {
        var i = 0
        while i + 1 < windowStarts.count && windowStarts[i + 1] <= w { i += 1 }
        return (i, w - windowStarts[i])
    }

    public func accumulateGradient(batch k: Int, epoch: Int, step: Int,
                                   lap: (String) -> Void) throws -> (LossTotal, units: Int) {
        if !stateful && orderEpoch != epoch { beginEpoch(epoch) }
        let F = preprocessing.features, K = preprocessing.targets.count, h = model.horizon, W = model.outputWidth
        let B = rows.count
        var T = 0, keys: [UInt64] = []
        var inputs: [Float] = [], targets: [Float] = [], counted: [Float] = []  // (B, T, F), (T, B, h, K), (T, B, h)
        if stateful {
            let start = k * seqLen, values = transformed[0], limit = trainingSteps[0]
            T = min(seqLen, laneLength - start)
            inputs = [Float](repeating: 0, count: B * T * F)
            targets = [Float](repeating: 0, count: T * B * W)
            counted = [Float](repeating: 0, count: T * B * h)
            for (r, lane) in rows.enumerated() {
                let base = lane * laneLength + start
                for t in 0..<T {
                    for f in 0..<F { inputs[(r * T + t) * F + f] = values[(base + t) * F + f] }
                    for i in 0..<h where base + t + 1 + i < limit {
                        counted[(t * B + r) * h + i] = 1
                        for (q, f) in preprocessing.targets.enumerated() { targets[((t * B + r) * h + i) * K + q] = values[(base + t + 1 + i) * F + f] }
                    }
                }
            }
            keys = rows.map(UInt64.init)
        } else {
            T = lookBack
            inputs = [Float](repeating: 0, count: B * T * F)
            targets = [Float](repeating: 0, count: T * B * W)
            counted = [Float](repeating: 0, count: T * B * h)
            for (r, row) in rows.enumerated() {
                let slot = k * batchSize + row
                keys.append(UInt64(slot))
                guard slot < windowCount else { continue }
                let (i, s) = window(epochOrder[slot])
                let values = transformed[i]
                for t in 0..<T { for f in 0..<F { inputs[(r * T + t) * F + f] = values[(s + t) * F + f] } }
                // Only the window's last step forecasts.
                for q in 0..<h {
                    counted[((T - 1) * B + r) * h + q] = 1
                    for (c, f) in preprocessing.targets.enumerated() { targets[(((T - 1) * B + r) * h + q) * K + c] = values[(s + T + q) * F + f] }
                }
            }
        }
        let dropout = usesDropout
            ? DropoutContext(seed: UInt64(config.integer("job.seed")), step: step, sampleKeys: keys) : nil
        lap("data")
        if !stateful { state?.zero() }
        inputs.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: B, steps: T, state: state, dropout: dropout) }
        lap("forward")
        dPredictions.resize(T * B * W)
        let total = targets.withUnsafeBufferPointer { y in
            counted.withUnsafeBufferPointer { m in
                lossKind.evaluate(dPredictions.pointer, prediction: model.predictions.pointer, target: y.baseAddress!, mask: m.baseAddress,
                                  rows: T * B * h, features: K)
            }
        }
        model.backward(dPredictions.pointer)
        lap("backward")
        // Throughput counts the steps read: every lane step, or every step of the real windows.
        let windows = stateful ? B : rows.filter { k * batchSize + $0 < windowCount }.count
        return (total, windows * T)
    }

    private let dPredictions = FloatBuffer()  // (T, B, horizon · K)

    public var validationMetricNames: [String] {
        ["val_mae", "val_rmse", "val_naive_mae", "val_naive_rmse"] + (config.integer("eval.season") > 0 ? ["val_seasonal_naive_mae", "val_seasonal_naive_rmse"] : [])
    }

    public var hasValidation: Bool { zip(series, trainingSteps).contains { $0.steps - preprocessing.offset > $1 } }

    public func validationTotals() throws -> [Double] {
        // Stateful models warm over the whole series in order: one replica does it all.
        if stateful { return rank == 0 ? try Self.measure(series, transformed: transformed, trainingSteps: trainingSteps, model: model, config: config, preprocessing: preprocessing).values
                                       : ForecastTotals().values }
        var totals = ForecastTotals()
        for (i, s) in series.enumerated() {
            let origins = Self.origins(steps: s.steps - preprocessing.offset, trainingSteps: trainingSteps[i])
            let mine = origins[validationShare(origins.count, rank: rank, world: world)]
            totals = totals + (try Self.measure([s], transformed: [transformed[i]], trainingSteps: [trainingSteps[i]], model: model, config: config,
                                                preprocessing: preprocessing, origins: Array(mine)))
        }
        return totals.values
    }

    public func validationMetrics(_ values: [Double]) -> ValidationResult {
        let totals = ForecastTotals(values)
        var metrics = [("val_mae", totals.mae), ("val_rmse", totals.rmse), ("val_naive_mae", totals.naiveMAE), ("val_naive_rmse", totals.naiveRMSE)]
        if config.integer("eval.season") > 0 { metrics += [("val_seasonal_naive_mae", totals.seasonalMAE), ("val_seasonal_naive_rmse", totals.seasonalRMSE)] }
        return ValidationResult(loss: totals.loss, metrics: metrics)
    }

    public var carriedState: CarriedState? {
        state.map { CarriedState(states: $0.parts, rows: rows, lanes: batchSize) }
    }

    public func checkpointMetadata() -> [String: String] { ["seqtrain.preprocessing": metadataJSON(preprocessing)] }

    /// The forecast origins of a series of `steps` transformed steps whose first `trainingSteps` are
    /// training: the last training step, then every held-out step that has a next one.
    static func origins(steps: Int, trainingSteps: Int) -> [Int] {
        guard trainingSteps >= 1, steps > trainingSteps else { return [] }
        return Array((trainingSteps - 1)..<(steps - 1))
    }

    /// Rolling-origin forecasts over the held-out part of each series: the model reads every step
    /// up to the origin (stateful: from the start with the state carried; windows: the last
    /// look_back steps), forecasts the next `horizon` values, and each is compared in the data's
    /// units with the truth, the last value, and the value one season back.
    public static func measure(_ series: [TimeSeries], transformed: [[Float]], trainingSteps: [Int], model: SeriesForecaster, config: ExperimentConfig,
                        preprocessing: SeriesPreprocessing, origins given: [Int]? = nil) throws -> ForecastTotals {
        var totals = ForecastTotals()
        let F = preprocessing.features, K = preprocessing.targets.count, h = model.horizon, W = model.outputWidth
        let stateful = config.boolean("training.stateful"), lookBack = config.integer("training.look_back")
        let season = config.integer("eval.season"), o = preprocessing.offset
        let loss = RegressionLoss(rawValue: config.text("loss.kind")) ?? .mse
        for (i, s) in series.enumerated() {
            let values = transformed[i], steps = s.steps - o
            let origins = given ?? Self.origins(steps: steps, trainingSteps: trainingSteps[i])
            guard !origins.isEmpty else { continue }
            // predictions[origin] (W): the forecasts made at that origin, standardized.
            var forecasts: [Int: [Float]] = [:]
            if stateful {
                let last = origins.last! + 1
                let state = model.makeState(batch: 1)
                values.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 1, steps: last, state: state) }
                for origin in origins { forecasts[origin] = Array(UnsafeBufferPointer(start: model.predictions.pointer + origin * W, count: W)) }
            } else {
                for chunk in stride(from: 0, to: origins.count, by: 64) {
                    let part = origins[chunk..<min(chunk + 64, origins.count)]
                    var windows = [Float](repeating: 0, count: part.count * lookBack * F)
                    for (r, origin) in part.enumerated() {
                        for t in 0..<lookBack where origin - lookBack + 1 + t >= 0 {
                            for f in 0..<F { windows[(r * lookBack + t) * F + f] = values[(origin - lookBack + 1 + t) * F + f] }
                        }
                    }
                    windows.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: part.count, steps: lookBack, state: nil) }
                    for (r, origin) in part.enumerated() {
                        forecasts[origin] = Array(UnsafeBufferPointer(start: model.predictions.pointer + ((lookBack - 1) * part.count + r) * W, count: W))
                    }
                }
            }
            for origin in origins {
                guard let predicted = forecasts[origin] else { continue }
                for (q, f) in preprocessing.targets.enumerated() {
                    var level = Double(s[origin + o, f])   // the last value known at the origin
                    let known = level
                    for step in 0..<h {
                        let target = origin + 1 + step         // transformed index forecast
                        guard target < steps else { break }
                        let z = predicted[step * K + q]
                        let truthZ = values[target * F + f]
                        let (sum, count) = loss.single(z, truthZ)
                        totals.lossSum += sum
                        totals.lossCount += count
                        let value = preprocessing.restore(z, column: f)
                        level = preprocessing.difference ? level + value : value
                        let truth = Double(s[target + o, f])
                        let error = level - truth, naive = known - truth
                        totals.absolute += abs(error); totals.squared += error * error; totals.count += 1
                        totals.naiveAbsolute += abs(naive); totals.naiveSquared += naive * naive
                        if season > 0 {
                            // Whole seasons back past the known end; a season longer than the series has none.
                            let (span, overflow) = season.multipliedReportingOverflow(by: 1 + step / season)
                            let back = overflow ? -1 : target + o - span
                            if back >= 0 {
                                let seasonal = Double(s[back, f]) - truth
                                totals.seasonalAbsolute += abs(seasonal); totals.seasonalSquared += seasonal * seasonal; totals.seasonalCount += 1
                            }
                        }
                    }
                }
            }
        }
        return totals
    }
}

extension RegressionLoss {
    /// The loss of one value and its count.
    func single(_ prediction: Float, _ target: Float) -> (Double, Double) {
        let d = Double(prediction - target)
        return (self == .mse ? d * d : abs(d), 1)
    }
}

/// A trained forecaster loaded back from a checkpoint, for `eval` and `forecast`.
public struct LoadedForecaster {
    public let path: String
    public let config: ExperimentConfig
    public let preprocessing: SeriesPreprocessing
    public let model: SeriesForecaster

    public init(path given: String) throws {
        let file: SafetensorsFile
        (path, file) = try Checkpoint.resolve(given)
        let (config, json) = try loadKindMetadata(file, path: path, kind: "forecaster", key: "seqtrain.preprocessing")
        self.config = config
        let preprocessing = try decodeStored(SeriesPreprocessing.self, json, key: "seqtrain.preprocessing", path: path)
        try preprocessing.validate(source: path)
        self.preprocessing = preprocessing
        model = try building(path) {
            try ForecasterExperiment.makeModel(config, features: preprocessing.features, targets: preprocessing.targets.count, storedValues: file.storedValues)
        }
        try model.parameters.load(from: file, source: path)
    }

    func read(_ data: [String]) throws -> [TimeSeries] {
        let series = try preprocessing.reader(key: "--data").read(data)
        guard series[0].columns == preprocessing.columns else {
            throw SeqTrainError("--data: the series have the columns \(series[0].columns), "
                + "the model was trained on \(preprocessing.columns)")
        }
        // Older checkpoints did not keep the file's columns; all-columns training read them all.
        let allColumns = preprocessing.columns == preprocessing.columns.indices.map(String.init)
        let width = preprocessing.fileColumns?.count ?? (allColumns ? preprocessing.features : nil)
        if !preprocessing.header, let width {
            for s in series where s.fileColumns.count != width {
                throw SeqTrainError("--data: \(s.source) has \(s.fileColumns.count) column(s), "
                    + "the model was trained on files of \(width) (data.header = false, "
                    + "so columns are known by position only); give a file with the training files' columns in their order")
            }
        }
        return series
    }

    /// Rolling-origin forecasts over the last data.validation_fraction of every series, as
    /// validation during training: MAE and RMSE in the data's units beside the baselines.
    public func evaluate(data: [String]) throws -> EvaluationReport {
        let series = try read(data)
        let fraction = config.number("data.validation_fraction")
        guard fraction > 0 else {
            throw SeqTrainError("\(path): trained with data.validation_fraction = 0, so eval has no held-out part to forecast; use seqtrain forecast")
        }
        let trainingSteps = series.map { max(0, $0.steps - Int((Double($0.steps) * fraction).rounded()) - preprocessing.offset) }
        let totals = try ForecasterExperiment.measure(series, transformed: series.map(preprocessing.transform), trainingSteps: trainingSteps,
                                                      model: model, config: config, preprocessing: preprocessing)
        guard totals.count > 0 else { throw SeqTrainError("--data: the series are too short to forecast any held-out step") }
        guard totals.loss.isFinite else { throw model.parameters.overflowError(source: path, what: "the forecasts of --data") }
        var fields: [(name: String, value: Any)] = [("loss", totals.loss), ("mae", totals.mae), ("rmse", totals.rmse),
                                                    ("naive_mae", totals.naiveMAE), ("naive_rmse", totals.naiveRMSE)]
        if config.integer("eval.season") > 0 { fields += [("seasonal_naive_mae", totals.seasonalMAE), ("seasonal_naive_rmse", totals.seasonalRMSE)] }
        fields += [("forecasts", Int(totals.count)), ("series", series.count), ("checkpoint", path)]
        var text = String(format: "%@ on the last %.0f%% of %d series: MAE %.6g, RMSE %.6g (naive last value: MAE %.6g, RMSE %.6g",
                          path, 100 * fraction, series.count, totals.mae, totals.rmse, totals.naiveMAE, totals.naiveRMSE)
        if config.integer("eval.season") > 0 { text += String(format: "; seasonal naive: MAE %.6g, RMSE %.6g", totals.seasonalMAE, totals.seasonalRMSE) }
        text += String(format: ") over %d forecasts of %d step(s) ahead, in the data's units", Int(totals.count), model.horizon)
        return EvaluationReport(fields: fields, text: text)
    }

    /// Warms the model on every known step of each series, then rolls forward `steps` steps, feeding
    /// its own next-step forecast as the next input. Every column must be a target (the model
    /// forecasts what it reads). Writes CSV (step, then one column per target; a series column
    /// when there are several) or .npy (steps, K), or returns the CSV when `out` is nil.
    public func forecast(data: [String], steps n: Int, out: String?) throws -> String {
        guard preprocessing.targets == Array(preprocessing.columns.indices) else {
            let inputsOnly = preprocessing.columns.indices.filter { !preprocessing.targets.contains($0) }.map { preprocessing.columns[$0] }
            throw SeqTrainError("\(path): the model reads \(inputsOnly.joined(separator: ", ")), which it does not forecast, so it cannot roll forward on its own forecasts; train with every column a target (data.target_columns empty) to forecast")
        }
        if let out, !(out.lowercased().hasSuffix(".csv") || out.lowercased().hasSuffix(".npy")) {
            throw SeqTrainError("--out \(out): give a .csv or .npy file name")
        }
        let series = try read(data)
        let F = preprocessing.features, W = model.outputWidth
        let stateful = config.boolean("training.stateful"), lookBack = config.integer("training.look_back")
        var rows: [(series: String, step: Int, values: [Double])] = []
        for s in series {
            var values = preprocessing.transform(s)
            guard values.count / F >= 1 else { throw SeqTrainError("--data: \(s.source) is too short to forecast from (\(s.steps) step(s))") }
            var level = (0..<F).map { Double(s[s.steps - 1, $0]) }
            let state = model.makeState(batch: 1)
            // The first forecast from the whole known series (stateful) or its last window.
            func predictNext() -> [Float] {
                let known = values.count / F
                if stateful {
                    return Array(UnsafeBufferPointer(start: model.predictions.pointer + (model.predictions.count / W - 1) * W, count: F))
                }
                var window = [Float](repeating: 0, count: lookBack * F)
                for t in 0..<lookBack where known - lookBack + t >= 0 {
                    for f in 0..<F { window[t * F + f] = values[(known - lookBack + t) * F + f] }
                }
                window.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 1, steps: lookBack, state: nil) }
                return Array(UnsafeBufferPointer(start: model.predictions.pointer + (lookBack - 1) * W, count: F))
            }
            if stateful { values.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 1, steps: values.count / F, state: state) } }
            for step in 1...n {
                let next = predictNext()
                guard next.allSatisfy({ $0.isFinite }) else { throw model.parameters.overflowError(source: path, what: "a forecast") }
                for f in 0..<F {
                    let value = preprocessing.restore(next[f], column: f)
                    level[f] = preprocessing.difference ? level[f] + value : value
                }
                rows.append((s.source, step, level))
                values += next
                if stateful { next.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: 1, steps: 1, state: state) } }
            }
        }
        let names = preprocessing.columns
        if let out, out.lowercased().hasSuffix(".npy") {
            let shape = series.count == 1 ? [n, F] : [series.count, n, F]
            let array = NumpyArray(floats: rows.flatMap { $0.values.map(Float.init) }, shape: shape)
            try OutputFiles.write([(out, array.encoded())])
            return "\(n) forecast step(s) of \(names.joined(separator: ", ")) for \(series.count) series in \(out)"
        }
        // With a regular time column, each forecast step carries its timestamp.
        let clocks = Dictionary(series.map { ($0.source, $0.clock) }, uniquingKeysWith: { a, _ in a })
        let dated = series.allSatisfy { $0.clock?.future(1) != nil }
        let timeHeader = dated ? csvCell(preprocessing.timeColumn ?? "time") + "," : ""
        var text = (series.count > 1 ? "series," : "") + "step," + timeHeader
            + names.map(csvCell).joined(separator: ",") + "\n"
        for row in rows {
            let time = dated ? (clocks[row.series]??.future(row.step)).map { csvCell($0) + "," } ?? "," : ""
            text += (series.count > 1 ? csvCell(row.series) + "," : "") + "\(row.step)," + time
                + row.values.map { String(Float($0)) }.joined(separator: ",") + "\n"
        }
        guard let out else { return String(text.dropLast()) }
        try OutputFiles.write(text, to: out)
        return "\(n) forecast step(s) of \(names.joined(separator: ", ")) for \(series.count) series in \(out)"
    }
}
