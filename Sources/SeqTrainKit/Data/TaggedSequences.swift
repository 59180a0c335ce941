import Foundation

extension SyntheticSets {
    /// The class names of `tags`, by id.
    public static let tagNames = ["low", "alternating", "high"]

    /// Noisy sequences with a label at every step, for the sequence tagger: each sequence is a run
    /// of segments of 4 to 12 steps, each segment one of three regimes (low, alternating, high). At
    /// every step, feature 0 is the regime's level (−1, 0, +1) plus noise of deviation 1 and
    /// feature 1 is ±0.8 alternating step by step in the alternating regime (0 otherwise) plus noise
    /// of 0.5. One step alone is ambiguous; its neighbours on both sides tell the regime, so a
    /// bidirectional or convolutional front end helps. Samples keep 70 to 100% of the steps (the
    /// rest NaN, labels −1 there). Returns inputs (N, T, 2) and class ids (N, T).
    public static func tags(count: Int, length: Int, seed: UInt64) -> (inputs: [Float], labels: [Int64]) {
        let random = CounterRandom(seed: seed, purpose: .synthetic)
        let F = 2
        var inputs = [Float](repeating: .nan, count: count * length * F)
        var labels = [Int64](repeating: -1, count: count * length)
        for i in 0..<count {
            var draw: UInt64 = 0
            func u() -> Double { draw += 1; return Double(random.uniform(stream: UInt64(i), index: draw)) }
            func normal() -> Double { draw += 1; return Double(random.normal(stream: UInt64(i), index: draw)) }
            let kept = max(2, Int(Double(length) * (0.7 + 0.3 * u())))
            var regime = Int(u() * 3) % 3, left = 4 + Int(u() * 9)
            for t in 0..<min(kept, length) {
                if left == 0 {
                    regime = (regime + 1 + Int(u() * 2) % 2) % 3
                    left = 4 + Int(u() * 9)
                }
                left -= 1
                let level = Double(regime - 1)
                let alternation = regime == 1 ? (t % 2 == 0 ? 0.8 : -0.8) : 0
                inputs[(i * length + t) * F] = Float(level + normal())
                inputs[(i * length + t) * F + 1] = Float(alternation + 0.5 * normal())
                labels[i * length + t] = Int64(regime)
            }
        }
        return (inputs, labels)
    }
}
