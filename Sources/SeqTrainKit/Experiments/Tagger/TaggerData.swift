import Foundation

/// What a tagger predicts at every step: one class (softmax cross-entropy), several 0/1 labels
/// (sigmoid binary cross-entropy) or real numbers (mean squared or absolute error).
public enum TaggingTask: String, Codable {
    case classification, multiLabel = "multi_label", regression
}

/// Per-step targets of N samples of T steps, (N, T, W): W = 1 class id for classification, C
/// labels of 0/1, or K real values (standardized for regression when fitted). Steps past a
/// sample's valid length hold whatever the file had; every use masks them.
public struct StepTargets {
    public var values: [Float]     // (N, T, W)
    public var steps: Int
    public var width: Int

    /// The samples at `indices`, in that order.
    func subset(_ indices: [Int]) -> StepTargets {
        let stride = steps * width
        var out = [Float]()
        out.reserveCapacity(indices.count * stride)
        for i in indices { out += values[(i * stride)..<((i + 1) * stride)] }
        return StepTargets(values: out, steps: steps, width: width)
    }
}

/// What a tagger's checkpoint records so that `eval` and `predict` read new data exactly as
/// training did: the task, its outputs, how inputs are read, and the standardizations fitted on
/// the training split.
public struct TaggerPreprocessing: Codable, Equatable {
    public var task: TaggingTask
    /// The names of the C outputs per step: class ids ("0", "1", ...), labels, or target columns.
    public var outputs: [String]
    public var inputFeatures: Int
    public var format: String
    public var header: Bool
    public var inputArray: String
    /// .npz labels: the array of the labels (empty: the archive's array that is not the inputs').
    public var labelArray: String?
    /// Inputs: per feature, of the training split's valid steps.
    public var mean: [Float]?
    public var std: [Float]?
    /// Regression targets: per column, of the training split's valid steps.
    public var targetMean: [Float]?
    public var targetStd: [Float]?

    var outputCount: Int { outputs.count }

    func reader(inputsKey: String) -> NumericReader {
        var reader = NumericReader()
        reader.header = header
        reader.format = format
        reader.inputArray = inputArray
        reader.readsArchiveLabels = false
        reader.layout = .sequence
        reader.inputsKey = inputsKey
        return reader
    }

    func validate(source: String) throws {
        let c = outputs.count, f = inputFeatures
        guard (1...(1 << 20)).contains(c), (1...(1 << 24)).contains(f), Set(outputs).count == c,
              (mean == nil) == (std == nil), (targetMean == nil) == (targetStd == nil),
              mean.map({ $0.count == f && $0.allSatisfy { $0.isFinite } }) ?? true,
              std.map({ $0.count == f && $0.allSatisfy { $0 > 0 && $0.isFinite } }) ?? true,
              targetMean.map({ $0.count == c && task == .regression && $0.allSatisfy { $0.isFinite } }) ?? true,
              targetStd.map({ $0.count == c && $0.allSatisfy { $0 > 0 && $0.isFinite } }) ?? true,
              task != .classification || c >= 2 else {
            throw SeqTrainError("\(source): seqtrain.tagger is inconsistent (outputs, features or standardization)")
        }
    }

    /// Inputs standardized with the stored statistics.
    func standardized(_ data: LabelledData) -> LabelledData {
        var out = data
        if let mean, let std { Standardization(mean: mean, std: std).apply(&out) }
        return out
    }

    /// A standardized regression output of column k back in the data's units.
    func restore(_ v: Float, column k: Int) -> Float {
        guard let targetMean, let targetStd else { return v }
        return v * targetStd[k] + targetMean[k]
    }

    /// Regression targets standardized in place over the valid steps (data units in, model units out).
    func standardize(_ targets: inout StepTargets, lengths: [Int]) {
        guard let targetMean, let targetStd else { return }
        let T = targets.steps, K = targets.width
        for (s, length) in lengths.enumerated() {
            for t in 0..<min(length, T) {
                for k in 0..<K {
                    let i = (s * T + t) * K + k
                    targets.values[i] = (targets.values[i] - targetMean[k]) / targetStd[k]
                }
            }
        }
    }
}

/// Reading and checking per-step label files against their inputs.
enum StepLabels {
    /// The label arrays of `patterns` (.npy files of (N, T) or (N, T, C), concatenated over N),
    /// checked against `inputs`: the same N and T, and file names in every message.
    /// A .npz file's labels are its array `labelArray`, or (empty) the first array that is not
    /// `inputArray` (empty: the archive's first array).
    static func read(_ patterns: [String], key: String, inputs: LabelledData, inputsKey: String,
                     labelArray: String = "", inputArray: String = "")
        throws -> (values: [Float], shape: [Int], integer: Bool, source: String) {
        let files = try TextFiles.expand(patterns, key: key)
        guard !files.isEmpty else { throw SeqTrainError("\(key): no label files given") }
        var values: [Float] = [], shape: [Int] = [], integer = true, names: [String] = []
        for file in files {
            let array: NumpyArray
            if file.lowercased().hasSuffix(".npz") {
                let archive = try NumpyArchive(contentsOf: file)
                let inputName = inputArray.isEmpty ? archive.names.first ?? "" : inputArray
                let other = archive.names.first { $0 != inputName }
                guard let name = labelArray.isEmpty ? other : labelArray else {
                    throw SeqTrainError("\(key): \(file) holds only the array \(inputName); save the per-step labels "
                        + "beside the inputs (numpy.savez(path, inputs=x, labels=y)) or give data.labels")
                }
                array = try archive.array(name, key: "data.label_array")
                names.append("\(file)[\(name)]")
            } else if file.lowercased().hasSuffix(".npy") {
                array = try NumpyArray(contentsOf: file)
                names.append(file)
            } else {
                throw SeqTrainError("\(key): \(file): per-step labels are read from .npy (or .npz) files of (N, T) "
                    + "class ids, (N, T, C) 0/1 labels or (N, T, K) values; save them with numpy.save")
            }
            guard array.shape.count == 2 || array.shape.count == 3, array.shape.allSatisfy({ $0 > 0 }) else {
                throw SeqTrainError("\(key): \(names.last ?? file) has shape \(describe(array.shape)); per-step labels "
                    + "are (N, T) "
                    + "class ids, (N, T, C) 0/1 labels or (N, T, K) values")
            }
            if !shape.isEmpty && Array(array.shape.dropFirst()) != Array(shape.dropFirst()) {
                throw SeqTrainError("\(key): \(file) has shape \(describe(array.shape)), \(files[0]) "
                    + "\(describe(shape)); every label file must have the same steps and columns")
            }
            shape = shape.isEmpty ? array.shape : [shape[0] + array.shape[0]] + array.shape.dropFirst()
            integer = integer && array.dtype.isInteger
            values += array.floats()
        }
        let source = names.count == 1 ? names[0] : "\(names[0]) and \(names.count - 1) more"
        guard shape[0] == inputs.count, shape[1] == inputs.steps else {
            throw SeqTrainError("\(key): \(source) has shape \(describe(shape)), but \(inputsKey) (\(inputs.source)) "
                + "holds \(inputs.count) samples of \(inputs.steps) steps, shape \(describe(inputsShape(inputs))); "
                + "per-step labels need one row per sample and one entry per step: (\(inputs.count), "
                + "\(inputs.steps)) class ids or (\(inputs.count), \(inputs.steps), C)")
        }
        return (values, shape, integer, source)
    }

    static func describe(_ shape: [Int]) -> String { "(" + shape.map(String.init).joined(separator: ", ") + ")" }

    static func inputsShape(_ data: LabelledData) -> [Int] {
        data.features == 1 ? [data.count, data.steps] : [data.count, data.steps, data.features]
    }

    /// The task `requested` ("auto", "classification", "multi_label", "regression") resolves to for
    /// labels of `shape`, after checking the valid steps' values; returns the targets and the
    /// number of outputs per step (classes, labels or target columns).
    static func targets(_ values: [Float], shape: [Int], integer: Bool, source: String, lengths: [Int],
                        requested: String) throws -> (task: TaggingTask, targets: StepTargets, outputs: Int) {
        let N = shape[0], T = shape[1], W = shape.count == 3 ? shape[2] : 1
        // The first valid entry failing `accept`, as (sample, step, column, value).
        func firstInvalid(_ accept: (Float) -> Bool) -> (Int, Int, Int, Float)? {
            for s in 0..<N {
                for t in 0..<min(lengths[s], T) {
                    for k in 0..<W where !accept(values[(s * T + t) * W + k]) {
                        return (s, t, k, values[(s * T + t) * W + k])
                    }
                }
            }
            return nil
        }
        func place(_ bad: (Int, Int, Int, Float)) -> String {
            "\(source), sample \(bad.0), step \(bad.1)\(W > 1 ? ", column \(bad.2)" : "") holds \(bad.3)"
        }
        let isClassId = { (v: Float) in v >= 0 && v < Float(1 << 20) && v.rounded(.down) == v }
        let isBinary = { (v: Float) in v == 0 || v == 1 }
        var task: TaggingTask
        switch requested {
        case "classification": task = .classification
        case "multi_label": task = .multiLabel
        case "regression": task = .regression
        default:
            if shape.count == 2 {
                task = .classification
            } else {
                task = .multiLabel
                if let bad = firstInvalid(isBinary) {
                    throw SeqTrainError("\(place(bad)), not 0 or 1: (N, T, C) labels are per-step 0/1 labels "
                        + "(multi-label); for real-valued targets set model.task = \"regression\"")
                }
            }
        }
        switch task {
        case .classification:
            guard shape.count == 2 || W == 1 else {
                throw SeqTrainError("\(source) has shape \(describe(shape)): per-step classification needs one "
                    + "class id per step, (N, T); for (N, T, C) 0/1 labels use model.task = \"multi_label\"")
            }
            if let bad = firstInvalid(isClassId) {
                let kind = integer ? "" : " (a floating-point file)"
                throw SeqTrainError("\(place(bad)), not a class id\(kind): per-step classification needs integer "
                    + "class ids 0, 1, ... in an (N, T) integer array (numpy: labels.astype(np.int64)); for "
                    + "real-valued targets set model.task = \"regression\"")
            }
            var top: Float = 0
            for s in 0..<N { for t in 0..<min(lengths[s], T) { top = max(top, values[s * T + t]) } }
            let classes = Int(top) + 1
            guard classes >= 2 else {
                throw SeqTrainError("\(source): every valid step has class 0; a tagger needs at least 2 classes")
            }
            // Past a length the ids may be anything (-1, NaN): made 0 so no id falls outside the classes.
            var clean = values
            for s in 0..<N { for t in min(lengths[s], T)..<T { clean[s * T + t] = 0 } }
            return (task, StepTargets(values: clean, steps: T, width: 1), classes)
        case .multiLabel:
            guard shape.count == 3 else {
                throw SeqTrainError("\(source) has shape \(describe(shape)): multi-label tagging needs (N, T, C) 0/1 "
                    + "labels; for one class id per step use model.task = \"classification\"")
            }
            if let bad = firstInvalid(isBinary) {
                throw SeqTrainError("\(place(bad)), not 0 or 1: model.task = \"multi_label\" needs 0/1 labels; for "
                    + "real-valued targets set model.task = \"regression\"")
            }
            var clean = values
            for s in 0..<N { for i in (s * T + min(lengths[s], T)) * W..<((s + 1) * T) * W { clean[i] = 0 } }
            return (task, StepTargets(values: clean, steps: T, width: W), W)
        case .regression:
            if let bad = firstInvalid({ $0.isFinite }) {
                throw SeqTrainError("\(place(bad)) within the sample's valid steps: regression targets must be finite "
                    + "(NaN marks steps past the end only where the inputs end too)")
            }
            var clean = values
            for s in 0..<N { for i in (s * T + min(lengths[s], T)) * W..<((s + 1) * T) * W { clean[i] = 0 } }
            return (task, StepTargets(values: clean, steps: T, width: W), W)
        }
    }

    /// Mean and deviation per column over the valid steps (a deviation of 0 becomes 1).
    static func fitStandardization(_ targets: StepTargets, lengths: [Int]) -> Standardization {
        let T = targets.steps, K = targets.width
        var sum = [Double](repeating: 0, count: K), squares = sum, counted = 0.0
        for (s, length) in lengths.enumerated() {
            for t in 0..<min(length, T) {
                for k in 0..<K {
                    let v = Double(targets.values[(s * T + t) * K + k])
                    sum[k] += v
                    squares[k] += v * v
                }
            }
            counted += Double(min(length, T))
        }
        let mean = sum.map { $0 / max(counted, 1) }
        let std = (0..<K).map { k -> Float in
            let s = max(squares[k] / max(counted, 1) - mean[k] * mean[k], 0).squareRoot()
            return s > 1e-12 ? Float(s) : 1
        }
        return Standardization(mean: mean.map { Float($0) }, std: std)
    }
}
