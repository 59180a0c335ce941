import Foundation

/// `seqtrain gradcheck CONFIG`: the configured model's gradients on one real batch (the first of
/// epoch 0, dropout masks included) against central finite differences of the loss, for a few
/// elements of every parameter tensor: the largest gradients and an even spread of the rest.
public enum GradientCheck {
    public struct TensorResult {
        public let name: String
        public let shape: [Int]
        public let checked: Int
        /// max over the checked elements of |analytic − numeric| / max(|analytic|, |numeric|, floor).
        /// The floor is the larger of 1e-3 of the tensor's largest gradient and the float32 noise of
        /// the difference quotient (about 1e-6 of the loss sum over 2h): the model computes in
        /// float32, so gradients below that noise cannot be measured by differences.
        public let worstError: Double
        public let worstElement: Int
        public let analytic: Double
        public let numeric: Double
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
            let (total, _) = try experiment.accumulateGradient(batch: 0, epoch: 0, step: 0, gradientsReady: nil)
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
            var worst = (error: 0.0, element: chosen[0], analytic: 0.0, numeric: 0.0)
            for i in chosen {
                let pointer = parameters.values.pointer + ref.offset + i
                let original = pointer.pointee
                let h = Float(step) * max(1, abs(original))
                pointer.pointee = original + h
                let plus = try loss()
                pointer.pointee = original - h
                let minus = try loss()
                pointer.pointee = original
                let numeric = (plus - minus) / (Double(original + h) - Double(original - h))
                let a = Double(gradient[i])
                let noise = 1e-6 * abs(base) / Double(2 * h)
                let error = abs(a - numeric) / max(abs(a), abs(numeric), 1e-3 * Double(largest), noise, 1e-12)
                if error > worst.error || i == chosen[0] && worst.error == 0 { worst = (error, i, a, numeric) }
            }
            results.append(TensorResult(name: ref.name, shape: ref.shape, checked: chosen.count, worstError: worst.error,
                                        worstElement: worst.element, analytic: worst.analytic, numeric: worst.numeric))
        }
        return results
    }

    /// The table `seqtrain gradcheck` prints.
    public static func table(_ results: [TensorResult], threshold: Double) -> String {
        let width = max(6, results.map(\.name.count).max() ?? 6)
        var lines = ["tensor".padding(toLength: width, withPad: " ", startingAt: 0) + "  shape          checked  worst rel. error  (analytic, numeric)"]
        for r in results {
            let shape = "\(r.shape)".padding(toLength: 14, withPad: " ", startingAt: 0)
            lines.append(r.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(shape) "
                         + String(format: "%7d  %16.2e  (%.5g, %.5g)%@", r.checked, r.worstError, r.analytic, r.numeric, r.worstError > threshold ? "  FAIL" : ""))
        }
        return lines.joined(separator: "\n")
    }
}
