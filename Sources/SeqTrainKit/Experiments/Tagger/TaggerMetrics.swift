import Foundation

/// Validation and `eval` figures of a tagger over valid steps, from counts that add up over ranks
/// and batches. Classification and multi-label reuse the classifier's counts with a step as a
/// row (accuracy and macro F1; per-label F1 and accuracy); regression sums absolute and squared
/// errors in the data's units.
public struct TaggerCounts {
    public let task: TaggingTask
    public let outputs: [String]
    var classes: ClassificationCounts
    /// Regression, in data units: Σ|e|, Σe² and the count of values, overall and per column.
    var absolute = 0.0, squared = 0.0, values = 0.0
    var columnAbsolute: [Double], columnSquared: [Double]

    public init(task: TaggingTask, outputs: [String]) {
        self.task = task
        self.outputs = outputs
        classes = ClassificationCounts(multiLabel: task == .multiLabel, classes: task == .regression ? [] : outputs)
        columnAbsolute = [Double](repeating: 0, count: task == .regression ? outputs.count : 0)
        columnSquared = columnAbsolute
    }

    /// The counts as one array (for the all-reduce), and back.
    public var totals: [Double] { classes.totals + [absolute, squared, values] + columnAbsolute + columnSquared }

    public init(task: TaggingTask, outputs: [String], totals: [Double]) {
        self.init(task: task, outputs: outputs)
        let n = classes.totals.count, k = columnAbsolute.count
        guard totals.count == n + 3 + 2 * k else { return }
        classes = ClassificationCounts(multiLabel: task == .multiLabel, classes: classes.classes,
                                       totals: Array(totals[0..<n]))
        (absolute, squared, values) = (totals[n], totals[n + 1], totals[n + 2])
        columnAbsolute = Array(totals[(n + 3)..<(n + 3 + k)])
        columnSquared = Array(totals[(n + 3 + k)...])
    }

    /// Adds one block of rows (steps): outputs (rows, C), targets (rows, W), mask (rows).
    mutating func add(loss total: LossTotal, outputs: UnsafePointer<Float>, targets: [Float], mask: [Float], rows: Int,
                      threshold: Float, preprocessing: TaggerPreprocessing) {
        classes.lossSum += total.sum
        classes.lossCount += total.count
        let C = self.outputs.count
        switch task {
        case .classification:
            let ids = targets.map { Int32($0) }
            ids.withUnsafeBufferPointer { id in
                mask.withUnsafeBufferPointer {
                    classes.add(logits: outputs, classIds: id.baseAddress, targets: nil, mask: $0.baseAddress,
                                rows: rows, threshold: threshold)
                }
            }
        case .multiLabel:
            targets.withUnsafeBufferPointer { y in
                mask.withUnsafeBufferPointer {
                    classes.add(logits: outputs, classIds: nil, targets: y.baseAddress, mask: $0.baseAddress,
                                rows: rows, threshold: threshold)
                }
            }
        case .regression:
            for r in 0..<rows where mask[r] > 0 {
                for k in 0..<C {
                    let e = Double(preprocessing.restore(outputs[r * C + k], column: k))
                        - Double(preprocessing.restore(targets[r * C + k], column: k))
                    absolute += abs(e)
                    squared += e * e
                    columnAbsolute[k] += abs(e)
                    columnSquared[k] += e * e
                }
                values += Double(C)
            }
        }
    }

    public var loss: Double { classes.loss }
    /// Valid steps counted.
    public var steps: Double { task == .regression ? values / Double(max(outputs.count, 1)) : classes.samples }
    public var rmse: Double { values > 0 ? (squared / values).squareRoot() : .nan }
    public var mae: Double { values > 0 ? absolute / values : .nan }

    /// Multi-label: the share of (step, label) pairs right, of label k.
    func labelAccuracy(_ k: Int) -> Double {
        let p = classes.perClass(k)
        return classes.samples > 0 ? (classes.samples - p.fp - p.fn) / classes.samples : .nan
    }

    /// The names `metrics` returns, in order.
    static func metricNames(task: TaggingTask, outputs: [String]) -> [String] {
        switch task {
        case .classification: return ["accuracy", "macro_f1"]
        case .multiLabel: return ["accuracy", "macro_f1", "micro_f1"] + outputs.map { "f1_" + $0 }
        case .regression: return ["rmse", "mae"]
        }
    }

    /// Per step: accuracy and macro F1 (classification); the share of right (step, label) pairs,
    /// macro and micro F1 and each label's F1 (multi-label); RMSE and MAE in data units (regression).
    public var metrics: [(name: String, value: Double)] {
        let names = Self.metricNames(task: task, outputs: outputs)
        switch task {
        case .classification: return zip(names, [classes.accuracy, classes.macroF1]).map { ($0, $1) }
        case .multiLabel:
            let pairs = classes.samples * Double(outputs.count)
            let wrong = outputs.indices.reduce(0.0) { let p = classes.perClass($1); return $0 + p.fp + p.fn }
            let perLabel = outputs.indices.map { k -> Double in
                let p = classes.perClass(k)
                return ClassificationCounts.f1(p.tp, p.fp, p.fn)
            }
            let values = [pairs > 0 ? (pairs - wrong) / pairs : .nan, classes.macroF1, classes.microF1] + perLabel
            return zip(names, values).map { ($0, $1) }
        case .regression: return zip(names, [rmse, mae]).map { ($0, $1) }
        }
    }

    /// Per-class (label) precision, recall and F1, or per-column RMSE and MAE, over valid steps.
    public var report: String {
        switch task {
        case .classification, .multiLabel:
            var text = "per step, over \(Int(classes.samples)) valid steps:\n" + classes.report
            if task == .multiLabel {
                text += "\n" + outputs.indices.map {
                    String(format: "accuracy of %@ %.4f", outputs[$0], labelAccuracy($0))
                }.joined(separator: "\n")
            }
            return text
        case .regression:
            let width = max(6, outputs.map(\.count).max() ?? 0)
            func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
            var lines = ["per step, over \(Int(steps)) valid steps, in the data's units:",
                         pad("column") + "        rmse         mae"]
            let n = steps
            for (k, name) in outputs.enumerated() {
                let rmse = n > 0 ? (columnSquared[k] / n).squareRoot() : .nan
                let mae = n > 0 ? columnAbsolute[k] / n : .nan
                lines.append(pad(name) + String(format: "  %10.4g  %10.4g", rmse, mae))
            }
            lines.append(String(format: "rmse %.4g\nmae %.4g", rmse, mae))
            return lines.joined(separator: "\n")
        }
    }

    /// Per class (label): precision, recall, F1 and support over valid steps; nil for regression.
    var perOutputCSV: String? { task == .regression ? nil : classes.perClassCSV }
}
