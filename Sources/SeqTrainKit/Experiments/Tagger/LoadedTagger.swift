import Foundation

/// A trained tagger loaded back from a checkpoint, for `eval` and `predict`: its config, its
/// preprocessing (task, outputs, standardizations) and its weights.
public struct LoadedTagger {
    public let path: String
    public let config: ExperimentConfig
    public let preprocessing: TaggerPreprocessing
    public let model: SequenceTagger
    let loss: TaggerLoss

    public init(path given: String) throws {
        let file: SafetensorsFile
        (path, file) = try Checkpoint.resolve(given)
        let json: String
        (config, json) = try loadKindMetadata(file, path: path, kind: "sequence_tagger", key: "seqtrain.tagger")
        let stored = try decodeStored(TaggerPreprocessing.self, json, key: "seqtrain.tagger", path: path)
        try stored.validate(source: path)
        preprocessing = stored
        let config = self.config
        model = try building(path) {
            let (stack, naming) = try config.requiredModelStack()
            try TaggerExperiment.checkStack(stack, config: config, inputFeatures: stored.inputFeatures,
                                            outputs: stored.outputCount, rows: 0, steps: 0,
                                            storedValues: file.storedValues)
            return SequenceTagger(stack: stack, naming: naming, inputSize: stored.inputFeatures,
                                  outputs: stored.outputCount)
        }
        loss = try TaggerLoss(task: stored.task, regression: config.text("model.loss"))
        try model.parameters.load(from: file, source: path)
    }

    /// Inputs read with the checkpoint's own settings, their features checked, standardized.
    func read(_ data: [String]) throws -> LabelledData {
        let raw = try preprocessing.reader(inputsKey: "--data").read(inputs: data, labels: [])
        guard raw.features == preprocessing.inputFeatures else {
            throw SeqTrainError("--data: samples have \(raw.features) features per step, the model was trained on "
                + "\(preprocessing.inputFeatures)")
        }
        return preprocessing.standardized(raw)
    }

    /// Loss and per-step metrics over the valid steps of `data` against its per-step `labels`.
    public func evaluate(data: [String], labels given: [String]) throws -> EvaluationReport {
        // .npz data may carry its labels in a second array.
        let archives = !data.isEmpty && data.allSatisfy { $0.lowercased().hasSuffix(".npz") }
        let labels = given.isEmpty && archives ? data : given
        guard !labels.isEmpty else {
            throw SeqTrainError("--labels: a tagger is evaluated against per-step labels; give the .npy file of (N, T) "
                + "class ids, (N, T, C) 0/1 labels or (N, T, K) values with --labels")
        }
        let samples = try read(data)
        let read = try StepLabels.read(labels, key: "--labels", inputs: samples, inputsKey: "--data",
                                       labelArray: preprocessing.labelArray ?? "", inputArray: preprocessing.inputArray)
        let resolved = try StepLabels.targets(read.values, shape: read.shape, integer: read.integer,
                                              source: read.source, lengths: samples.lengths,
                                              requested: preprocessing.task.rawValue)
        try checkOutputs(resolved.outputs, source: read.source)
        var targets = resolved.targets
        preprocessing.standardize(&targets, lengths: samples.lengths)
        let counts = try TaggerExperiment.count(samples, targets: targets, range: 0..<samples.count, model: model,
                                                loss: loss, preprocessing: preprocessing,
                                                threshold: Float(config.number("eval.threshold")))
        guard counts.loss.isFinite else {
            throw model.parameters.overflowError(source: path, what: "the loss over --data")
        }
        var fields: [(name: String, value: Any)] = [("loss", counts.loss)]
        fields += counts.metrics.map { ($0.name, $0.value) }
        fields += [("samples", samples.count), ("steps", Int(counts.steps)), ("checkpoint", path),
                   ("task", preprocessing.task.rawValue)]
        if preprocessing.task == .classification {
            let c = preprocessing.outputCount
            let matrix = (0..<c).map { k in (0..<c).map { Int(counts.classes.counts[k * c + $0]) } }
            fields.append(("confusion_matrix", matrix))
        }
        fields.append((preprocessing.task == .classification ? "classes" : "outputs", preprocessing.outputs))
        let text = "\(path) on \(samples.count) samples (\(Int(counts.steps)) valid steps) of \(samples.source): loss "
            + String(format: "%.4f", counts.loss) + "\n" + counts.report
        return EvaluationReport(fields: fields, text: text)
    }

    func checkOutputs(_ outputs: Int, source: String) throws {
        switch preprocessing.task {
        case .classification:
            guard outputs <= preprocessing.outputCount else {
                throw SeqTrainError("--labels: \(source) holds class id \(outputs - 1); the model knows "
                    + "\(preprocessing.outputCount) classes (0 to \(preprocessing.outputCount - 1))")
            }
        case .multiLabel, .regression:
            guard outputs == preprocessing.outputCount else {
                throw SeqTrainError("--labels: \(source) has \(outputs) columns per step, the model "
                    + "\(preprocessing.outputCount)")
            }
        }
    }

    /// Per-step outputs of every sample, written as .npy, NaN past each sample's length.
    /// Classification: probabilities (N, T, C) float32 in `out`, class ids (N, T) int64 in
    /// `<out>.labels.npy` (−1 past the length). Multi-label: probabilities (N, T, C) in `out`, 0/1
    /// float32 (N, T, C) in `<out>.labels.npy`. Regression: values (N, T, K) in data units in `out`.
    public func predict(data: [String], out: String) throws -> String {
        guard out.lowercased().hasSuffix(".npy") else {
            throw SeqTrainError("--out \(out): a tagger writes per-step outputs as .npy; give a .npy file name")
        }
        let samples = try read(data)
        let N = samples.count, T = samples.steps, C = preprocessing.outputCount
        let cells = try MemoryCheck.product([N, T, C], what: "samples × steps × outputs")
        try MemoryCheck.require(floats: try MemoryCheck.product([cells, 2], what: "samples × steps × outputs"),
                                what: "the per-step outputs of --data", fix: "predict on fewer samples at a time")
        var values = [Float](repeating: .nan, count: cells)          // (N, T, C)
        var ids = [Int64](repeating: -1, count: N * T)               // (N, T), classification
        let threshold = Float(config.number("eval.threshold"))
        var finite = true
        forEachChunk(of: samples, range: 0..<N) { indices, block in
            let B = indices.count
            block.inputs.withUnsafeBufferPointer {
                model.forward($0.baseAddress!, batch: B, steps: block.steps, lengths: block.lengths, dropout: nil)
            }
            let outputs = model.outputs.pointer                       // (T_block, B, C)
            for (b, s) in indices.enumerated() {
                for t in 0..<min(samples.lengths[s], block.steps) {
                    let z = outputs + (t * B + b) * C
                    let row = (s * T + t) * C
                    for k in 0..<C where !z[k].isFinite { finite = false }
                    switch preprocessing.task {
                    case .classification:
                        var best = 0
                        for k in 1..<C where z[k] > z[best] { best = k }
                        let shift = z[best]
                        var total: Float = 0
                        for k in 0..<C { values[row + k] = exp(z[k] - shift); total += values[row + k] }
                        for k in 0..<C { values[row + k] /= total }
                        ids[s * T + t] = Int64(best)
                    case .multiLabel:
                        for k in 0..<C { values[row + k] = sigmoid(z[k]) }
                    case .regression:
                        for k in 0..<C { values[row + k] = preprocessing.restore(z[k], column: k) }
                    }
                }
            }
        }
        guard finite else { throw model.parameters.overflowError(source: path, what: "an output of the model") }
        let valuesFile = NumpyArray(floats: values, shape: [N, T, C]).encoded()
        let labelsPath = String(out.dropLast(4)) + ".labels.npy"
        switch preprocessing.task {
        case .regression:
            try OutputFiles.write([(out, valuesFile)])
            return "\(N) samples: values (N, T, K) = (\(N), \(T), \(C)) in data units in \(out), NaN past each "
                + "sample's length; columns in order: \(preprocessing.outputs.joined(separator: ", "))"
        case .classification:
            // Both files or neither: a failure on the labels leaves the old probabilities too.
            try OutputFiles.write([(out, valuesFile), (labelsPath, NumpyArray(integers: ids, shape: [N, T]).encoded())])
            return "\(N) samples: probabilities (N, T, C) = (\(N), \(T), \(C)) in \(out) (NaN past each sample's "
                + "length), class ids (N, T) in \(labelsPath) (-1 past the length); classes in order: "
                + preprocessing.outputs.joined(separator: ", ")
        case .multiLabel:
            let predicted = values.map { $0.isNaN ? Float.nan : ($0 > threshold ? 1 : 0) }
            let labelsFile = NumpyArray(floats: predicted, shape: [N, T, C]).encoded()
            try OutputFiles.write([(out, valuesFile), (labelsPath, labelsFile)])
            return "\(N) samples: probabilities (N, T, C) = (\(N), \(T), \(C)) in \(out), 0/1 labels (threshold "
                + "\(threshold)) in \(labelsPath), NaN past each sample's length; labels in order: "
                + preprocessing.outputs.joined(separator: ", ")
        }
    }
}
