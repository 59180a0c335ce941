import Foundation

/// Validation and `eval` figures of a classifier, from counts that add up over ranks and batches.
///
/// Single-label: a C × C confusion matrix (row: true class, column: predicted). Multi-label: per label
/// true positives, false positives, false negatives and support, and the samples whose whole label
/// set was right (threshold `eval.threshold` on the sigmoid).
public struct ClassificationCounts {
    public let multiLabel: Bool
    public let classes: [String]
    public var lossSum = 0.0, lossCount = 0.0
    public var samples = 0.0
    public var exact = 0.0
    /// Single-label: (C, C) row-major. Multi-label: (C, 4): tp, fp, fn, support.
    public var counts: [Double]

    public init(multiLabel: Bool, classes: [String]) {
        self.multiLabel = multiLabel
        self.classes = classes
        counts = [Double](repeating: 0, count: classes.count * (multiLabel ? 4 : classes.count))
    }

    /// The counts as one array of Doubles (for the all-reduce), and back.
    public var totals: [Double] { [lossSum, lossCount, samples, exact] + counts }

    public init(multiLabel: Bool, classes: [String], totals: [Double]) {
        self.init(multiLabel: multiLabel, classes: classes)
        lossSum = totals[0]; lossCount = totals[1]; samples = totals[2]; exact = totals[3]
        counts = Array(totals[4...])
    }

    /// Adds one batch: logits (N, C), and class ids (N) or 0/1 targets (N, C); rows with mask 0 are skipped.
    public mutating func add(logits: UnsafePointer<Float>, classIds: UnsafePointer<Int32>?, targets: UnsafePointer<Float>?,
                             mask: UnsafePointer<Float>?, rows n: Int, threshold: Float) {
        let c = classes.count
        for r in 0..<n where (mask?[r] ?? 1) > 0 {
            let z = logits + r * c
            samples += 1
            if let classIds {
                var best = 0
                for k in 1..<max(c, 1) where z[k] > z[best] { best = k }
                let truth = Int(classIds[r])
                counts[truth * c + best] += 1
                if truth == best { exact += 1 }
            } else if let targets {
                var allRight = true
                for k in 0..<c {
                    // σ(z) > threshold ⇔ z > logit(threshold)
                    let predicted = sigmoid(z[k]) > threshold
                    let truth = targets[r * c + k] > 0.5
                    if predicted && truth { counts[k * 4] += 1 }
                    if predicted && !truth { counts[k * 4 + 1] += 1 }
                    if !predicted && truth { counts[k * 4 + 2] += 1 }
                    if truth { counts[k * 4 + 3] += 1 }
                    if predicted != truth { allRight = false }
                }
                if allRight { exact += 1 }
            }
        }
    }

    /// (true positives, false positives, false negatives, support) of class k.
    public func perClass(_ k: Int) -> (tp: Double, fp: Double, fn: Double, support: Double) {
        let c = classes.count
        if multiLabel { return (counts[k * 4], counts[k * 4 + 1], counts[k * 4 + 2], counts[k * 4 + 3]) }
        let tp = counts[k * c + k]
        let predicted = (0..<c).reduce(0.0) { $0 + counts[$1 * c + k] }
        let support = (0..<c).reduce(0.0) { $0 + counts[k * c + $1] }
        return (tp, predicted - tp, support - tp, support)
    }

    static func f1(_ tp: Double, _ fp: Double, _ fn: Double) -> Double { tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0 }

    public var loss: Double { lossCount > 0 ? lossSum / lossCount : .nan }
    public var accuracy: Double { samples > 0 ? exact / samples : .nan }

    /// Mean F1 over the classes that occur in the labels or the predictions (as scikit-learn's
    /// macro average over the labels present).
    public var macroF1: Double {
        let present = classes.indices.filter { let p = perClass($0); return p.tp + p.fp + p.fn > 0 }
        guard !present.isEmpty else { return .nan }
        return present.reduce(0.0) { let p = perClass($1); return $0 + Self.f1(p.tp, p.fp, p.fn) } / Double(present.count)
    }

    public var microF1: Double {
        var tp = 0.0, fp = 0.0, fn = 0.0
        for k in classes.indices { let p = perClass(k); tp += p.tp; fp += p.fp; fn += p.fn }
        return tp + fp + fn > 0 ? Self.f1(tp, fp, fn) : .nan
    }

    /// The metrics by name: single-label accuracy and macro F1; multi-label macro and micro F1 and
    /// the exact-match ratio.
    public var metrics: [(name: String, value: Double)] {
        multiLabel ? [("macro_f1", macroF1), ("micro_f1", microF1), ("exact_match", accuracy)]
                   : [("accuracy", accuracy), ("macro_f1", macroF1)]
    }

    /// Per-class precision, recall, F1 and support, and for single-label the confusion matrix.
    public var report: String {
        let width = max(5, classes.map(\.count).max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var lines = [pad("class", width) + "  precision     recall         f1    support"]
        for (k, name) in classes.enumerated() {
            let p = perClass(k)
            let precision = p.tp + p.fp > 0 ? p.tp / (p.tp + p.fp) : 0, recall = p.tp + p.fn > 0 ? p.tp / (p.tp + p.fn) : 0
            lines.append(pad(name, width) + String(format: "  %9.4f  %9.4f  %9.4f  %9d", precision, recall, Self.f1(p.tp, p.fp, p.fn), Int(p.support)))
        }
        lines.append("")
        for (name, value) in metrics { lines.append(String(format: "%@ %.4f", name, value)) }
        if !multiLabel {
            lines.append("")
            lines.append("confusion matrix (rows: true class, columns: predicted):")
            let c = classes.count
            let cell = max(classes.map(\.count).max() ?? 1, String(Int(counts.max() ?? 0)).count, 3)
            lines.append(pad("", width) + classes.map { pad($0, cell + 1) }.joined())
            for (k, name) in classes.enumerated() {
                lines.append(pad(name, width) + (0..<c).map { pad(String(Int(counts[k * c + $0])), cell + 1) }.joined())
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Per-class figures as CSV: class, precision, recall, f1, support.
    public var perClassCSV: String {
        var out = "class,precision,recall,f1,support\n"
        for (k, name) in classes.enumerated() {
            let p = perClass(k)
            let precision = p.tp + p.fp > 0 ? p.tp / (p.tp + p.fp) : 0, recall = p.tp + p.fn > 0 ? p.tp / (p.tp + p.fn) : 0
            out += "\(csvCell(name)),\(precision),\(recall),\(Self.f1(p.tp, p.fp, p.fn)),\(Int(p.support))\n"
        }
        return out
    }

    /// The confusion matrix as CSV with a header of predicted classes (single-label).
    public var confusionCSV: String {
        let c = classes.count
        var out = "true\\predicted," + classes.map(csvCell).joined(separator: ",") + "\n"
        for (k, name) in classes.enumerated() {
            out += csvCell(name) + "," + (0..<c).map { String(Int(counts[k * c + $0])) }.joined(separator: ",") + "\n"
        }
        return out
    }
}

extension ClassificationCounts {
    /// What a model that learned nothing but the class shares of these samples scores, by metric
    /// name. Single-label: the majority class's share (accuracy), 1/C over the classes present
    /// (macro F1: predicting by the shares scores it), the entropy of the shares (cross-entropy).
    /// Multi-label: every label predicted positive (macro and micro F1, which beats predicting none),
    /// the mean binary entropy of the label shares (BCE). `plainLoss` false: no loss figure.
    public func chanceLevels(plainLoss: Bool) -> [String: Double] {
        guard samples > 0 else { return [:] }
        let shares = classes.indices.map { perClass($0).support / samples }
        let present = shares.filter { $0 > 0 }
        guard !present.isEmpty else { return [:] }
        var levels: [String: Double] = [:]
        if multiLabel {
            levels["val_macro_f1"] = present.reduce(0) { $0 + 2 * $1 / (1 + $1) } / Double(present.count)
            let positive = shares.reduce(0, +) / Double(shares.count)
            levels["val_micro_f1"] = 2 * positive / (1 + positive)
            let entropy = shares.map { p in p <= 0 || p >= 1 ? 0 : -(p * log(p) + (1 - p) * log(1 - p)) }
            if plainLoss { levels["val_loss"] = entropy.reduce(0, +) / Double(shares.count) }
        } else {
            levels["val_accuracy"] = present.max()
            levels["val_macro_f1"] = 1 / Double(present.count)
            if plainLoss { levels["val_loss"] = -present.reduce(0) { $0 + $1 * log($1) } }
        }
        return levels
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break.
func csvCell(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}
