import Foundation

/// `seqtrain gradcheck CONFIG`: the configured model's gradients on one real batch (the first of
/// epoch 0, dropout masks included) against central finite differences of the loss, for a few
/// elements of every parameter tensor: the largest gradients and an even spread of the rest.
public enum GradientCheck {
    public struct TensorResult {
        public let name: String
        public let shape: [Int]
        public let checked: Int
        /// The worst over the checked elements of (|analytic − numeric| − uncertainty) / max(|analytic|,
        /// |numeric|, 1e-3 of the tensor's largest gradient), at least 0. The numeric derivative is the
        /// central difference at h; its uncertainty is how far it moves when h doubles (float32
        /// rounding, curvature) plus the rounding of the loss sum itself, so an error is counted only
        /// beyond what the differences resolve.
        public let worstError: Double
        /// The error the check judges: the second worst when 4 or more elements were checked. One
        /// element may sit within h of a kink (max pooling's choice of step, ReLU, clipping), where
        /// the difference quotient blends two slopes; a wrong gradient term shows in many elements.
        public let error: Double
        public let worstElement: Int
        public let analytic: Double
        public let numeric: Double
        /// The numeric derivative's uncertainty at the worst element.
        public let uncertainty: Double
    }

    /// - Parameters:
    ///   - samples: elements checked per tensor.
    ///   - step: relative finite-difference step (h = step · max(1, |θ|)).
    ///   - distort: test hook: the analytic gradient of the tensor of that name is scaled by the factor.
    public static func run(config: ExperimentConfig, samples: Int = 8, step: Double = 1e-3,
                           distort: (name: String, factor: Float)? = nil) throws -> [TensorResult] {
        FloatEnvironment.flushDenormals()
        guard let kind = ExperimentRegistry.kind(named: config.kind) else { throw SeqTrainError("model.kind = \"\(config.kind)\" is not a known kind") }
        let experiment = try kind.make(config, 0, 1)
        let parameters = experiment.trainableModel.parameters
        parameters.initialize(seed: UInt64(config.integer("job.seed")))
        // The loss sum of batch 0 of epoch 0 from the start of the epoch (carried state zeroed).
        func loss() throws -> Double {
            experiment.beginEpoch(0)
            parameters.zeroGradients()
            let (total, _) = try experiment.accumulateGradient(batch: 0, epoch: 0, step: 0)
            return total.sum
        }
        let base = try loss()
        guard base.isFinite else { throw SeqTrainError("the loss of the first batch is \(base) before any update: check the data and the model sizes") }
        let analytic = parameters.gradients.array
        var results: [TensorResult] = []
        for ref in parameters.layout.entries {
            var gradient = Array(analytic[ref.offset..<(ref.offset + ref.count)])
            if let distort, distort.name == ref.name { gradient = gradient.map { $0 * distort.factor } }
            let largest = gradient.reduce(Float(0)) { max($0, abs($1)) }
            // The largest gradients, then an even spread.
            let byMagnitude = gradient.indices.sorted { abs(gradient[$0]) > abs(gradient[$1]) }
            var chosen = Array(byMagnitude.prefix(max(1, samples / 2)))
            let stride = max(1, ref.count / max(1, samples - chosen.count))
            for i in Swift.stride(from: stride / 2, to: ref.count, by: stride) where chosen.count < samples && !chosen.contains(i) { chosen.append(i) }
            var worst = (error: 0.0, element: chosen[0], analytic: 0.0, numeric: 0.0, uncertainty: 0.0)
            var errors: [Double] = []  // (checked)
            for i in chosen {
                let pointer = parameters.values.pointer + ref.offset + i
                let original = pointer.pointee
                let h = Float(step) * max(1, abs(original))
                // The central difference at h and at 2h, over the float32 steps actually taken.
                func difference(_ h: Float) throws -> Double {
                    pointer.pointee = original + h
                    let plus = try loss()
                    pointer.pointee = original - h
                    let minus = try loss()
                    pointer.pointee = original
                    return (plus - minus) / (Double(original + h) - Double(original - h))
                }
                let numeric = try difference(h), wide = try difference(2 * h)
                let a = Double(gradient[i])
                let uncertainty = 2 * abs(numeric - wide) + 1e-8 * abs(base) / Double(2 * h)
                let scale = max(abs(a), abs(numeric), 1e-3 * Double(largest), 1e-12)
                let error = max(0, abs(a - numeric) - uncertainty) / scale
                errors.append(error)
                if error > worst.error || i == chosen[0] && worst.error == 0 {
                    worst = (error, i, a, numeric, uncertainty)
                }
            }
            let judged = errors.count >= 4 ? errors.sorted(by: >)[1] : worst.error
            results.append(TensorResult(name: ref.name, shape: ref.shape, checked: chosen.count, worstError: worst.error,
                                        error: judged,
                                        worstElement: worst.element, analytic: worst.analytic, numeric: worst.numeric,
                                        uncertainty: worst.uncertainty))
        }
        return results
    }

    /// The table `seqtrain gradcheck` prints.
    public static func table(_ results: [TensorResult], threshold: Double) -> String {
        let width = max(6, results.map(\.name.count).max() ?? 6)
        var lines = ["tensor".padding(toLength: width, withPad: " ", startingAt: 0)
                     + "  shape          checked  rel. error  worst     (analytic, numeric ± uncertainty)"]
        for r in results {
            let shape = "\(r.shape)".padding(toLength: 14, withPad: " ", startingAt: 0)
            let verdict = r.error > threshold ? "  FAIL" : r.worstError > threshold ? "  (one element: a kink?)" : ""
            lines.append(r.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(shape) "
                         + String(format: "%7d  %10.2e  %8.2e  (%.5g, %.5g ± %.2g)%@", r.checked, r.error, r.worstError,
                                  r.analytic, r.numeric, r.uncertainty, verdict))
        }
        return lines.joined(separator: "\n")
    }
}
