import Foundation

extension ClassifierExperiment {
    public static let sequenceKind = ExperimentKind(
        name: "sequence_classifier",
        summary: "a layer stack (LSTM, GRU, RNN, conv1d, dense) over numeric sequences, pooled, single- or multi-label",
        configKeys: dataKeys + ConfigKey.modelStack(hidden: 64, layers: 1) + [
            ConfigKey(section: "model", name: "pooling", type: .choice(Pooling.allCases.map(\.rawValue)), defaultValue: .text("max"),
                      help: "How the outputs of the valid steps become one vector: the last one, their mean, or their elementwise max."),
        ] + taskKeys,
        make: { config, rank, world in try ClassifierExperiment(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, labels in try LoadedClassifier(path: checkpoint).evaluate(data: data, labels: labels) },
        predict: { checkpoint, data, out in try LoadedClassifier(path: checkpoint).predict(data: data, out: out) })

    public static let mlpKind = ExperimentKind(
        name: "mlp_classifier", summary: "an MLP over feature vectors (flattened samples or their spectrum), single- or multi-label",
        configKeys: dataKeys + [
            ConfigKey(section: "model", name: "hidden_sizes", type: .positiveIntegers, defaultValue: .integers([128, 64]),
                      help: "Widths of the hidden layers; [] is logistic regression."),
            ConfigKey(section: "model", name: "activation", type: .choice(["relu", "gelu", "tanh", "sigmoid"]), defaultValue: .text("relu"),
                      help: "Activation after every hidden layer."),
            ConfigKey(section: "model", name: "dropout", type: .fraction, defaultValue: .number(0), help: "Dropout after every hidden activation."),
        ] + taskKeys,
        make: { config, rank, world in try ClassifierExperiment(config: config, rank: rank, world: world) },
        evaluate: { checkpoint, data, labels in try LoadedClassifier(path: checkpoint).evaluate(data: data, labels: labels) },
        predict: { checkpoint, data, out in try LoadedClassifier(path: checkpoint).predict(data: data, out: out) })

    static let dataKeys: [ConfigKey] = [
        ConfigKey(section: "data", name: "inputs", type: .texts, defaultValue: .texts([]),
                  help: "Input files or globs: .npy of (N, T), (N, T, F) or (N, F), or CSV/TSV with one sample per row."),
        ConfigKey(section: "data", name: "labels", type: .texts, defaultValue: .texts([]),
                  help: "Label files: .npy (N,) class ids or (N, C) 0/1, or CSV/TSV; empty: data.label_columns of the inputs."),
        ConfigKey(section: "data", name: "label_columns", type: .columns, defaultValue: .texts([]),
                  help: "CSV/TSV inputs: the columns (names or 0-based indices) that hold the labels; one column is a class, several are 0/1 labels."),
        ConfigKey(section: "data", name: "format", type: .choice(NumericFormat.choices), defaultValue: .text("auto"),
                  help: "How data files are read; auto: by extension (.npy, .csv, .tsv, .json a list of records, "
                      + ".jsonl a record per line)."),
        ConfigKey(section: "data", name: "input_field", type: .text, defaultValue: .text(""),
                  help: "JSON records: the dotted path of a sample's numbers (a list, or a list of lists for several "
                      + "channels per step); empty: the record is that list."),
        ConfigKey(section: "data", name: "label_field", type: .text, defaultValue: .text(""),
                  help: "JSON records: the dotted path of a sample's class (a name or an id), or of a list of classes "
                      + "(multi-label)."),
        ConfigKey(section: "data", name: "input_array", type: .text, defaultValue: .text(""),
                  help: ".npz inputs: the array of the samples; empty: the archive's first array."),
        ConfigKey(section: "data", name: "label_array", type: .text, defaultValue: .text(""),
                  help: ".npz inputs: the array of the labels; empty: the other array (when data.labels is empty)."),
        ConfigKey(section: "data", name: "class_names", type: .texts, defaultValue: .texts([]),
                  help: "Single-label: the name of each integer class id (0, 1, ...), used in reports, predict and "
                      + "the confusion matrix; empty: the ids (or the labels as written)."),
        ConfigKey(section: "data", name: "label_names", type: .texts, defaultValue: .texts([]),
                  help: "Names of the (N, C) label columns of .npy labels, in order; empty: 0, 1, ..."),
        ConfigKey(section: "data", name: "header", type: .boolean, defaultValue: .boolean(false),
                  help: "CSV/TSV files start with a header line of column names."),
        ConfigKey(section: "data", name: "validation_inputs", type: .texts, defaultValue: .texts([]),
                  help: "Validation inputs (same format); empty: hold out data.validation_fraction of the inputs."),
        ConfigKey(section: "data", name: "validation_labels", type: .texts, defaultValue: .texts([]),
                  help: "Labels of data.validation_inputs (or their data.label_columns)."),
        ConfigKey(section: "data", name: "validation_fraction", type: .fraction, defaultValue: .number(0.2),
                  help: "Share of the samples held out for validation, by a seeded split stratified by class (label set when multi-label)."),
        ConfigKey(section: "data", name: "standardize", type: .boolean, defaultValue: .boolean(true),
                  help: "Scale every feature to mean 0 and deviation 1 with statistics of the training split (stored in the checkpoint)."),
        ConfigKey(section: "data", name: "features", type: .blocks(FeatureBlocks.Block.allCases.map(\.rawValue)),
                  defaultValue: .texts(["raw"]),
                  help: "Blocks concatenated into a vector per sample: raw values; rfft, the log-magnitude of each "
                      + "channel's real FFT; downsample, segment means; stats, mean, deviation, min, max, first, last "
                      + "per channel. raw alone keeps sequences as they are."),
        ConfigKey(section: "data", name: "rfft_bins", type: .positiveInteger, defaultValue: .integer(32),
                  help: "rfft: frequency bins kept per channel (the lowest)."),
        ConfigKey(section: "data", name: "downsample", type: .positiveInteger, defaultValue: .integer(50),
                  help: "downsample: segments per channel, each the mean of its steps "
                      + "(F.adaptive_avg_pool1d's windows)."),
        ConfigKey(section: "data", name: "sampler", type: .choice(["shuffle", "balanced"]), defaultValue: .text("shuffle"),
                  help: "shuffle: a permutation per epoch; balanced: draw every class (label) equally often, with replacement."),
    ]

    static let taskKeys: [ConfigKey] = [
        ConfigKey(section: "model", name: "task", type: .choice(["auto", "single_label", "multi_label"]), defaultValue: .text("auto"),
                  help: "auto: (N,) labels are single-label (softmax cross-entropy), (N, C) labels multi-label (sigmoid binary cross-entropy)."),
        ConfigKey(section: "model", name: "output_activation", type: .choice(["none", "softmax", "sigmoid"]), defaultValue: .text("none"),
                  help: "Must stay none: losses take logits (a softmax or sigmoid here is refused with the reason)."),
        ConfigKey(section: "loss", name: "kind", type: .choice(["auto", "cross_entropy", "bce", "mse"]), defaultValue: .text("auto"),
                  help: "auto follows model.task; cross_entropy on multi-label targets and mse for classification are refused with the reason."),
        ConfigKey(section: "loss", name: "class_weights", type: .weights(["none", "balanced"]), defaultValue: .text("none"),
                  help: "Single-label: a weight per class (F.cross_entropy's weight), or balanced: n / (C · n_c) from the training split."),
        ConfigKey(section: "loss", name: "pos_weight", type: .weights(["none", "balanced"]), defaultValue: .text("none"),
                  help: "Multi-label: a weight per label on its positives (BCEWithLogitsLoss's pos_weight), or balanced: negatives / positives."),
        ConfigKey(section: "loss", name: "label_smoothing", type: .fraction, defaultValue: .number(0),
                  help: "Single-label: F.cross_entropy's label_smoothing."),
        ConfigKey(section: "eval", name: "threshold", type: .openFraction, defaultValue: .number(0.5),
                  help: "Multi-label: a label is predicted when its sigmoid exceeds this."),
    ]
}

/// A trained classifier loaded back from a checkpoint, for `eval` and `predict`: its config, its
/// preprocessing (classes, features, standardization) and its weights.
public struct LoadedClassifier {
    public let path: String
    public let config: ExperimentConfig
    public let preprocessing: ClassifierPreprocessing
    let network: ClassifierNetwork
    let loss: ClassifierLoss

    public init(path given: String) throws {
        let file: SafetensorsFile
        (path, file) = try Checkpoint.resolve(given)
        guard let configText = file.metadata["seqtrain.config"], let json = file.metadata["seqtrain.preprocessing"] else {
            throw SeqTrainError("\(path): not a seqtrain classifier checkpoint (its __metadata__ lacks seqtrain.config or seqtrain.preprocessing)")
        }
        config = try ExperimentConfig.parse(configText, source: "\(path) (seqtrain.config)")
        guard config.kind == file.metadata["seqtrain.kind"] else {
            throw SeqTrainError("\(path): its seqtrain.kind (\(file.metadata["seqtrain.kind"] ?? "none")) and the model.kind of its seqtrain.config (\(config.kind)) differ; the checkpoint is damaged")
        }
        let stored: ClassifierPreprocessing
        do {
            stored = try JSONDecoder().decode(ClassifierPreprocessing.self, from: Data(json.utf8))
        } catch {
            throw SeqTrainError("\(path): seqtrain.preprocessing is not valid: \(error)")
        }
        let c = stored.classes.count, features = stored.inputFeatures
        guard c >= 1, features >= 1, features <= 1 << 24, Set(stored.classes).count == c,
              stored.classLabels.map({ $0.count == c && Set($0).count == c }) ?? true,
              (1...65_536).contains(stored.rfftBins), (1...65_536).contains(stored.downsample ?? 50),
              stored.blocks != nil,
              SampleLayout(rawValue: stored.layout) != nil,
              stored.mean.map({ $0.count == features && $0.allSatisfy { $0.isFinite } }) ?? true,
              stored.std.map({ $0.count == features && $0.allSatisfy { $0 > 0 && $0.isFinite } }) ?? true else {
            throw SeqTrainError("\(path): seqtrain.preprocessing is inconsistent (classes, features or standardization)")
        }
        preprocessing = stored
        let network: ClassifierNetwork
        do {
            network = try ClassifierNetwork.make(config, inputFeatures: features, classes: c, storedValues: file.storedValues)
        } catch let error as SeqTrainError {
            throw SeqTrainError("\(path): \(error.message)")
        }
        self.network = network
        // Evaluation reports the plain (unweighted) loss of the task.
        loss = preprocessing.task == .singleLabel ? .crossEntropy(try CrossEntropyLoss()) : .binaryCrossEntropy(try BinaryCrossEntropyLoss())
        try network.model.parameters.load(from: file, source: path)
    }

    /// Data read with the checkpoint's own settings (columns, features, standardization).
    func read(data: [String], labels: [String], needLabels: Bool) throws -> LabelledData {
        let reader = preprocessing.reader(inputsKey: "--data", labelsKey: "--labels")
        let raw = try reader.read(inputs: data, labels: labels)
        if needLabels && raw.labels == nil {
            throw SeqTrainError("--labels: the data has no labels; give label files with --labels (the checkpoint reads labels from \(preprocessing.labelColumns.isEmpty ? "separate files" : "columns \(preprocessing.labelColumns.joined(separator: ", "))"))")
        }
        // Features first, then their count checked, then the stored standardization.
        var featured = try preprocessing.featured(raw, key: "--data")
        let expected = preprocessing.inputFeatures
        guard featured.features == expected else {
            let made = preprocessing.features == "raw" ? "" : " from data.features = [\(preprocessing.features)]"
            throw SeqTrainError("--data: samples have \(featured.features) features\(made), "
                + "the model was trained on \(expected)")
        }
        if let mean = preprocessing.mean, let std = preprocessing.std { Standardization(mean: mean, std: std).apply(&featured) }
        return featured
    }

    /// The metrics of validation on other data: loss, and accuracy and macro F1 (single-label) or
    /// macro and micro F1 and exact match (multi-label).
    public func evaluate(data: [String], labels: [String]) throws -> EvaluationReport {
        let samples = try read(data: data, labels: labels, needLabels: true)
        let targets = try preprocessing.targets(samples.labels!, source: samples.source)
        let counts = try ClassifierExperiment.count(samples, targets: targets, range: 0..<samples.count, network: network, loss: loss,
                                                    classes: preprocessing.classes, multiLabel: preprocessing.task == .multiLabel,
                                                    threshold: Float(config.number("eval.threshold")))
        guard counts.loss.isFinite else { throw network.model.parameters.overflowError(source: path, what: "the loss over --data") }
        var fields: [(name: String, value: Any)] = [("loss", counts.loss)]
        fields += counts.metrics.map { ($0.name, $0.value) }
        fields += [("samples", samples.count), ("checkpoint", path)]
        if preprocessing.task == .singleLabel {
            let c = preprocessing.classes.count
            fields.append(("confusion_matrix", (0..<c).map { k in (0..<c).map { Int(counts.counts[k * c + $0]) } }))
        }
        fields.append(("classes", preprocessing.classes))
        let text = "\(path) on \(samples.count) samples of \(samples.source): loss \(String(format: "%.4f", counts.loss))\n" + counts.report
        return EvaluationReport(fields: fields, text: text)
    }

    /// Probabilities and predicted labels of every sample, written to `out` (.npy or .csv).
    /// .npy: probabilities (N, C) float32 in `out`, predictions beside it in `<out>.labels.npy`
    /// (class indices (N,) single-label, 0/1 (N, C) multi-label). CSV: a header, then per sample
    /// its index, the predicted class (or labels joined by "|"), and one probability per class.
    public func predict(data: [String], out: String) throws -> String {
        let lower = out.lowercased()
        guard lower.hasSuffix(".npy") || lower.hasSuffix(".csv") else {
            throw SeqTrainError("--out \(out): give a .npy or .csv file name")
        }
        let samples = try read(data: data, labels: [], needLabels: false)
        let c = preprocessing.classes.count
        let multi = preprocessing.task == .multiLabel
        let threshold = Float(config.number("eval.threshold"))
        var probabilities = [Float](repeating: 0, count: samples.count * c)
        var finite = true
        ClassifierExperiment.forEachChunk(samples, range: 0..<samples.count, network: network) { indices, logits in
            for (r, s) in indices.enumerated() {
                let z = logits + r * c
                for k in 0..<c where !z[k].isFinite { finite = false }
                if multi {
                    for k in 0..<c { probabilities[s * c + k] = sigmoid(z[k]) }
                } else {
                    let m = (0..<c).map { z[$0] }.max()!
                    let e = (0..<c).map { exp(z[$0] - m) }
                    let total = e.reduce(0, +)
                    for k in 0..<c { probabilities[s * c + k] = e[k] / total }
                }
            }
        }
        guard finite else { throw network.model.parameters.overflowError(source: path, what: "an output of the model") }
        let predicted: [[Int]] = (0..<samples.count).map { s in
            let p = probabilities[(s * c)..<((s + 1) * c)]
            if multi { return (0..<c).filter { p[s * c + $0] > threshold } }
            return [p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) }! - s * c]
        }
        if out.lowercased().hasSuffix(".npy") {
            let labelsPath = String(out.dropLast(4)) + ".labels.npy"
            let labels: NumpyArray
            if multi {
                var matrix = [Int64](repeating: 0, count: samples.count * c)
                for (s, ks) in predicted.enumerated() { for k in ks { matrix[s * c + k] = 1 } }
                labels = NumpyArray(integers: matrix, shape: [samples.count, c])
            } else {
                labels = NumpyArray(integers: predicted.map { Int64($0[0]) }, shape: [samples.count])
            }
            // Both files or neither: a failure on the labels leaves the old probabilities too.
            try OutputFiles.write([(out, NumpyArray(floats: probabilities, shape: [samples.count, c]).encoded()),
                                   (labelsPath, labels.encoded())])
            return "\(samples.count) samples: probabilities (N, \(c)) in \(out), predicted \(multi ? "labels (N, C) of 0/1" : "class indices (N,)") in \(labelsPath); classes in order: \(preprocessing.classes.joined(separator: ", "))"
        }
        var text = "sample,predicted," + preprocessing.classes.map { csvCell("p_" + $0) }.joined(separator: ",") + "\n"
        for s in 0..<samples.count {
            let names = predicted[s].map { preprocessing.classes[$0] }.joined(separator: "|")
            text += "\(s),\(csvCell(names))," + (0..<c).map { String(probabilities[s * c + $0]) }.joined(separator: ",") + "\n"
        }
        try OutputFiles.write(text, to: out)
        return "\(samples.count) samples: predicted classes and probabilities in \(out)"
    }
}
